//! End-to-end tests of [`load_kernel`]: hand-built images in a 16 MiB guest, read back from
//! guest memory.

use std::sync::Arc;

use tandem_softmmu::host_memory::HostMemory;
use tandem_softmmu::{AddressSpace, AddressSpaceBuilder};
use tandem_target_x86_64::cpu_state::{bits, reg, sreg};
use tandem_target_x86_64::{CpuMode, Segment};

use super::boot_setup::*;
use super::multiboot_info::{offset, MMAP_ADDR};
use super::*;
use crate::e820::{E820Entry, E820Kind};

const RAM: u64 = 16 << 20;
const MB_FLAG_AOUT: u32 = 1 << 16;

struct Guest {
    space: AddressSpace,
    e820: Vec<E820Entry>,
}

impl Guest {
    /// 16 MiB of RAM, filled with 0xcc so zeroing shows, with a PC-like e820 map.
    fn new() -> Self {
        let host = Arc::new(HostMemory::anonymous(RAM).unwrap());
        let mut b = AddressSpaceBuilder::new();
        b.ram(0, host, 0, RAM).unwrap();
        let space = b.build();
        space.load(0, &vec![0xcc; RAM as usize]).unwrap();
        let e = |addr, size, kind| E820Entry { addr, size, kind };
        let e820 = vec![
            e(0, 0x9fc00, E820Kind::Ram),
            e(0x9fc00, 0x400, E820Kind::Reserved),
            e(0xf0000, 0x10000, E820Kind::Reserved),
            e(0x10_0000, RAM - 0x10_0000, E820Kind::Ram),
        ];
        Self { space, e820 }
    }

    fn mem(&self) -> BootMemory<'_> {
        BootMemory {
            space: &self.space,
            e820: &self.e820,
            ram_size: RAM,
        }
    }

    fn load(
        &self,
        image: &[u8],
        cmdline: &str,
        initrd: Option<&[u8]>,
        flat: Option<&FlatSpec>,
    ) -> Result<LoadedKernel, LoaderError> {
        load_kernel(&self.mem(), image, cmdline, initrd, flat)
    }

    fn bytes(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0; len];
        self.space.read(gpa, &mut b).unwrap();
        b
    }

    fn u32(&self, gpa: u64) -> u32 {
        u32::from_le_bytes(self.bytes(gpa, 4).try_into().unwrap())
    }

    fn u64(&self, gpa: u64) -> u64 {
        u64::from_le_bytes(self.bytes(gpa, 8).try_into().unwrap())
    }

    fn cstr(&self, gpa: u64) -> String {
        let b = self.bytes(gpa, 0x1000);
        let n = b.iter().position(|&c| c == 0).unwrap();
        String::from_utf8(b[..n].to_vec()).unwrap()
    }

    fn info(&self, field: u64) -> u32 {
        self.u32(INFO_ADDR + field)
    }

    /// The segment's descriptor in the boot GDT equals what the register caches.
    fn assert_matches_gdt(&self, seg: &Segment) {
        let d = self.u64(GDT_ADDR + u64::from(seg.selector));
        assert_eq!(d, seg.to_descriptor(), "selector {:#x}", seg.selector);
    }
}

/// A program header for the builders: physical and virtual address, file bytes, memory size.
struct Seg<'a> {
    paddr: u64,
    vaddr: u64,
    data: &'a [u8],
    memsz: u64,
}

fn seg(addr: u64, data: &[u8], memsz: u64) -> Seg<'_> {
    Seg {
        paddr: addr,
        vaddr: addr,
        data,
        memsz,
    }
}

/// An ELF64 x86-64 executable: header, program headers, then the segments' bytes.
fn elf64(entry: u64, segs: &[Seg]) -> Vec<u8> {
    let mut v = vec![0u8; 64];
    v[..4].copy_from_slice(b"\x7fELF");
    v[4] = 2; // ELFCLASS64
    v[5] = 1; // little-endian
    v[6] = 1;
    v[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    v[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    v[20..24].copy_from_slice(&1u32.to_le_bytes());
    v[24..32].copy_from_slice(&entry.to_le_bytes());
    v[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    v[52..54].copy_from_slice(&64u16.to_le_bytes());
    v[54..56].copy_from_slice(&56u16.to_le_bytes());
    v[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
    let mut off = 64 + 56 * segs.len() as u64;
    for s in segs {
        let mut ph = vec![0u8; 56];
        ph[0..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        ph[4..8].copy_from_slice(&7u32.to_le_bytes());
        ph[8..16].copy_from_slice(&off.to_le_bytes());
        ph[16..24].copy_from_slice(&s.vaddr.to_le_bytes());
        ph[24..32].copy_from_slice(&s.paddr.to_le_bytes());
        ph[32..40].copy_from_slice(&(s.data.len() as u64).to_le_bytes());
        ph[40..48].copy_from_slice(&s.memsz.to_le_bytes());
        v.extend_from_slice(&ph);
        off += s.data.len() as u64;
    }
    for s in segs {
        v.extend_from_slice(s.data);
    }
    v
}

/// An ELF32 i386 executable, optionally with extra bytes (a multiboot header) right after the
/// program headers, before the segments' bytes.
fn elf32_with(entry: u32, segs: &[Seg], extra: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; 52];
    v[..4].copy_from_slice(b"\x7fELF");
    v[4] = 1; // ELFCLASS32
    v[5] = 1;
    v[6] = 1;
    v[16..18].copy_from_slice(&2u16.to_le_bytes());
    v[18..20].copy_from_slice(&3u16.to_le_bytes()); // EM_386
    v[20..24].copy_from_slice(&1u32.to_le_bytes());
    v[24..28].copy_from_slice(&entry.to_le_bytes());
    v[28..32].copy_from_slice(&52u32.to_le_bytes());
    v[40..42].copy_from_slice(&52u16.to_le_bytes());
    v[42..44].copy_from_slice(&32u16.to_le_bytes());
    v[44..46].copy_from_slice(&(segs.len() as u16).to_le_bytes());
    let mut off = (52 + 32 * segs.len() + extra.len()) as u32;
    for s in segs {
        let mut ph = vec![0u8; 32];
        ph[0..4].copy_from_slice(&1u32.to_le_bytes());
        ph[4..8].copy_from_slice(&off.to_le_bytes());
        ph[8..12].copy_from_slice(&(s.vaddr as u32).to_le_bytes());
        ph[12..16].copy_from_slice(&(s.paddr as u32).to_le_bytes());
        ph[16..20].copy_from_slice(&(s.data.len() as u32).to_le_bytes());
        ph[20..24].copy_from_slice(&(s.memsz as u32).to_le_bytes());
        ph[24..28].copy_from_slice(&7u32.to_le_bytes());
        v.extend_from_slice(&ph);
        off += s.data.len() as u32;
    }
    v.extend_from_slice(extra);
    for s in segs {
        v.extend_from_slice(s.data);
    }
    v
}

fn elf32(entry: u32, segs: &[Seg]) -> Vec<u8> {
    elf32_with(entry, segs, &[])
}

/// A multiboot header: magic, flags, checksum, then `fields` (the a.out kludge's five).
fn mb_header(flags: u32, fields: &[u32]) -> Vec<u8> {
    let magic = 0x1bad_b002u32;
    let mut v = Vec::new();
    for w in [magic, flags, 0u32.wrapping_sub(magic).wrapping_sub(flags)] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    for f in fields {
        v.extend_from_slice(&f.to_le_bytes());
    }
    v
}

/// An a.out-kludge kernel loaded at `load`: 8 bytes of code, the header, `body`; bss of
/// `bss` bytes; entry at `load`.
fn mb_kludge(load: u32, body: &[u8], bss: u32) -> Vec<u8> {
    let file_len = (8 + 32 + body.len()) as u32;
    let fields = [load + 8, load, load + file_len, load + file_len + bss, load];
    let mut v = vec![0xf4; 8]; // hlt
    v.extend_from_slice(&mb_header(MB_FLAG_AOUT | 0b11, &fields));
    v.extend_from_slice(body);
    v
}

fn assert_protected_entry(g: &Guest, k: &LoadedKernel) {
    let s = &k.state;
    assert_eq!(s.mode(), CpuMode::Protected32);
    assert_eq!(s.cr0 & bits::CR0_PG, 0);
    assert_eq!(s.efer, 0);
    assert_eq!(s.rflags, 0x2);
    assert_eq!(s.gpr[reg::RAX], 0x2bad_b002);
    assert_eq!(s.gpr[reg::RBX], INFO_ADDR);
    assert_eq!(s.seg[sreg::CS].selector, 0x18);
    assert!(s.seg[sreg::CS].db && !s.seg[sreg::CS].l);
    for i in [sreg::DS, sreg::ES, sreg::FS, sreg::GS, sreg::SS] {
        assert_eq!(s.seg[i], data_segment());
    }
    for seg in s.seg.iter().chain([&s.tr]) {
        g.assert_matches_gdt(seg);
    }
    assert_eq!(s.rip, k.entry);
}

#[test]
fn multiboot_aout_kludge_loads_and_enters_protected_mode() {
    let g = Guest::new();
    let body = [0x11u8; 24];
    let img = mb_kludge(0x10_0000, &body, 0x100);
    let k = g.load(&img, "console=ttyS0 quiet", None, None).unwrap();
    assert_eq!(k.format, "multiboot");
    assert_eq!(k.entry, 0x10_0000);
    assert_eq!(k.end, 0x10_0000 + img.len() as u64 + 0x100);
    assert_eq!(g.bytes(0x10_0000, img.len()), img);
    assert_eq!(g.bytes(0x10_0000 + img.len() as u64, 0x100), vec![0; 0x100]);
    // Past the bss: untouched.
    assert_eq!(g.bytes(k.end, 1), [0xcc]);
    assert_protected_entry(&g, &k);
    assert_eq!(g.cstr(CMDLINE_ADDR), "console=ttyS0 quiet");
}

#[test]
fn multiboot_information_reads_back() {
    let g = Guest::new();
    let img = mb_kludge(0x10_0000, &[1, 2, 3], 0x1234);
    let initrd: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    let k = g.load(&img, "root=/dev/ram", Some(&initrd), None).unwrap();
    let flags = g.info(offset::FLAGS);
    assert_eq!(flags, (1 << 0) | (1 << 2) | (1 << 3) | (1 << 6) | (1 << 9));
    assert_eq!(g.info(offset::MEM_LOWER), 639);
    assert_eq!(g.info(offset::MEM_UPPER), 15 * 1024);
    assert_eq!(g.cstr(g.info(offset::CMDLINE).into()), "root=/dev/ram");
    assert_eq!(g.cstr(g.info(offset::BOOT_LOADER_NAME).into()), "tandem");

    // The memory map: the board's e820, size-prefixed.
    let len = g.info(offset::MMAP_LENGTH) as u64;
    let mut at = u64::from(g.info(offset::MMAP_ADDR));
    assert_eq!(at, MMAP_ADDR);
    let end = at + len;
    let mut entries = vec![];
    while at < end {
        let size = g.u32(at) as u64;
        entries.push((g.u64(at + 4), g.u64(at + 12), g.u32(at + 20)));
        at += size + 4;
    }
    assert_eq!(at, end);
    let want: Vec<_> = g
        .e820
        .iter()
        .map(|e| (e.addr, e.size, e.kind as u32))
        .collect();
    assert_eq!(entries, want);

    // The module: page-aligned after the kernel's bss, holding the initrd.
    assert_eq!(g.info(offset::MODS_COUNT), 1);
    let m = u64::from(g.info(offset::MODS_ADDR));
    let (start, stop) = (u64::from(g.u32(m)), u64::from(g.u32(m + 4)));
    assert_eq!(start, (k.end + 0xfff) & !0xfff);
    assert!(start >= k.end);
    assert_eq!(stop - start, initrd.len() as u64);
    assert_eq!(k.initrd, Some(start..stop));
    assert_eq!(g.bytes(start, initrd.len()), initrd);
    assert_eq!(g.cstr(g.u32(m + 8).into()), "initrd");
}

#[test]
fn without_initrd_there_is_no_module() {
    let g = Guest::new();
    let k = g
        .load(&mb_kludge(0x10_0000, &[1], 0), "", None, None)
        .unwrap();
    assert_eq!(k.initrd, None);
    assert_eq!(g.info(offset::FLAGS) & (1 << 3), 0);
    assert_eq!(g.info(offset::MODS_COUNT), 0);
    assert_eq!(g.cstr(CMDLINE_ADDR), "");
}

#[test]
fn multiboot_elf_kernel_loads_program_headers() {
    let g = Guest::new();
    let code = [0x90u8, 0x90, 0xf4];
    let data = [0x55u8; 16];
    // The header sits between the program headers and the segments (within 8 KiB).
    let header = mb_header(0b110, &[]); // memory info + video mode: accepted
    let img = elf32_with(
        0x20_0000,
        &[seg(0x20_0000, &code, 3), seg(0x30_0000, &data, 0x40)],
        &header,
    );
    let k = g.load(&img, "", None, None).unwrap();
    assert_eq!(k.format, "multiboot");
    assert_eq!(k.entry, 0x20_0000);
    assert_eq!(k.end, 0x30_0040);
    assert_eq!(g.bytes(0x20_0000, 4), [0x90, 0x90, 0xf4, 0xcc]);
    assert_eq!(g.bytes(0x30_0000, 16), data);
    assert_eq!(g.bytes(0x30_0010, 0x30), vec![0; 0x30]);
    assert_protected_entry(&g, &k);
}

#[test]
fn multiboot_with_unsupported_required_flags_is_refused() {
    let g = Guest::new();
    let header = mb_header(1 << 4, &[]);
    let img = elf32_with(0x20_0000, &[seg(0x20_0000, &[0xf4], 1)], &header);
    assert_eq!(
        g.load(&img, "", None, None),
        Err(LoaderError::MultibootFlags { unsupported: 0x10 })
    );
}

#[test]
fn bad_multiboot_checksum_falls_through() {
    let g = Guest::new();
    let mut header = mb_header(0, &[]);
    header[8] ^= 1;
    // Inside an ELF32: loads as plain elf32.
    let img = elf32_with(0x20_0000, &[seg(0x20_0000, &[0xf4], 1)], &header);
    assert_eq!(g.load(&img, "", None, None).unwrap().format, "elf32");
    // Alone: nothing recognisable.
    let mut img = header.clone();
    img.extend_from_slice(&[0; 64]);
    assert_eq!(
        g.load(&img, "", None, None),
        Err(LoaderError::UnknownFormat)
    );
    // With a good checksum the same bytes are a multiboot kernel (lacking the kludge, not ELF).
    let mut img = mb_header(0, &[]);
    img.extend_from_slice(&[0; 64]);
    assert!(matches!(
        g.load(&img, "", None, None),
        Err(LoaderError::BadHeader { .. })
    ));
}

#[test]
fn elf64_enters_long_mode_with_the_boot_structures() {
    let g = Guest::new();
    let code = [0x48u8, 0x31, 0xc0, 0xf4];
    let img = elf64(
        0x10_0000,
        &[seg(0x10_0000, &code, 0x2000), seg(0x20_0000, &[7; 8], 8)],
    );
    let k = g.load(&img, "hello", None, None).unwrap();
    assert_eq!(k.format, "elf64");
    assert_eq!(k.entry, 0x10_0000);
    assert_eq!(k.end, 0x20_0008);
    assert_eq!(g.bytes(0x10_0000, 4), code);
    assert_eq!(g.bytes(0x10_0004, 0x1ffc), vec![0; 0x1ffc]);
    assert_eq!(g.bytes(0x20_0000, 8), [7; 8]);

    let s = &k.state;
    assert_eq!(s.mode(), CpuMode::Long64);
    assert_eq!(s.rip, 0x10_0000);
    assert_eq!(s.rflags, 0x2);
    assert_eq!(s.cr3, PML4_ADDR);
    assert_eq!(s.efer, bits::EFER_LME | bits::EFER_LMA);
    assert_eq!(
        s.cr0,
        bits::CR0_PE | bits::CR0_MP | bits::CR0_ET | bits::CR0_NE | bits::CR0_WP | bits::CR0_PG
    );
    assert_eq!(
        s.cr4,
        bits::CR4_PAE | bits::CR4_OSFXSR | bits::CR4_OSXMMEXCPT
    );
    assert_eq!(s.gpr[reg::RSP], STACK_TOP);
    assert_eq!(s.gpr[reg::RDI], INFO_ADDR);
    assert_eq!(s.gpr[reg::RSI], 0x2bad_b002);
    assert_eq!(s.seg[sreg::CS].selector, 0x08);
    assert!(s.seg[sreg::CS].l && !s.seg[sreg::CS].db);
    assert_eq!(s.seg[sreg::SS].selector, 0x10);
    assert_eq!(
        (s.tr.selector, s.tr.base, s.tr.limit, s.tr.type_),
        (0x20, TSS_ADDR, 103, 0xb)
    );
    assert!(s.ldt.unusable);
    assert_eq!((s.idt.base, s.idt.limit), (0, 0));
    assert_eq!((s.gdt.base, s.gdt.limit), (GDT_ADDR, 0x2f));
    for seg in s.seg.iter().chain([&s.tr]) {
        g.assert_matches_gdt(seg);
    }
    // The TSS: I/O map base past its end; the page tables map the entry 1:1.
    assert_eq!(g.bytes(TSS_ADDR + 0x66, 2), [104, 0]);
    assert_eq!(g.u64(TSS_ADDR), 0);
    assert_eq!(g.u64(PML4_ADDR) & !0xfff, PDPT_ADDR);
    assert_eq!(g.u64(PDPT_ADDR) & !0xfff, PD_ADDR);
    assert_eq!(g.u64(PD_ADDR) & !0xfff, 0);
    assert_eq!(g.u64(PD_ADDR) & 0x81, 0x81);
    // The stack page is clean and the command line is there, as for multiboot.
    assert_eq!(g.bytes(STACK_TOP - 16, 16), [0; 16]);
    assert_eq!(g.cstr(g.info(offset::CMDLINE).into()), "hello");
    assert_eq!(g.info(offset::MEM_UPPER), 15 * 1024);
}

#[test]
fn elf_entry_is_translated_from_virtual_to_physical() {
    let g = Guest::new();
    let high = 0xffff_ffff_8010_0000;
    let img = elf64(
        high + 4,
        &[Seg {
            paddr: 0x10_0000,
            vaddr: high,
            data: &[0x90; 8],
            memsz: 8,
        }],
    );
    let k = g.load(&img, "", None, None).unwrap();
    assert_eq!(k.entry, 0x10_0004);
    assert_eq!(k.state.rip, 0x10_0004);
}

#[test]
fn elf64_entry_above_4g_is_unreachable() {
    let g = Guest::new();
    let img = elf64(0x1_0000_0000, &[seg(0x10_0000, &[0x90], 1)]);
    assert_eq!(
        g.load(&img, "", None, None),
        Err(LoaderError::EntryUnreachable {
            entry: 0x1_0000_0000
        })
    );
}

#[test]
fn elf32_enters_protected_mode_with_the_multiboot_convention() {
    let g = Guest::new();
    let img = elf32(0x10_0010, &[seg(0x10_0000, &[0xaa; 32], 0x40)]);
    let k = g.load(&img, "x", None, None).unwrap();
    assert_eq!(k.format, "elf32");
    assert_eq!(k.entry, 0x10_0010);
    assert_eq!(g.bytes(0x10_0000, 32), [0xaa; 32]);
    assert_eq!(g.bytes(0x10_0020, 0x20), [0; 0x20]);
    assert_protected_entry(&g, &k);
    assert_eq!(g.cstr(CMDLINE_ADDR), "x");
}

#[test]
fn flat_binaries_in_each_mode() {
    let code = [0xeb, 0xfe];

    let g = Guest::new();
    let boot = FlatSpec {
        addr: 0x7c00,
        mode: EntryMode::Real,
    };
    let k = g.load(&code, "", None, Some(&boot)).unwrap();
    assert_eq!(k.format, "flat");
    assert_eq!(g.bytes(0x7c00, 2), code);
    let s = &k.state;
    assert_eq!(s.mode(), CpuMode::Real);
    assert_eq!(
        (s.seg[sreg::CS].selector, s.seg[sreg::CS].base),
        (0x7c0, 0x7c00)
    );
    assert_eq!(s.rip, 0);
    assert_eq!((s.seg[sreg::SS].selector, s.gpr[reg::RSP]), (0, 0x7c00));
    assert_eq!(s.cr0, bits::CR0_ET);
    // Real mode writes no boot area.
    assert_eq!(g.bytes(GDT_ADDR, 8), [0xcc; 8]);

    let g = Guest::new();
    let odd = FlatSpec {
        addr: 0x12345,
        mode: EntryMode::Real,
    };
    let s = g.load(&code, "", None, Some(&odd)).unwrap().state;
    assert_eq!((s.seg[sreg::CS].selector, s.rip), (0x1234, 5));

    let g = Guest::new();
    let pm = FlatSpec {
        addr: 0x10_0000,
        mode: EntryMode::Protected,
    };
    let k = g.load(&code, "pm", None, Some(&pm)).unwrap();
    assert_protected_entry(&g, &k);
    assert_eq!(k.entry, 0x10_0000);
    assert_eq!(g.cstr(CMDLINE_ADDR), "pm");

    let g = Guest::new();
    let lm = FlatSpec {
        addr: 0x20_0000,
        mode: EntryMode::Long,
    };
    let k = g.load(&code, "", None, Some(&lm)).unwrap();
    assert_eq!(k.state.mode(), CpuMode::Long64);
    assert_eq!(
        (k.state.rip, k.state.cr3, k.end),
        (0x20_0000, PML4_ADDR, 0x20_0002)
    );
    assert_eq!(g.bytes(0x20_0000, 2), code);
}

#[test]
fn flat_address_limits() {
    let g = Guest::new();
    let img = [0x90u8; 0x100];
    let at = |addr, mode| FlatSpec { addr, mode };
    // Real mode: must end by 1 MiB.
    assert!(g
        .load(
            &img,
            "",
            None,
            Some(&at(0x10_0000 - 0x100, EntryMode::Real))
        )
        .is_err_and(|e| matches!(e, LoaderError::DoesNotFit { .. })));
    assert!(matches!(
        g.load(&img, "", None, Some(&at(0x10_0000 - 0xff, EntryMode::Real))),
        Err(LoaderError::FlatAddress { .. })
    ));
    assert!(matches!(
        g.load(&img, "", None, Some(&at(u64::MAX - 4, EntryMode::Long))),
        Err(LoaderError::FlatAddress { .. })
    ));
    assert!(matches!(
        g.load(&img, "", None, Some(&at(0xffff_ff80, EntryMode::Protected))),
        Err(LoaderError::FlatAddress { .. })
    ));
    // Real-mode images get no boot information.
    let real = at(0x7c00, EntryMode::Real);
    assert_eq!(
        g.load(&img, "quiet", None, Some(&real)),
        Err(LoaderError::NoBootInfo {
            what: "command line"
        })
    );
    assert_eq!(
        g.load(&img, "", Some(&[1]), Some(&real)),
        Err(LoaderError::NoBootInfo { what: "initrd" })
    );
}

#[test]
fn the_boot_area_and_stack_are_protected() {
    let g = Guest::new();
    for addr in [0x8000, 0x9fff, 0x7_8000] {
        let img = elf32(addr as u32, &[seg(addr, &[0x90; 4], 4)]);
        let err = g.load(&img, "", None, None).unwrap_err();
        assert!(
            matches!(err, LoaderError::DoesNotFit { addr: a, len: 4, .. } if a == addr),
            "{err}"
        );
        assert!(err.to_string().contains("boot"), "{err}");
    }
    // A segment ending just below the boot area, or bss reaching into it.
    let img = elf32(0x800, &[seg(0x800, &[0x90; 4], 0x800)]);
    assert!(g.load(&img, "", None, None).is_ok());
    let img = elf32(0x800, &[seg(0x800, &[0x90; 4], 0x801)]);
    assert!(g.load(&img, "", None, None).is_err());
    // A flat protected-mode image too, and nothing was written by the refused loads.
    let g = Guest::new();
    let pm = FlatSpec {
        addr: 0x6000,
        mode: EntryMode::Protected,
    };
    assert!(g.load(&[0x90; 16], "", None, Some(&pm)).is_err());
    assert_eq!(g.bytes(0x6000, 16), [0xcc; 16]);
    assert_eq!(g.bytes(GDT_ADDR, 8), [0xcc; 8]);
}

#[test]
fn segments_outside_ram_do_not_fit() {
    let g = Guest::new();
    // Past the end of RAM.
    let img = elf64(RAM, &[seg(RAM - 8, &[0x90; 16], 16)]);
    assert_eq!(
        g.load(&img, "", None, None),
        Err(LoaderError::DoesNotFit {
            addr: RAM - 8,
            len: 16,
            why: "it is not RAM"
        })
    );
    // In the e820 reserved hole below 1 MiB, though the address space has RAM there.
    let img = elf32(0xf_0000, &[seg(0xf_0000, &[0x90; 16], 16)]);
    assert!(matches!(
        g.load(&img, "", None, None),
        Err(LoaderError::DoesNotFit { addr: 0xf_0000, .. })
    ));
    // A 32-bit kernel's bss wrapping past 4 GiB.
    let img = elf32(0xffff_f000, &[seg(0xffff_f000, &[0x90], 0x2000)]);
    assert!(matches!(
        g.load(&img, "", None, None),
        Err(LoaderError::DoesNotFit { .. })
    ));
}

#[test]
fn initrd_that_does_not_fit_is_refused() {
    let g = Guest::new();
    let img = mb_kludge(0x10_0000, &[1], 0);
    // The image end is page-aligned to 0x101000; 15 MiB from there passes the end of RAM.
    let big = vec![0u8; 15 << 20];
    assert!(matches!(
        g.load(&img, "", Some(&big), None),
        Err(LoaderError::DoesNotFit {
            addr: 0x10_1000,
            ..
        })
    ));
    // Nothing was written.
    assert_eq!(g.bytes(0x10_0000, 4), [0xcc; 4]);
    // One page less fits, exactly at the end of RAM.
    let k = g
        .load(&img, "", Some(&big[..(15 << 20) - 0x1000]), None)
        .unwrap();
    assert_eq!(k.initrd, Some(0x10_1000..RAM));
}

#[test]
fn initrd_skips_the_boot_stack() {
    let g = Guest::new();
    // Kernel at 0x20000..0x20010: an 0x60000-byte initrd after it would cross the stack.
    let img = elf32(0x2_0000, &[seg(0x2_0000, &[0x90; 16], 16)]);
    let k = g.load(&img, "", Some(&[5; 0x6_0000]), None).unwrap();
    // Low RAM after the stack (0x80000..0x9fc00) is too small; it goes above 1 MiB.
    assert_eq!(k.initrd, Some(0x10_0000..0x16_0000));
    let k = g.load(&img, "", Some(&[5; 0x100]), None).unwrap();
    assert_eq!(k.initrd, Some(0x2_1000..0x2_1100));
}

#[test]
fn truncated_elf_is_an_error() {
    let g = Guest::new();
    let good = elf64(0x10_0000, &[seg(0x10_0000, &[0x90; 64], 64)]);
    assert!(g.load(&good, "", None, None).is_ok());
    // Program header table past the end.
    assert_eq!(
        g.load(&good[..100], "", None, None),
        Err(LoaderError::Truncated {
            what: "ELF program header table"
        })
    );
    // Segment data past the end.
    assert_eq!(
        g.load(&good[..good.len() - 1], "", None, None),
        Err(LoaderError::Truncated {
            what: "ELF segment data"
        })
    );
    // A header that lies: phnum far larger than the file.
    let mut lying = good.clone();
    lying[56..58].copy_from_slice(&0xfff0u16.to_le_bytes());
    assert!(matches!(
        g.load(&lying, "", None, None),
        Err(LoaderError::Truncated { .. })
    ));
    // p_offset + p_filesz overflowing.
    let mut lying = good.clone();
    lying[64 + 8..64 + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        g.load(&lying, "", None, None),
        Err(LoaderError::Truncated { .. })
    ));
    // filesz > memsz.
    let mut lying = good.clone();
    lying[64 + 40..64 + 48].copy_from_slice(&1u64.to_le_bytes());
    assert!(matches!(
        g.load(&lying, "", None, None),
        Err(LoaderError::BadHeader { .. })
    ));
    // Every prefix of a good image fails cleanly (and none loads).
    for n in 1..good.len() {
        assert!(g.load(&good[..n], "", None, None).is_err(), "prefix {n}");
    }
}

#[test]
fn corrupted_headers_never_panic() {
    let g = Guest::new();
    let images = [
        elf64(
            0x10_0000,
            &[seg(0x10_0000, &[0x90; 64], 64), seg(0x20_0000, &[1; 8], 8)],
        ),
        elf32(0x10_0000, &[seg(0x10_0000, &[0x90; 64], 64)]),
        mb_kludge(0x10_0000, &[0x90; 64], 16),
    ];
    // A fixed xorshift sequence: reproducible, and it covers every header byte many times.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for img in &images {
        for _ in 0..3000 {
            let mut m = img.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x as usize >> 8) % m.len().min(160);
                m[at] = x as u8;
            }
            let _ = g.load(&m, "", Some(&[1, 2, 3]), None);
        }
    }
}

#[test]
fn elf_for_other_machines_is_unsupported() {
    let g = Guest::new();
    let mut img = elf64(0x10_0000, &[seg(0x10_0000, &[0x90], 1)]);
    img[18] = 183; // EM_AARCH64
    assert!(matches!(
        g.load(&img, "", None, None),
        Err(LoaderError::UnsupportedFormat(_))
    ));
    let mut img = elf32(0x10_0000, &[seg(0x10_0000, &[0x90], 1)]);
    img[5] = 2; // big-endian
    assert_eq!(
        g.load(&img, "", None, None),
        Err(LoaderError::UnsupportedFormat("big-endian ELF"))
    );
    let mut img = elf32(0x10_0000, &[seg(0x10_0000, &[0x90], 1)]);
    img[16] = 3; // ET_DYN
    assert!(matches!(
        g.load(&img, "", None, None),
        Err(LoaderError::UnsupportedFormat(_))
    ));
}

#[test]
fn image_larger_than_ram_is_too_large() {
    let g = Guest::new();
    // Even a valid ELF: the size check comes first.
    let mut img = elf64(0x10_0000, &[seg(0x10_0000, &[0x90], 1)]);
    img.resize(RAM as usize + 1, 0);
    assert_eq!(
        g.load(&img, "", None, None),
        Err(LoaderError::TooLarge {
            len: RAM + 1,
            ram: RAM
        })
    );
}

#[test]
fn bzimage_and_unknown_formats() {
    let g = Guest::new();
    let mut bz = vec![0u8; 0x400];
    bz[0x1fe..0x200].copy_from_slice(&[0x55, 0xaa]);
    bz[0x202..0x206].copy_from_slice(b"HdrS");
    // Routed to the Linux loader (linux_tests.rs), which finds no jump over the header.
    let err = g.load(&bz, "", None, None).unwrap_err();
    assert!(matches!(err, LoaderError::BadHeader { .. }), "{err}");
    assert!(err.to_string().contains("Linux"), "{err}");
    bz[0x202] = b'h';
    assert_eq!(g.load(&bz, "", None, None), Err(LoaderError::UnknownFormat));
    assert_eq!(g.load(&[], "", None, None), Err(LoaderError::Empty));
}

#[test]
fn command_line_too_long_is_refused_before_writing() {
    let g = Guest::new();
    let img = mb_kludge(0x10_0000, &[1], 0);
    let long = "a".repeat(CMDLINE_MAX + 1);
    assert_eq!(
        g.load(&img, &long, None, None),
        Err(LoaderError::CmdlineTooLong {
            len: CMDLINE_MAX + 1,
            max: CMDLINE_MAX
        })
    );
    assert_eq!(g.bytes(0x10_0000, 4), [0xcc; 4]);
    let longest = "b".repeat(CMDLINE_MAX);
    g.load(&img, &longest, None, None).unwrap();
    assert_eq!(g.cstr(CMDLINE_ADDR), longest);
}
