//! The multiboot v1 information structure (Multiboot Specification 0.6.96, section 3.3) and the
//! command line, as every protected- or long-mode entry passes them.
//!
//! Layout of the information page at [`INFO_ADDR`]: the 116-byte structure, the boot loader name,
//! the module list and its string, then the memory map in the spec's size-prefixed e820 format.
//! Provided: `mem_lower`/`mem_upper` (flags bit 0), the command line (bit 2), at most one module,
//! the initrd (bit 3), the memory map (bit 6), the boot loader name "tandem" (bit 9).
//! Warts: no boot device, symbols, drives, APM or video information. A command line with a NUL
//! byte inside is cut there by the guest. The initrd goes in the first RAM after the kernel
//! where it fits whole, so it can land above the boot stack when the kernel sits below it.

use std::ops::Range;

use super::boot_setup::{
    check_placement, BOOT_AREA, CMDLINE_ADDR, CMDLINE_MAX, INFO_ADDR, INFO_END, STACK_AREA,
};
use super::error::LoaderError;
use super::{BootMemory, EntryMode};
use crate::e820::{E820Entry, E820Kind};

/// Flags bit 0: `mem_lower` and `mem_upper` are valid.
pub const INFO_MEMORY: u32 = 1 << 0;
/// Flags bit 2: `cmdline` is valid.
pub const INFO_CMDLINE: u32 = 1 << 2;
/// Flags bit 3: `mods_count` and `mods_addr` are valid.
pub const INFO_MODS: u32 = 1 << 3;
/// Flags bit 6: `mmap_length` and `mmap_addr` are valid.
pub const INFO_MMAP: u32 = 1 << 6;
/// Flags bit 9: `boot_loader_name` is valid.
pub const INFO_LOADER_NAME: u32 = 1 << 9;

/// Offsets of the fields written, from the start of the structure.
pub mod offset {
    #![allow(missing_docs)]
    pub const FLAGS: u64 = 0;
    pub const MEM_LOWER: u64 = 4;
    pub const MEM_UPPER: u64 = 8;
    pub const CMDLINE: u64 = 16;
    pub const MODS_COUNT: u64 = 20;
    pub const MODS_ADDR: u64 = 24;
    pub const MMAP_LENGTH: u64 = 44;
    pub const MMAP_ADDR: u64 = 48;
    pub const BOOT_LOADER_NAME: u64 = 64;
}

/// Where the boot loader name goes.
pub const LOADER_NAME_ADDR: u64 = INFO_ADDR + 0x80;
/// The boot loader's name, as the guest reads it.
pub const LOADER_NAME: &str = "tandem";
/// The module list (one 16-byte entry: mod_start, mod_end, string, reserved).
pub const MODULE_ADDR: u64 = INFO_ADDR + 0xa0;
/// The module's string.
pub const MODULE_STRING_ADDR: u64 = INFO_ADDR + 0xb0;
/// The initrd module's string.
pub const MODULE_STRING: &str = "initrd";
/// The memory map: entries of 24 bytes (size = 20, base, length, type).
pub const MMAP_ADDR: u64 = INFO_ADDR + 0x100;
/// Bytes in one memory map entry, its size field included.
pub const MMAP_ENTRY_SIZE: u64 = 24;
/// Most e820 entries the page holds.
pub const MMAP_MAX_ENTRIES: usize = ((INFO_END - MMAP_ADDR) / MMAP_ENTRY_SIZE) as usize;

const PAGE: u64 = 0x1000;
const FOUR_GIB: u64 = 1 << 32;
const LOW_MEMORY_END: u64 = 0xa0000;
const ONE_MIB: u64 = 0x10_0000;

/// Fails if `cmdline` does not fit its page.
pub(crate) fn check_cmdline(cmdline: &str) -> Result<(), LoaderError> {
    if cmdline.len() > CMDLINE_MAX {
        return Err(LoaderError::CmdlineTooLong {
            len: cmdline.len(),
            max: CMDLINE_MAX,
        });
    }
    Ok(())
}

/// Fails if the memory map does not fit the information page.
pub(crate) fn check_e820(e820: &[E820Entry]) -> Result<(), LoaderError> {
    if e820.len() > MMAP_MAX_ENTRIES {
        return Err(LoaderError::E820TooLarge {
            entries: e820.len(),
            max: MMAP_MAX_ENTRIES,
        });
    }
    Ok(())
}

/// End of the run of RAM (adjacent e820 RAM entries joined) that contains `from`, or `from`
/// itself if it is not RAM.
fn ram_run_end(e820: &[E820Entry], from: u64) -> u64 {
    let mut cur = from;
    while let Some(next) = e820
        .iter()
        .filter(|e| e.kind == E820Kind::Ram && e.addr <= cur && cur < e.end())
        .map(E820Entry::end)
        .max()
    {
        cur = next;
    }
    cur
}

/// `(mem_lower, mem_upper)` in KiB: RAM from 0 (at most 640 KiB), and RAM from 1 MiB up to the
/// first hole (spec 3.3).
pub fn memory_kib(e820: &[E820Entry]) -> (u32, u32) {
    let lower = ram_run_end(e820, 0).min(LOW_MEMORY_END) / 1024;
    let upper = (ram_run_end(e820, ONE_MIB) - ONE_MIB) / 1024;
    // lower is at most 640; upper saturates for absurdly large maps rather than wrapping.
    (lower as u32, u32::try_from(upper).unwrap_or(u32::MAX))
}

fn align_up(x: u64) -> Option<u64> {
    Some(x.checked_add(PAGE - 1)? & !(PAGE - 1))
}

/// RAM ranges below 4 GiB, sorted, adjacent entries joined.
fn ram_below_4g(e820: &[E820Entry]) -> Vec<Range<u64>> {
    let mut ram: Vec<Range<u64>> = e820
        .iter()
        .filter(|e| e.kind == E820Kind::Ram && e.addr < FOUR_GIB)
        .map(|e| e.addr..e.end().min(FOUR_GIB))
        .collect();
    ram.sort_by_key(|r| r.start);
    let mut joined: Vec<Range<u64>> = Vec::with_capacity(ram.len());
    for r in ram {
        match joined.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => joined.push(r),
        }
    }
    joined
}

/// Picks the initrd's place: the first page-aligned address at or after `kernel_end` where `len`
/// bytes fit whole in RAM below 4 GiB, clear of the boot area and the boot stack.
pub(crate) fn place_initrd(
    mem: &BootMemory,
    kernel_end: u64,
    len: u64,
) -> Result<Range<u64>, LoaderError> {
    let first = align_up(kernel_end).unwrap_or(u64::MAX);
    let fail = LoaderError::DoesNotFit {
        addr: first,
        len,
        why: "no RAM below 4 GiB after the kernel holds the initrd",
    };
    for ram in ram_below_4g(mem.e820) {
        let Some(mut start) = align_up(first.max(ram.start)) else {
            break;
        };
        // The reserved ranges are sorted, so one pass moves past both if need be.
        for reserved in [&BOOT_AREA, &STACK_AREA] {
            let end = start.saturating_add(len.max(1));
            if start < reserved.end && reserved.start < end {
                start = align_up(reserved.end).unwrap_or(u64::MAX);
            }
        }
        let Some(end) = start.checked_add(len) else {
            break;
        };
        // mod_end is a 32-bit field: the module must end below 4 GiB, not at it.
        if end <= ram.end
            && end < FOUR_GIB
            && check_placement(mem, start, len, EntryMode::Protected).is_ok()
        {
            return Ok(start..end);
        }
    }
    Err(fail)
}

fn put32(page: &mut [u8], at: u64, v: u32) {
    let at = at as usize;
    page[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(page: &mut [u8], at: u64, v: u64) {
    let at = at as usize;
    page[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put_str(page: &mut [u8], at: u64, s: &str) {
    // The page was zeroed, so the terminating NUL is already there.
    let at = at as usize;
    page[at..at + s.len()].copy_from_slice(s.as_bytes());
}

/// The bytes of the information page `[INFO_ADDR, INFO_END)`. The caller has checked the
/// e820 map's size and that `initrd` lies below 4 GiB.
fn info_page(e820: &[E820Entry], initrd: Option<&Range<u64>>) -> Vec<u8> {
    let mut page = vec![0u8; (INFO_END - INFO_ADDR) as usize];
    let mut flags = INFO_MEMORY | INFO_CMDLINE | INFO_MMAP | INFO_LOADER_NAME;
    let (lower, upper) = memory_kib(e820);
    put32(&mut page, offset::MEM_LOWER, lower);
    put32(&mut page, offset::MEM_UPPER, upper);
    put32(&mut page, offset::CMDLINE, CMDLINE_ADDR as u32);
    put_str(&mut page, LOADER_NAME_ADDR - INFO_ADDR, LOADER_NAME);
    put32(&mut page, offset::BOOT_LOADER_NAME, LOADER_NAME_ADDR as u32);
    if let Some(r) = initrd {
        flags |= INFO_MODS;
        put32(&mut page, offset::MODS_COUNT, 1);
        put32(&mut page, offset::MODS_ADDR, MODULE_ADDR as u32);
        let m = MODULE_ADDR - INFO_ADDR;
        put32(&mut page, m, r.start as u32);
        put32(&mut page, m + 4, r.end as u32);
        put32(&mut page, m + 8, MODULE_STRING_ADDR as u32);
        put_str(&mut page, MODULE_STRING_ADDR - INFO_ADDR, MODULE_STRING);
    }
    for (i, e) in e820.iter().enumerate() {
        let at = MMAP_ADDR - INFO_ADDR + i as u64 * MMAP_ENTRY_SIZE;
        // The size field counts the bytes after itself.
        put32(&mut page, at, (MMAP_ENTRY_SIZE - 4) as u32);
        put64(&mut page, at + 4, e.addr);
        put64(&mut page, at + 12, e.size);
        put32(&mut page, at + 20, e.kind as u32);
    }
    put32(
        &mut page,
        offset::MMAP_LENGTH,
        (e820.len() as u64 * MMAP_ENTRY_SIZE) as u32,
    );
    put32(&mut page, offset::MMAP_ADDR, MMAP_ADDR as u32);
    put32(&mut page, offset::FLAGS, flags);
    page
}

/// Writes the information page and the command line; returns the structure's address. The
/// caller has run [`check_cmdline`] and [`check_e820`] and placed `initrd` with
/// [`place_initrd`].
pub(crate) fn write_boot_info(
    mem: &BootMemory,
    cmdline: &str,
    initrd: Option<&Range<u64>>,
) -> Result<u32, LoaderError> {
    check_cmdline(cmdline)?;
    check_e820(mem.e820)?;
    let mut line = vec![0u8; (BOOT_AREA.end - CMDLINE_ADDR) as usize];
    line[..cmdline.len()].copy_from_slice(cmdline.as_bytes());
    mem.space
        .load(INFO_ADDR, &info_page(mem.e820, initrd))
        .map_err(LoaderError::Memory)?;
    mem.space
        .load(CMDLINE_ADDR, &line)
        .map_err(LoaderError::Memory)?;
    Ok(INFO_ADDR as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ram(addr: u64, size: u64) -> E820Entry {
        E820Entry {
            addr,
            size,
            kind: E820Kind::Ram,
        }
    }

    #[test]
    fn memory_kib_stops_at_holes() {
        let map = [
            ram(0, 0x9fc00),
            E820Entry {
                addr: 0x9fc00,
                size: 0x400,
                kind: E820Kind::Reserved,
            },
            ram(0x10_0000, 0x10_0000),
            // Adjacent: joins the run.
            ram(0x20_0000, 0x10_0000),
            // After a hole: not counted.
            ram(0x40_0000, 0x10_0000),
        ];
        assert_eq!(memory_kib(&map), (639, 2048));
        // Low RAM beyond 640 KiB is capped; no RAM at 1 MiB gives 0.
        assert_eq!(memory_kib(&[ram(0, 0xc0000)]), (640, 0));
        assert_eq!(memory_kib(&[]), (0, 0));
    }

    #[test]
    fn ram_runs_are_joined_and_cut_at_4g() {
        let map = [
            ram(0x2000, 0x1000),
            ram(0, 0x2000),
            ram(0xffff_f000, 0x2000),
        ];
        assert_eq!(ram_below_4g(&map), vec![0..0x3000, 0xffff_f000..FOUR_GIB]);
    }

    #[test]
    fn long_command_lines_are_refused() {
        assert!(check_cmdline(&"x".repeat(CMDLINE_MAX)).is_ok());
        assert_eq!(
            check_cmdline(&"x".repeat(CMDLINE_MAX + 1)),
            Err(LoaderError::CmdlineTooLong {
                len: CMDLINE_MAX + 1,
                max: CMDLINE_MAX
            })
        );
    }

    #[test]
    fn memory_map_size_is_bounded() {
        assert!(check_e820(&vec![ram(0, 1); MMAP_MAX_ENTRIES]).is_ok());
        assert!(matches!(
            check_e820(&vec![ram(0, 1); MMAP_MAX_ENTRIES + 1]),
            Err(LoaderError::E820TooLarge { .. })
        ));
    }
}
