//! Loaders: put a guest kernel in RAM and produce the boot CPU's initial state.
//!
//! [`load_kernel`] recognises the image (a flat binary when the caller says so; otherwise a
//! multiboot v1 header, then ELF, then a Linux bzImage, which goes to [`linux`]), checks every
//! piece against RAM and the loader's boot area ([`boot_setup`]), and only then writes guest
//! memory: the kernel, the boot area (GDT, TSS, identity page tables, stack), the multiboot
//! information with the command line and memory map ([`multiboot_info`]), and the initrd as a
//! multiboot module. The returned [`CpuState`] enters the kernel in 32-bit protected mode
//! (multiboot, ELF32), 64-bit long mode (ELF64) or the mode a flat binary asks for.
//!
//! Linux kernels (a bzImage, or an ELF vmlinux recognised by its "Linux" note) are loaded by
//! [`linux`] with the 64-bit boot protocol: boot_params instead of the multiboot information.
//!
//! Warts: ELF64 kernels must have their entry (and early code) in
//! the identity-mapped first 4 GiB. The writes cannot fail once the checks (against both the
//! e820 map and the address space) have passed; if one did, memory would be left partly written.

pub mod boot_setup;
mod bytes;
pub mod elf;
pub mod error;
pub mod flat;
pub mod linux;
pub mod linux_header;
mod linux_place;
mod linux_vmlinux;
pub mod linux_zeropage;
pub mod multiboot;
pub mod multiboot_info;
mod plan;

use std::ops::Range;

use tandem_softmmu::AddressSpace;
use tandem_target_x86_64::CpuState;

pub use error::LoaderError;

use crate::e820::E820Entry;
use plan::LoadPlan;

/// The guest memory a loader may use.
#[derive(Clone, Copy)]
pub struct BootMemory<'a> {
    /// Where the kernel, the boot area and the initrd are written.
    pub space: &'a AddressSpace,
    /// The board's memory map: only its RAM entries receive bytes, and the guest gets a copy.
    pub e820: &'a [E820Entry],
    /// Guest RAM in bytes (an image larger than this is refused outright).
    pub ram_size: u64,
}

/// The CPU mode a flat binary is entered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryMode {
    /// Real mode at CS:IP = addr >> 4 : addr & 0xf.
    Real,
    /// 32-bit protected mode, paging off, as a multiboot kernel.
    Protected,
    /// 64-bit long mode on the loader's identity map, as an ELF64 kernel.
    Long,
}

/// Where and how to run a flat binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlatSpec {
    /// Guest-physical load address, also the entry point.
    pub addr: u64,
    /// Entry mode.
    pub mode: EntryMode,
}

/// A kernel in guest memory, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedKernel {
    /// The boot CPU's state at the entry point.
    pub state: CpuState,
    /// "multiboot", "elf64", "elf32", "flat", "bzimage" or "vmlinux".
    pub format: &'static str,
    /// Guest-physical entry point.
    pub entry: u64,
    /// One past the kernel's highest byte in memory (bss included, initrd not).
    pub end: u64,
    /// Where the initrd was put (the multiboot module's mod_start..mod_end), if one was given.
    pub initrd: Option<Range<u64>>,
}

/// Offset of the Linux setup header's "HdrS" signature in a bzImage.
const BZIMAGE_MAGIC_OFFSET: usize = 0x202;

/// Loads `image` into `mem` and returns the state that enters it.
///
/// `flat` makes the image a flat binary; otherwise its format is detected. `cmdline` and
/// `initrd` reach the kernel through the multiboot information structure (not for real-mode
/// flat binaries, which get none). Nothing is written to guest memory unless every check passes.
pub fn load_kernel(
    mem: &BootMemory,
    image: &[u8],
    cmdline: &str,
    initrd: Option<&[u8]>,
    flat: Option<&FlatSpec>,
) -> Result<LoadedKernel, LoaderError> {
    let len = image.len() as u64;
    if len > mem.ram_size {
        return Err(LoaderError::TooLarge {
            len,
            ram: mem.ram_size,
        });
    }
    if image.is_empty() {
        return Err(LoaderError::Empty);
    }
    let (format, mode, plan) = if let Some(spec) = flat {
        ("flat", spec.mode, flat::plan(image, spec)?)
    } else if let Some(header) = multiboot::find_header(image) {
        (
            "multiboot",
            EntryMode::Protected,
            multiboot::plan(image, &header)?,
        )
    } else if elf::is_elf(image) {
        let e = elf::parse(image)?;
        match e.class {
            elf::ElfClass::Elf32 => ("elf32", EntryMode::Protected, e.plan),
            elf::ElfClass::Elf64 if linux_vmlinux::is_vmlinux(image) => {
                return linux::load_vmlinux(mem, &e.plan, cmdline, initrd);
            }
            elf::ElfClass::Elf64 => ("elf64", EntryMode::Long, e.plan),
        }
    } else if image.get(BZIMAGE_MAGIC_OFFSET..BZIMAGE_MAGIC_OFFSET + 4) == Some(b"HdrS") {
        return linux::load_bzimage(mem, image, cmdline, initrd);
    } else {
        return Err(LoaderError::UnknownFormat);
    };
    boot(mem, format, mode, &plan, cmdline, initrd)
}

/// Checks a parsed kernel against memory, then writes it and the boot structures.
fn boot(
    mem: &BootMemory,
    format: &'static str,
    mode: EntryMode,
    plan: &LoadPlan,
    cmdline: &str,
    initrd: Option<&[u8]>,
) -> Result<LoadedKernel, LoaderError> {
    let entry = plan.entry;
    // Every mode runs its first instruction below 4 GiB: 32-bit code cannot address more and
    // the long-mode identity map covers no more.
    let entry32 = u32::try_from(entry).map_err(|_| LoaderError::EntryUnreachable { entry })?;
    if mode == EntryMode::Real {
        if !cmdline.is_empty() {
            return Err(LoaderError::NoBootInfo {
                what: "command line",
            });
        }
        if initrd.is_some() {
            return Err(LoaderError::NoBootInfo { what: "initrd" });
        }
    } else {
        multiboot_info::check_cmdline(cmdline)?;
        multiboot_info::check_e820(mem.e820)?;
    }
    for c in &plan.chunks {
        boot_setup::check_placement(mem, c.addr, c.mem_len, mode)?;
    }
    let end = plan.end();
    let initrd = match initrd {
        Some(data) => Some((
            multiboot_info::place_initrd(mem, end, data.len() as u64)?,
            data,
        )),
        None => None,
    };

    // All checks passed: write.
    for c in &plan.chunks {
        c.write(mem.space)?;
    }
    if let Some((at, data)) = &initrd {
        mem.space
            .load(at.start, data)
            .map_err(LoaderError::Memory)?;
    }
    let initrd = initrd.map(|(at, _)| at);
    let state = match mode {
        EntryMode::Real => boot_setup::real_mode_state(entry32),
        EntryMode::Protected | EntryMode::Long => {
            boot_setup::write_tables(mem)?;
            let info = multiboot_info::write_boot_info(mem, cmdline, initrd.as_ref())?;
            if mode == EntryMode::Long {
                boot_setup::long_mode_state(entry, info)
            } else {
                boot_setup::protected_mode_state(entry32, info)
            }
        }
    };
    Ok(LoadedKernel {
        state,
        format,
        entry,
        end,
        initrd,
    })
}

#[cfg(test)]
mod linux_tests;
#[cfg(test)]
mod linux_tests_errors;
#[cfg(test)]
mod tests;
