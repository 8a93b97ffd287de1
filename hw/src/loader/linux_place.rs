//! Where the Linux loader puts the kernel and the initrd, chosen from the e820 map.
//!
//! The kernel goes at `pref_address` when the whole of `init_size` fits there (the kernel
//! then unpacks in place without moving), else at the lowest `kernel_alignment`-aligned address
//! from 1 MiB up where it fits; everything below 4 GiB, as the boot area's identity map covers
//! no more and the protocol wants the kernel's `init_size` identity-mapped at entry. The initrd
//! goes page-aligned as high as possible below `min(initrd_addr_max + 1, 4 GiB)`, clear of the
//! kernel's `init_size` and the loader's boot area, as QEMU and GRUB place it: high, so that the
//! kernel's own early allocations (which start low) do not collide with it.
//! Wart: nothing is ever placed above 4 GiB, even for kernels with XLF_CAN_BE_LOADED_ABOVE_4G.

use std::ops::Range;

use super::boot_setup::{check_placement, BOOT_AREA, STACK_AREA};
use super::error::LoaderError;
use super::{BootMemory, EntryMode};
use crate::e820::E820Kind;

/// Lowest address the kernel or the initrd is put at: the end of the legacy hole.
pub const HIGH_MEMORY: u64 = 0x10_0000;
/// Identity-mapped at entry, and reachable by the 32-bit boot_params fields.
pub const FOUR_GIB: u64 = 1 << 32;
/// Initrd alignment (the protocol asks for page alignment).
pub const PAGE: u64 = 0x1000;

fn align_up(v: u64, align: u64) -> Option<u64> {
    // `align` is a power of two (checked by the header parser, or a constant here).
    v.checked_add(align - 1).map(|x| x & !(align - 1))
}

/// True if `len` bytes at `addr` are RAM, clear of the boot area, and end below 4 GiB.
fn fits(mem: &BootMemory, addr: u64, len: u64) -> bool {
    addr.checked_add(len).is_some_and(|end| end <= FOUR_GIB)
        && check_placement(mem, addr, len, EntryMode::Long).is_ok()
}

/// The kernel's load address for `len` bytes of memory (its `init_size`), preferring
/// `pref` and otherwise the lowest `align`-aligned address from 1 MiB up.
pub(crate) fn place_kernel(
    mem: &BootMemory,
    pref: u64,
    align: u64,
    len: u64,
) -> Result<u64, LoaderError> {
    let preferred = align_up(pref.max(HIGH_MEMORY), align);
    let mut candidates: Vec<u64> = preferred.into_iter().collect();
    // Then the start of each RAM range above the legacy hole, in address order.
    let mut ram: Vec<_> = mem
        .e820
        .iter()
        .filter(|e| e.kind == E820Kind::Ram && e.end() > HIGH_MEMORY)
        .map(|e| e.addr.max(HIGH_MEMORY))
        .collect();
    ram.sort_unstable();
    candidates.extend(ram.into_iter().filter_map(|a| align_up(a, align)));
    candidates
        .into_iter()
        .find(|&a| fits(mem, a, len))
        .ok_or(LoaderError::DoesNotFit {
        addr: preferred.unwrap_or(pref),
        len,
        why: "no RAM below 4 GiB holds the Linux kernel and the memory it unpacks into (init_size)",
    })
}

/// `range` less every range of `avoid`, as the pieces that remain.
fn subtract(range: Range<u64>, avoid: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut pieces = vec![range];
    for a in avoid {
        pieces = pieces
            .into_iter()
            .flat_map(|p| {
                if a.end <= p.start || p.end <= a.start {
                    return vec![p];
                }
                let mut left = Vec::new();
                if p.start < a.start {
                    left.push(p.start..a.start);
                }
                if a.end < p.end {
                    left.push(a.end..p.end);
                }
                left
            })
            .collect();
    }
    pieces
}

/// The initrd's place: `len` bytes, page-aligned, as high as possible below `limit`
/// (exclusive; the caller passes `min(initrd_addr_max + 1, 4 GiB)`), in RAM from 1 MiB up,
/// clear of `kernel` and the boot area.
pub(crate) fn place_initrd(
    mem: &BootMemory,
    len: u64,
    limit: u64,
    kernel: &Range<u64>,
) -> Result<Range<u64>, LoaderError> {
    let limit = limit.min(FOUR_GIB);
    let avoid = [kernel.clone(), BOOT_AREA, STACK_AREA];
    let mut free: Vec<Range<u64>> = mem
        .e820
        .iter()
        .filter(|e| e.kind == E820Kind::Ram)
        .map(|e| e.addr.max(HIGH_MEMORY)..e.end().min(limit))
        .filter(|r| r.start < r.end)
        .flat_map(|r| subtract(r, &avoid))
        .collect();
    // Highest first.
    free.sort_unstable_by_key(|r| std::cmp::Reverse(r.end));
    for r in free {
        let Some(top) = r.end.checked_sub(len) else {
            continue;
        };
        let start = top & !(PAGE - 1);
        if start >= r.start && fits(mem, start, len) {
            return Ok(start..start + len);
        }
    }
    Err(LoaderError::DoesNotFit {
        addr: HIGH_MEMORY,
        len,
        why: "no RAM below the kernel's initrd_addr_max (and 4 GiB) outside the kernel holds the initrd",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtract_splits_and_trims() {
        assert_eq!(
            subtract(0..10, std::slice::from_ref(&(3..5))),
            vec![0..3, 5..10]
        );
        assert_eq!(subtract(0..10, &[0..4, 8..12]), vec![4..8]);
        assert_eq!(
            subtract(0..10, std::slice::from_ref(&(0..10))),
            Vec::<Range<u64>>::new()
        );
        assert_eq!(
            subtract(0..10, std::slice::from_ref(&(20..30))),
            vec![0..10]
        );
    }

    #[test]
    fn align_up_refuses_to_wrap() {
        assert_eq!(align_up(0x10_0001, 0x20_0000), Some(0x20_0000));
        assert_eq!(align_up(u64::MAX, 0x1000), None);
    }
}
