//! The port-I/O bus: 64 Ki ports, each range owned by one device.
//!
//! As on a PC, an access nobody decodes reads as all-ones and writes vanish. An access must fit
//! entirely inside one device's range; one that straddles two is unclaimed (it would be split
//! on real hardware only for devices that decode each byte, which none here needs).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::device::SharedPortDevice;
use crate::error::MapError;

struct PortRange {
    base: u16,
    len: u16,
    /// Offset the device sees for port `base`.
    first_offset: u16,
    device: SharedPortDevice,
}

/// The port-I/O bus.
#[derive(Default)]
pub struct PortBus {
    ranges: Vec<PortRange>,
    unclaimed: AtomicU64,
}

impl PortBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `device` at ports `[base, base + len)`; it sees offsets from `base`.
    pub fn register(
        &mut self,
        base: u16,
        len: u16,
        device: SharedPortDevice,
    ) -> Result<(), MapError> {
        self.register_with_offset(base, len, device, 0)
    }

    /// Maps `device` at `[base, base + len)`, where port `base` reaches it as `first_offset`.
    /// One device with scattered ports (the PIC at 0x20 and 0xa0) is mapped once per range with
    /// offsets from one nominal base.
    pub fn register_with_offset(
        &mut self,
        base: u16,
        len: u16,
        device: SharedPortDevice,
        first_offset: u16,
    ) -> Result<(), MapError> {
        let end = u32::from(base) + u32::from(len);
        if len == 0 || end > 0x1_0000 {
            return Err(MapError::BadRange {
                base: base.into(),
                len: len.into(),
            });
        }
        let overlaps = self.ranges.iter().any(|r| {
            u32::from(base) < u32::from(r.base) + u32::from(r.len) && u32::from(r.base) < end
        });
        if overlaps {
            return Err(MapError::Overlap {
                base: base.into(),
                len: len.into(),
            });
        }
        let at = self.ranges.partition_point(|r| r.base < base);
        self.ranges.insert(
            at,
            PortRange {
                base,
                len,
                first_offset,
                device,
            },
        );
        Ok(())
    }

    fn find(&self, port: u16, size: usize) -> Option<(&PortRange, u16)> {
        let idx = self
            .ranges
            .partition_point(|r| r.base <= port)
            .checked_sub(1)?;
        let r = &self.ranges[idx];
        let off = port - r.base;
        (u32::from(off) + size as u32 <= u32::from(r.len))
            .then_some((r, off.wrapping_add(r.first_offset)))
    }

    /// A guest `in`: fills `data`; returns false if no device claimed it (data is all-ones).
    pub fn read(&self, port: u16, data: &mut [u8]) -> bool {
        match self.find(port, data.len()) {
            Some((r, off)) => {
                let mut dev = r.device.lock().unwrap_or_else(|e| e.into_inner());
                dev.read(off, data);
                true
            }
            None => {
                data.fill(0xff);
                self.unclaimed.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// A guest `out`; returns false if no device claimed it.
    pub fn write(&self, port: u16, data: &[u8]) -> bool {
        match self.find(port, data.len()) {
            Some((r, off)) => {
                let mut dev = r.device.lock().unwrap_or_else(|e| e.into_inner());
                dev.write(off, data);
                true
            }
            None => {
                self.unclaimed.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// How many accesses no device claimed so far.
    pub fn unclaimed_accesses(&self) -> u64 {
        self.unclaimed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::device::PortDevice;

    #[derive(Default)]
    struct Latch {
        last: Vec<(u16, Vec<u8>)>,
    }
    impl PortDevice for Latch {
        fn read(&mut self, offset: u16, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u16, data: &[u8]) {
            self.last.push((offset, data.to_vec()));
        }
    }

    #[test]
    fn dispatches_by_range_with_offsets() {
        let dev = Arc::new(Mutex::new(Latch::default()));
        let mut bus = PortBus::new();
        bus.register(0x3f8, 8, dev.clone()).unwrap();
        let mut b = [0u8; 1];
        assert!(bus.read(0x3fd, &mut b));
        assert_eq!(b[0], 5);
        assert!(bus.write(0x3f8, &[0x41]));
        assert_eq!(dev.lock().unwrap().last, vec![(0, vec![0x41])]);
    }

    #[test]
    fn unclaimed_reads_all_ones_and_straddling_is_unclaimed() {
        let dev = Arc::new(Mutex::new(Latch::default()));
        let mut bus = PortBus::new();
        bus.register(0x70, 2, dev).unwrap();
        let mut b = [0u8; 4];
        assert!(!bus.read(0x71, &mut b));
        assert_eq!(b, [0xff; 4]);
        assert!(!bus.read(0x10, &mut b[..1]));
        assert_eq!(bus.unclaimed_accesses(), 2);
    }

    #[test]
    fn rejects_overlap_and_overflow() {
        let mut bus = PortBus::new();
        let d = || Arc::new(Mutex::new(Latch::default()));
        bus.register(0x40, 4, d()).unwrap();
        assert!(bus.register(0x43, 1, d()).is_err());
        assert!(bus.register(0xfffe, 4, d()).is_err());
        assert!(bus.register(0x10, 0, d()).is_err());
        bus.register(0x44, 1, d()).unwrap();
    }

    #[test]
    fn scattered_ranges_share_one_offset_space() {
        let dev = Arc::new(Mutex::new(Latch::default()));
        let mut bus = PortBus::new();
        bus.register_with_offset(0x20, 2, dev.clone(), 0).unwrap();
        bus.register_with_offset(0xa0, 2, dev.clone(), 0x80)
            .unwrap();
        bus.write(0xa1, &[1]);
        bus.write(0x21, &[2]);
        assert_eq!(
            dev.lock().unwrap().last,
            vec![(0x81, vec![1]), (1, vec![2])]
        );
    }
}
