//! The loader's own structures in low memory (the boot area) and the entry CPU states.
//!
//! Every loader that enters in protected or long mode writes the same boot area, so a guest
//! (and a test) can rely on one layout whatever the format:
//!
//! | range               | contents                                                  |
//! |---------------------|-----------------------------------------------------------|
//! | `0x1000..0x1030`    | GDT: null, 0x08 64-bit code, 0x10 flat data, 0x18 flat 32-bit code, 0x20 64-bit TSS (16 bytes) |
//! | `0x1800..0x1868`    | TSS (zero, I/O map base = 104: no I/O bitmap)             |
//! | `0x2000`            | PML4                                                      |
//! | `0x3000`            | PDPT                                                      |
//! | `0x4000..0x8000`    | 4 page directories: the first 4 GiB identity-mapped with 2 MiB pages |
//! | `0x8000..0x9000`    | multiboot information, memory map, module list, strings   |
//! | `0x9000..0xa000`    | the command line (NUL-terminated)                         |
//! | `0x70000..0x80000`  | the boot stack (rsp = 0x80000)                            |
//!
//! Kernel bytes that would overlap either range are refused ([`LoaderError::DoesNotFit`]).
//!
//! Callers that run code at CPL3 (the instruction harness) write the same tables through
//! [`write_system_tables`] with [`TableOptions`]: two more GDT slots, 0x30 a DPL3 data segment
//! and 0x38 a DPL3 64-bit code segment (the order SYSRET expects from STAR base 0x28), the TSS's
//! RSP0 and IST1 stacks, the low pages supervisor-only and the map cut at the end of RAM.
//!
//! Warts: the page tables are written for every protected/long entry, used or not; their
//! entries carry the user bit so a test kernel may drop to CPL3 on them without building its own
//! (SMEP/SMAP are off, so this costs the kernel nothing). The identity map covers only 4 GiB, so
//! RAM above it is loaded but not mapped at entry. A real-mode entry writes no boot area at all.

use std::ops::Range;

use tandem_softmmu::{AddressSpace, MemoryError};
use tandem_target_x86_64::cpu_state::{bits, reg, sreg};
use tandem_target_x86_64::{CpuState, DescriptorTable, Segment};

use super::error::LoaderError;
use super::{BootMemory, EntryMode};
use crate::e820::E820Kind;

/// The GDT's guest-physical address.
pub const GDT_ADDR: u64 = 0x1000;
/// Bytes in the GDT: five 8-byte slots, the TSS descriptor taking two.
pub const GDT_SIZE: u64 = 0x30;
/// Selector of the 64-bit code segment (long-mode CS).
pub const SEL_CODE64: u16 = 0x08;
/// Selector of the flat read/write data segment (every data segment and SS).
pub const SEL_DATA: u16 = 0x10;
/// Selector of the flat 32-bit code segment (protected-mode CS).
pub const SEL_CODE32: u16 = 0x18;
/// Selector of the 64-bit TSS descriptor (TR).
pub const SEL_TSS: u16 = 0x20;
/// Selector of the DPL3 flat data segment (SS, DS, ES at CPL3), RPL 3; present only in tables
/// written with [`TableOptions::user_segments`].
pub const SEL_USER_DATA: u16 = 0x33;
/// Selector of the DPL3 64-bit code segment, RPL 3; as [`SEL_USER_DATA`].
pub const SEL_USER_CODE64: u16 = 0x3b;
/// Bytes in the GDT with the user segments.
pub const GDT_USER_SIZE: u64 = 0x40;
/// The TSS's guest-physical address.
pub const TSS_ADDR: u64 = 0x1800;
/// Bytes in the TSS (the 32-bit and 64-bit layouts are both 104 bytes).
pub const TSS_SIZE: u64 = 104;
/// Offset of the I/O map base field in the TSS (the same in both layouts).
const TSS_IOMAP_BASE: u64 = 0x66;
/// Offset of RSP0 in the 64-bit TSS.
const TSS_RSP0: u64 = 0x04;
/// Offset of IST1 in the 64-bit TSS.
const TSS_IST1: u64 = 0x24;
/// Size of one large page of the identity map.
pub const LARGE_PAGE: u64 = 2 << 20;
/// The PML4 (CR3 in long mode).
pub const PML4_ADDR: u64 = 0x2000;
/// The one PDPT, its first four entries used.
pub const PDPT_ADDR: u64 = 0x3000;
/// The first of four page directories, one per GiB.
pub const PD_ADDR: u64 = 0x4000;
/// Page directories mapped (one per GiB).
pub const PD_COUNT: u64 = 4;
/// The multiboot information structure (EBX, or RDI in long mode).
pub const INFO_ADDR: u64 = 0x8000;
/// End of the page holding the information structure and its substructures.
pub const INFO_END: u64 = 0x9000;
/// The command line.
pub const CMDLINE_ADDR: u64 = 0x9000;
/// Longest command line: one page less its terminating NUL.
pub const CMDLINE_MAX: usize = 4095;
/// Everything the loader writes below the stack.
pub const BOOT_AREA: Range<u64> = 0x1000..0xa000;
/// The boot stack's pages.
pub const STACK_AREA: Range<u64> = 0x70000..0x80000;
/// Initial stack pointer in protected and long mode.
pub const STACK_TOP: u64 = 0x80000;
/// Stack pointer of a real-mode entry (SS = 0), where a BIOS leaves it for a boot sector.
pub const REAL_MODE_STACK: u64 = 0x7c00;
/// EAX (and RSI in long mode) at entry: "loaded by a multiboot-compliant boot loader".
pub const MULTIBOOT_BOOTLOADER_MAGIC: u32 = 0x2bad_b002;

const FOUR_GIB: u64 = 1 << 32;
/// Page-table entry bits: present, writable, user.
const PTE_PRW_USER: u64 = 0x7;
/// Page-directory entry bit: a 2 MiB page.
const PDE_PS: u64 = 1 << 7;

/// The long-mode code segment as CS holds it (selector 0x08).
pub fn code64_segment() -> Segment {
    Segment::flat(SEL_CODE64, true, true)
}

/// The 32-bit code segment as CS holds it (selector 0x18).
pub fn code32_segment() -> Segment {
    Segment::flat(SEL_CODE32, true, false)
}

/// The flat data segment as DS/ES/FS/GS/SS hold it (selector 0x10). It is the 32-bit form
/// (D/B set) in both modes, because one GDT slot serves both and long mode ignores D/B on data.
pub fn data_segment() -> Segment {
    Segment::flat(SEL_DATA, false, false)
}

/// The DPL3 64-bit code segment as CS holds it at CPL3 (selector 0x3b).
pub fn user_code64_segment() -> Segment {
    Segment {
        dpl: 3,
        ..Segment::flat(SEL_USER_CODE64, true, true)
    }
}

/// The DPL3 flat data segment as SS/DS/ES hold it at CPL3 (selector 0x33).
pub fn user_data_segment() -> Segment {
    Segment {
        dpl: 3,
        ..Segment::flat(SEL_USER_DATA, false, false)
    }
}

/// The busy TSS as TR holds it (selector 0x20).
pub fn tss_segment() -> Segment {
    // TSS_SIZE - 1 is 103: fits.
    Segment::tss(SEL_TSS, TSS_ADDR, (TSS_SIZE - 1) as u32)
}

fn overlaps(addr: u64, end: u64, r: &Range<u64>) -> bool {
    addr < r.end && r.start < end
}

/// True if every byte of `[addr, end)` is RAM in the e820 map (adjacent RAM entries join).
fn e820_covers(mem: &BootMemory, addr: u64, end: u64) -> bool {
    let mut cur = addr;
    while cur < end {
        let next = mem
            .e820
            .iter()
            .filter(|e| e.kind == E820Kind::Ram && e.addr <= cur && cur < e.end())
            .map(|e| e.end())
            .max();
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    true
}

/// Checks that `len` bytes at `addr` may be loaded for an entry in `mode`: inside RAM, clear of
/// the boot area and the boot stack (unless the entry is in real mode, which uses neither), and
/// below 4 GiB unless entered in long mode.
pub(crate) fn check_placement(
    mem: &BootMemory,
    addr: u64,
    len: u64,
    mode: EntryMode,
) -> Result<(), LoaderError> {
    if len == 0 {
        return Ok(());
    }
    let err = |why| Err(LoaderError::DoesNotFit { addr, len, why });
    let Some(end) = addr.checked_add(len) else {
        return err("the range wraps around the address space");
    };
    if mode != EntryMode::Long && end > FOUR_GIB {
        return err("it lies above 4 GiB, out of reach of 32-bit code");
    }
    if mode != EntryMode::Real {
        if overlaps(addr, end, &BOOT_AREA) {
            return err("it overlaps the loader's boot area 0x1000..0xa000 (GDT, TSS, page tables, boot information)");
        }
        if overlaps(addr, end, &STACK_AREA) {
            return err("it overlaps the boot stack 0x70000..0x80000");
        }
    }
    if !e820_covers(mem, addr, end) || !mem.space.is_memory(addr, len) {
        return err("it is not RAM");
    }
    Ok(())
}

/// Variations of the boot area's tables. `Default` is what the loaders write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableOptions {
    /// Add the DPL3 segments [`SEL_USER_DATA`] and [`SEL_USER_CODE64`] (the GDTR limit must then
    /// be `GDT_USER_SIZE - 1`).
    pub user_segments: bool,
    /// The TSS's RSP0: the stack an interrupt from CPL3 switches to (0: none).
    pub rsp0: u64,
    /// The TSS's IST1: the stack of IDT gates that name IST 1 (0: none).
    pub ist1: u64,
    /// Large pages lying wholly below this address lose the user bit (0: every page is user).
    pub supervisor_below: u64,
    /// Large pages at or above this address are not present (at most 4 GiB is mapped).
    pub mapped_end: u64,
}

impl Default for TableOptions {
    fn default() -> Self {
        Self {
            user_segments: false,
            rsp0: 0,
            ist1: 0,
            supervisor_below: 0,
            mapped_end: FOUR_GIB,
        }
    }
}

/// The GDT, the TSS and the page tables: the bytes of `[GDT_ADDR, INFO_ADDR)`.
fn tables() -> Vec<u8> {
    tables_with(&TableOptions::default())
}

/// The GDT, the TSS and the page tables as `opts` says: the bytes of `[GDT_ADDR, INFO_ADDR)`.
fn tables_with(opts: &TableOptions) -> Vec<u8> {
    let mut area = vec![0u8; (INFO_ADDR - GDT_ADDR) as usize];
    let mut put = |addr: u64, value: u64| {
        let at = (addr - GDT_ADDR) as usize;
        area[at..at + 8].copy_from_slice(&value.to_le_bytes());
    };
    let tss = tss_segment();
    let mut gdt = vec![
        0,
        code64_segment().to_descriptor(),
        data_segment().to_descriptor(),
        code32_segment().to_descriptor(),
        tss.to_descriptor(),
        // Upper half of the 16-byte system descriptor: base bits 63:32.
        tss.base >> 32,
    ];
    if opts.user_segments {
        gdt.push(user_data_segment().to_descriptor());
        gdt.push(user_code64_segment().to_descriptor());
    }
    for (i, d) in gdt.iter().enumerate() {
        put(GDT_ADDR + 8 * i as u64, *d);
    }
    put(PML4_ADDR, PDPT_ADDR | PTE_PRW_USER);
    for gib in 0..PD_COUNT {
        let pd = PD_ADDR + gib * 0x1000;
        put(PDPT_ADDR + 8 * gib, pd | PTE_PRW_USER);
        for i in 0..512 {
            let page = (gib * 512 + i) * LARGE_PAGE;
            let entry = if page >= opts.mapped_end {
                0
            } else if page + LARGE_PAGE <= opts.supervisor_below {
                // Present and writable, without the user bit.
                page | PDE_PS | (PTE_PRW_USER & !4)
            } else {
                page | PDE_PS | PTE_PRW_USER
            };
            put(pd + 8 * i, entry);
        }
    }
    put(TSS_ADDR + TSS_RSP0, opts.rsp0);
    put(TSS_ADDR + TSS_IST1, opts.ist1);
    let iomap = (TSS_ADDR + TSS_IOMAP_BASE - GDT_ADDR) as usize;
    area[iomap..iomap + 2].copy_from_slice(&(TSS_SIZE as u16).to_le_bytes());
    area
}

/// Writes the GDT, TSS and page tables as `opts` says into `[GDT_ADDR, INFO_ADDR)` of `space`
/// (for machines that are not booted by a loader, such as the instruction harness's).
pub fn write_system_tables(space: &AddressSpace, opts: &TableOptions) -> Result<(), MemoryError> {
    space.load(GDT_ADDR, &tables_with(opts))
}

/// Writes the GDT, TSS and page tables, and clears the boot stack. The information page and
/// the command line are written by the multiboot-information code.
pub(crate) fn write_tables(mem: &BootMemory) -> Result<(), LoaderError> {
    mem.space
        .load(GDT_ADDR, &tables())
        .map_err(LoaderError::Memory)?;
    mem.space
        .zero(STACK_AREA.start, STACK_AREA.end - STACK_AREA.start)
        .map_err(LoaderError::Memory)
}

/// What protected- and long-mode entries share: the boot GDT, no IDT, the TSS, no LDT, the
/// boot stack, interrupts off, and the multiboot register convention (EAX magic, EBX info).
fn boot_common(info: u32) -> CpuState {
    let mut gpr = [0u64; 16];
    gpr[reg::RAX] = u64::from(MULTIBOOT_BOOTLOADER_MAGIC);
    gpr[reg::RBX] = u64::from(info);
    gpr[reg::RSP] = STACK_TOP;
    // CS is set by each mode; the rest hold the flat data segment.
    let data = data_segment();
    CpuState {
        gpr,
        rflags: bits::RFLAGS_FIXED,
        seg: [data, code32_segment(), data, data, data, data],
        gdt: DescriptorTable {
            base: GDT_ADDR,
            limit: (GDT_SIZE - 1) as u16,
        },
        idt: DescriptorTable { base: 0, limit: 0 },
        tr: tss_segment(),
        ldt: Segment {
            unusable: true,
            ..Segment::null_ldt()
        },
        ..CpuState::default()
    }
}

/// Multiboot's machine state (spec 3.2): 32-bit protected mode, paging off, flat CS (0x18) and
/// data segments (0x10), EAX = 0x2BADB002, EBX = `info`, interrupts off. Caches are enabled
/// (CR0.CD/NW clear), as a BIOS leaves them.
pub fn protected_mode_state(entry: u32, info: u32) -> CpuState {
    let mut s = boot_common(info);
    s.cr0 = bits::CR0_PE | bits::CR0_ET;
    s.seg[sreg::CS] = code32_segment();
    s.rip = u64::from(entry);
    s
}

/// 64-bit long mode on the boot area's identity map: CR3 = PML4, PAE, EFER.LME|LMA, CS = 0x08,
/// RSP = the boot stack, RDI = `info` and RSI = 0x2BADB002 (EAX/EBX as in protected mode too).
pub fn long_mode_state(entry: u64, info: u32) -> CpuState {
    let mut s = boot_common(info);
    s.cr0 = bits::CR0_PE | bits::CR0_MP | bits::CR0_ET | bits::CR0_NE | bits::CR0_WP | bits::CR0_PG;
    s.cr3 = PML4_ADDR;
    s.cr4 = bits::CR4_PAE | bits::CR4_OSFXSR | bits::CR4_OSXMMEXCPT;
    s.efer = bits::EFER_LME | bits::EFER_LMA;
    s.seg[sreg::CS] = code64_segment();
    s.gpr[reg::RDI] = u64::from(info);
    s.gpr[reg::RSI] = u64::from(MULTIBOOT_BOOTLOADER_MAGIC);
    s.rip = entry;
    s
}

/// 64-bit mode at CPL3 on tables written with [`TableOptions::user_segments`]: as
/// [`long_mode_state`], with CS = 0x3b, SS/DS/ES = 0x33, FS/GS null, RSP = `rsp`, RFLAGS = IF,
/// and every general register but RSP zero.
pub fn user_mode_state(entry: u64, rsp: u64) -> CpuState {
    let mut s = long_mode_state(entry, 0);
    s.gpr = [0; 16];
    s.gpr[reg::RSP] = rsp;
    s.rflags = bits::RFLAGS_FIXED | bits::RFLAGS_IF;
    s.gdt.limit = (GDT_USER_SIZE - 1) as u16;
    let data = user_data_segment();
    let null = Segment {
        unusable: true,
        ..Segment::default()
    };
    s.seg = [data, user_code64_segment(), data, data, null, null];
    s
}

/// Real mode at `addr` (below 1 MiB): CS = addr >> 4, IP = addr & 0xf, other segments 0,
/// SS:SP = 0:0x7c00; everything else as after RESET, with caches enabled (CR0 = ET).
pub fn real_mode_state(addr: u32) -> CpuState {
    let mut s = CpuState::default();
    // Truncation is what real mode addressing means; callers keep addr below 1 MiB.
    s.seg[sreg::CS] = Segment::real_mode((addr >> 4) as u16, true);
    s.rip = u64::from(addr & 0xf);
    for (i, seg) in s.seg.iter_mut().enumerate() {
        if i != sreg::CS {
            *seg = Segment::real_mode(0, false);
        }
    }
    s.gpr[reg::RSP] = REAL_MODE_STACK;
    s.cr0 = bits::CR0_ET;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u64_in(area: &[u8], addr: u64) -> u64 {
        let at = (addr - GDT_ADDR) as usize;
        u64::from_le_bytes(area[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn gdt_holds_the_classic_descriptors() {
        let t = tables();
        assert_eq!(u64_in(&t, GDT_ADDR), 0);
        assert_eq!(u64_in(&t, GDT_ADDR + 0x08), 0x00af_9b00_0000_ffff);
        assert_eq!(u64_in(&t, GDT_ADDR + 0x10), 0x00cf_9300_0000_ffff);
        assert_eq!(u64_in(&t, GDT_ADDR + 0x18), 0x00cf_9b00_0000_ffff);
        // 64-bit busy TSS at 0x1800, limit 0x67.
        assert_eq!(u64_in(&t, GDT_ADDR + 0x20), 0x0000_8b00_1800_0067);
        assert_eq!(u64_in(&t, GDT_ADDR + 0x28), 0);
    }

    #[test]
    fn page_tables_identity_map_four_gib() {
        let t = tables();
        assert_eq!(u64_in(&t, PML4_ADDR), PDPT_ADDR | 7);
        assert_eq!(u64_in(&t, PML4_ADDR + 8), 0);
        assert_eq!(u64_in(&t, PDPT_ADDR + 3 * 8), (PD_ADDR + 0x3000) | 7);
        assert_eq!(u64_in(&t, PDPT_ADDR + 4 * 8), 0);
        assert_eq!(u64_in(&t, PD_ADDR), 0x87);
        assert_eq!(u64_in(&t, PD_ADDR + 8), 0x20_0087);
        // The last 2 MiB below 4 GiB.
        assert_eq!(u64_in(&t, PD_ADDR + 0x3ff8), 0xffe0_0087);
    }

    #[test]
    fn user_options_add_segments_stacks_and_page_rights() {
        let t = tables_with(&TableOptions {
            user_segments: true,
            rsp0: 0x1_0000,
            ist1: 0x2_0000,
            supervisor_below: 2 << 20,
            mapped_end: 64 << 20,
        });
        // The classic slots are unchanged.
        assert_eq!(u64_in(&t, GDT_ADDR + 0x08), 0x00af_9b00_0000_ffff);
        // DPL3 data (0xf3) and DPL3 64-bit code (0xfb).
        assert_eq!(u64_in(&t, GDT_ADDR + 0x30), 0x00cf_f300_0000_ffff);
        assert_eq!(u64_in(&t, GDT_ADDR + 0x38), 0x00af_fb00_0000_ffff);
        assert_eq!(u64_in(&t, TSS_ADDR + 4), 0x1_0000);
        assert_eq!(u64_in(&t, TSS_ADDR + 0x24), 0x2_0000);
        // First 2 MiB: no user bit; then user pages up to 64 MiB; then nothing.
        assert_eq!(u64_in(&t, PD_ADDR), 0x83);
        assert_eq!(u64_in(&t, PD_ADDR + 8), 0x20_0087);
        assert_eq!(u64_in(&t, PD_ADDR + 31 * 8), 0x3e0_0087);
        assert_eq!(u64_in(&t, PD_ADDR + 32 * 8), 0);
        let s = user_mode_state(0x40_0000, 0x3f_0000);
        assert_eq!(s.cpl(), 3);
        assert_eq!(s.mode(), tandem_target_x86_64::CpuMode::Long64);
        assert_eq!(s.gdt.limit, 0x3f);
    }

    #[test]
    fn real_mode_state_splits_the_address() {
        let s = real_mode_state(0x12345);
        assert_eq!(s.seg[sreg::CS].selector, 0x1234);
        assert_eq!(s.seg[sreg::CS].base, 0x12340);
        assert_eq!(s.rip, 5);
        assert_eq!(s.seg[sreg::SS].base, 0);
        assert_eq!(s.gpr[reg::RSP], 0x7c00);
        assert_eq!(s.cr0, bits::CR0_ET);
    }
}
