//! ELF executables: the header and the program headers' PT_LOAD segments (System V ABI,
//! "Program Loading"), for little-endian i386 (ELFCLASS32) and x86-64 (ELFCLASS64).
//!
//! Segments are loaded at their physical address (`p_paddr`), `p_filesz` bytes copied and the
//! rest of `p_memsz` zeroed, as GRUB and QEMU load multiboot ELF kernels. The entry point is
//! translated from virtual to physical through the segment that contains it, so a kernel linked
//! high but loaded low starts at the right byte; an entry outside every segment is taken as is.
//! Warts: only ET_EXEC; section headers, symbols and dynamic linking are ignored; `e_phnum`
//! values of PN_XNUM (more than 65534 headers) are not followed to section 0.

use super::bytes::{slice, u16_at, u32_at, u64_at};
use super::error::LoaderError;
use super::plan::{Chunk, LoadPlan};

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_EXEC: u16 = 2;
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;

/// Which ELF flavour an image is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ElfClass {
    /// ELFCLASS32, EM_386.
    Elf32,
    /// ELFCLASS64, EM_X86_64.
    Elf64,
}

/// A parsed executable: its flavour and what to load where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Elf<'a> {
    /// 32- or 64-bit.
    pub class: ElfClass,
    /// The PT_LOAD segments and the (physical) entry point.
    pub plan: LoadPlan<'a>,
}

/// True if the image starts with the ELF magic.
pub(crate) fn is_elf(image: &[u8]) -> bool {
    image.starts_with(ELF_MAGIC)
}

/// Where the fields of the header and of one program header sit in each class.
struct Layout {
    ehdr_size: u64,
    entry: u64,
    phoff: u64,
    phentsize: u64,
    phnum: u64,
    phdr_size: u64,
}

const LAYOUT32: Layout = Layout {
    ehdr_size: 52,
    entry: 24,
    phoff: 28,
    phentsize: 42,
    phnum: 44,
    phdr_size: 32,
};

const LAYOUT64: Layout = Layout {
    ehdr_size: 64,
    entry: 24,
    phoff: 32,
    phentsize: 54,
    phnum: 56,
    phdr_size: 56,
};

/// One program header's fields that matter, widened to u64.
struct Phdr {
    p_type: u32,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

const WHAT_PHDR: &str = "ELF program header table";

fn read_phdr(image: &[u8], class: ElfClass, at: u64) -> Result<Phdr, LoaderError> {
    // Each field offset is below the header size, which `parse` checked fits the file after
    // `at`; the reads are bounds-checked regardless.
    let f = |off: u64| {
        at.checked_add(off)
            .ok_or(LoaderError::Truncated { what: WHAT_PHDR })
    };
    Ok(match class {
        ElfClass::Elf32 => Phdr {
            p_type: u32_at(image, f(0)?, WHAT_PHDR)?,
            offset: u32_at(image, f(4)?, WHAT_PHDR)?.into(),
            vaddr: u32_at(image, f(8)?, WHAT_PHDR)?.into(),
            paddr: u32_at(image, f(12)?, WHAT_PHDR)?.into(),
            filesz: u32_at(image, f(16)?, WHAT_PHDR)?.into(),
            memsz: u32_at(image, f(20)?, WHAT_PHDR)?.into(),
        },
        ElfClass::Elf64 => Phdr {
            p_type: u32_at(image, f(0)?, WHAT_PHDR)?,
            offset: u64_at(image, f(8)?, WHAT_PHDR)?,
            vaddr: u64_at(image, f(16)?, WHAT_PHDR)?,
            paddr: u64_at(image, f(24)?, WHAT_PHDR)?,
            filesz: u64_at(image, f(32)?, WHAT_PHDR)?,
            memsz: u64_at(image, f(40)?, WHAT_PHDR)?,
        },
    })
}

/// Parses an ELF executable for i386 or x86-64. The caller has seen the magic.
pub(crate) fn parse(image: &[u8]) -> Result<Elf<'_>, LoaderError> {
    let ident = slice(image, 0, 16, "ELF identification")?;
    let (class, layout, machine, other_machine) = match ident[4] {
        ELFCLASS32 => (
            ElfClass::Elf32,
            &LAYOUT32,
            EM_386,
            "32-bit ELF not for i386",
        ),
        ELFCLASS64 => (
            ElfClass::Elf64,
            &LAYOUT64,
            EM_X86_64,
            "64-bit ELF not for x86-64",
        ),
        _ => {
            return Err(LoaderError::BadHeader {
                what: "ELF class is neither 32- nor 64-bit",
            })
        }
    };
    if ident[5] != ELFDATA2LSB {
        return Err(LoaderError::UnsupportedFormat("big-endian ELF"));
    }
    slice(image, 0, layout.ehdr_size, "ELF header")?;
    if u16_at(image, 18, "ELF header")? != machine {
        return Err(LoaderError::UnsupportedFormat(other_machine));
    }
    if u16_at(image, 16, "ELF header")? != ET_EXEC {
        return Err(LoaderError::UnsupportedFormat(
            "ELF that is not an executable (ET_EXEC)",
        ));
    }
    let entry = match class {
        ElfClass::Elf32 => u32_at(image, layout.entry, "ELF header")?.into(),
        ElfClass::Elf64 => u64_at(image, layout.entry, "ELF header")?,
    };
    let phoff = match class {
        ElfClass::Elf32 => u32_at(image, layout.phoff, "ELF header")?.into(),
        ElfClass::Elf64 => u64_at(image, layout.phoff, "ELF header")?,
    };
    let phentsize = u64::from(u16_at(image, layout.phentsize, "ELF header")?);
    let phnum = u64::from(u16_at(image, layout.phnum, "ELF header")?);
    if phnum == 0 {
        return Err(LoaderError::BadHeader {
            what: "ELF has no program headers",
        });
    }
    if phentsize < layout.phdr_size {
        return Err(LoaderError::BadHeader {
            what: "ELF program header entry size is too small",
        });
    }
    let table_len = phnum
        .checked_mul(phentsize)
        .ok_or(LoaderError::Truncated { what: WHAT_PHDR })?;
    slice(image, phoff, table_len, WHAT_PHDR)?;

    let mut chunks = Vec::new();
    let mut phys_entry = None;
    for i in 0..phnum {
        // In range: the whole table was checked above.
        let p = read_phdr(image, class, phoff + i * phentsize)?;
        if p.p_type != PT_LOAD || p.memsz == 0 {
            continue;
        }
        if p.filesz > p.memsz {
            return Err(LoaderError::BadHeader {
                what: "ELF segment's file size exceeds its memory size",
            });
        }
        let data = slice(image, p.offset, p.filesz, "ELF segment data")?;
        chunks.push(Chunk::new(p.paddr, data, p.memsz)?);
        let contains_entry = entry
            .checked_sub(p.vaddr)
            .is_some_and(|delta| delta < p.memsz);
        if phys_entry.is_none() && contains_entry {
            phys_entry = (entry - p.vaddr).checked_add(p.paddr);
        }
    }
    if chunks.is_empty() {
        return Err(LoaderError::BadHeader {
            what: "ELF has no loadable segment",
        });
    }
    Ok(Elf {
        class,
        plan: LoadPlan {
            chunks,
            entry: phys_entry.unwrap_or(entry),
        },
    })
}
