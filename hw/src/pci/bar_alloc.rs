//! Placing BARs in the bus windows, as firmware does at boot (there is none here).
//!
//! Every BAR is naturally aligned (its address a multiple of its size, as the BAR's read-only
//! low bits force anyway). Largest first: with power-of-two sizes, a bump allocator that
//! places them in decreasing size order leaves no gaps, so a window holds any set of BARs
//! whose sizes add up to no more than its aligned space. Memory BARs (32- and 64-bit alike,
//! for now) go in the MMIO window, I/O BARs in the I/O window. Ties keep (slot, BAR) order so
//! the layout is the same on every run.

use super::bus::{PciError, PciWindow};
use super::device::BarKind;

/// A BAR to place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarRequest {
    /// Slot of the function.
    pub slot: u8,
    /// BAR index.
    pub bar: u8,
    /// Its kind.
    pub kind: BarKind,
    /// Its size (a power of two).
    pub size: u64,
}

/// Addresses for `requests`, in the order given: memory BARs in `mmio`, I/O BARs in `io`.
pub fn allocate(
    requests: &[BarRequest],
    mmio: PciWindow,
    io: PciWindow,
) -> Result<Vec<u64>, PciError> {
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by_key(|&i| {
        let r = &requests[i];
        (std::cmp::Reverse(r.size), r.slot, r.bar)
    });
    let mut next_mem = Some(mmio.base);
    let mut next_io = Some(io.base);
    let mut out = vec![0u64; requests.len()];
    for i in order {
        let r = requests[i];
        let (cursor, window, space) = match r.kind {
            BarKind::Io => (&mut next_io, io, "I/O"),
            BarKind::Memory32 | BarKind::Memory64 { .. } => (&mut next_mem, mmio, "memory"),
        };
        let full = PciError::WindowFull {
            space,
            size: r.size,
            base: window.base,
            len: window.len,
        };
        if !r.size.is_power_of_two() {
            return Err(PciError::BadBar {
                slot: r.slot,
                bar: r.bar,
                size: r.size,
            });
        }
        // The cursor is None once the window reached the top of the address space.
        let addr = cursor
            .and_then(|c| c.checked_next_multiple_of(r.size))
            .ok_or(full.clone())?;
        let last = addr.checked_add(r.size - 1).ok_or(full.clone())?;
        if last > window.last() {
            return Err(full);
        }
        out[i] = addr;
        *cursor = last.checked_add(1);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MMIO: PciWindow = PciWindow {
        base: 0xe000_0000,
        len: 0x1ec0_0000,
    };
    const IO: PciWindow = PciWindow {
        base: 0xc000,
        len: 0x4000,
    };

    fn req(slot: u8, bar: u8, kind: BarKind, size: u64) -> BarRequest {
        BarRequest {
            slot,
            bar,
            kind,
            size,
        }
    }

    #[test]
    fn bars_are_packed_largest_first_and_naturally_aligned() {
        let m64 = BarKind::Memory64 { prefetchable: true };
        let rs = [
            req(1, 0, BarKind::Io, 0x40),
            req(1, 1, BarKind::Memory32, 0x1000),
            req(1, 4, m64, 0x4000),
            req(2, 0, BarKind::Io, 0x100),
            req(2, 1, BarKind::Memory32, 0x1000),
            req(3, 0, BarKind::Memory32, 0x10),
        ];
        let a = allocate(&rs, MMIO, IO).unwrap();
        assert_eq!(
            a,
            vec![
                0xc100,
                0xe000_4000,
                0xe000_0000,
                0xc000,
                0xe000_5000,
                0xe000_6000
            ]
        );
        for (r, addr) in rs.iter().zip(&a) {
            assert_eq!(addr % r.size, 0);
        }
    }

    #[test]
    fn a_full_window_is_an_error() {
        let rs = [
            req(1, 0, BarKind::Memory32, 0x1000_0000),
            req(2, 0, BarKind::Memory32, 0x1000_0000),
        ];
        assert!(matches!(
            allocate(&rs, MMIO, IO),
            Err(PciError::WindowFull {
                space: "memory",
                size: 0x1000_0000,
                ..
            })
        ));
        let io = [req(1, 0, BarKind::Io, 0x8000)];
        assert!(matches!(
            allocate(&io, MMIO, IO),
            Err(PciError::WindowFull { space: "I/O", .. })
        ));
        // The window's last byte is usable; the top of the address space cannot overflow.
        let top = PciWindow {
            base: u64::MAX - 0xfff,
            len: 0x1000,
        };
        let r = [req(1, 0, BarKind::Memory32, 0x1000)];
        assert_eq!(allocate(&r, top, IO).unwrap(), vec![u64::MAX - 0xfff]);
        let r = [req(1, 0, BarKind::Memory32, 0x2000)];
        assert!(allocate(&r, top, IO).is_err());
        let r = [req(1, 0, BarKind::Memory32, 0x3000)];
        assert!(matches!(
            allocate(&r, MMIO, IO),
            Err(PciError::BadBar { size: 0x3000, .. })
        ));
    }
}
