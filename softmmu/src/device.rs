//! The traits device models implement to sit on the port bus or in the MMIO space.
//!
//! A device sees offsets from the base it was mapped at and the access width as the slice
//! length (1, 2, 4 or 8 bytes, little-endian). It never learns which engine made the access.

use std::sync::{Arc, Mutex};

/// A device on the port-I/O bus.
pub trait PortDevice: Send {
    /// Guest `in` of `data.len()` bytes at `offset` from the device's base port.
    fn read(&mut self, offset: u16, data: &mut [u8]);
    /// Guest `out` of `data` at `offset` from the device's base port.
    fn write(&mut self, offset: u16, data: &[u8]);
}

/// A memory-mapped device.
pub trait MmioDevice: Send {
    /// Guest load of `data.len()` bytes at `offset` from the region's base.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// Guest store of `data` at `offset` from the region's base.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// A port device shared between the bus and its owner.
pub type SharedPortDevice = Arc<Mutex<dyn PortDevice>>;
/// An MMIO device shared between the address space and its owner.
pub type SharedMmioDevice = Arc<Mutex<dyn MmioDevice>>;

/// Little-endian value of an access of 1 to 8 bytes.
pub fn data_to_u64(data: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = data.len().min(8);
    b[..n].copy_from_slice(&data[..n]);
    u64::from_le_bytes(b)
}

/// Stores the low `data.len()` bytes of `value` little-endian.
pub fn u64_to_data(value: u64, data: &mut [u8]) {
    let b = value.to_le_bytes();
    let n = data.len().min(8);
    data[..n].copy_from_slice(&b[..n]);
}

/// Serves a wide port read from a device of byte registers, one byte per consecutive port,
/// as the ISA bus splits it; bytes past port 0xffff read all-ones.
pub fn read_bytewise(offset: u16, data: &mut [u8], mut read_byte: impl FnMut(u16) -> u8) {
    for (i, b) in data.iter_mut().enumerate() {
        *b = match u16::try_from(i).ok().and_then(|i| offset.checked_add(i)) {
            Some(off) => read_byte(off),
            None => 0xff,
        };
    }
}

/// Serves a wide port write to a device of byte registers, one byte per consecutive port.
pub fn write_bytewise(offset: u16, data: &[u8], mut write_byte: impl FnMut(u16, u8)) {
    for (i, &b) in data.iter().enumerate() {
        if let Some(off) = u16::try_from(i).ok().and_then(|i| offset.checked_add(i)) {
            write_byte(off, b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_accesses_split_into_consecutive_bytes() {
        let mut seen = vec![];
        write_bytewise(0xfffe, &[1, 2, 3, 4], |o, v| seen.push((o, v)));
        assert_eq!(seen, vec![(0xfffe, 1), (0xffff, 2)]);
        let mut data = [0u8; 3];
        read_bytewise(0xfffe, &mut data, |o| o as u8);
        assert_eq!(data, [0xfe, 0xff, 0xff]);
        assert_eq!(data_to_u64(&[1, 2]), 0x201);
        let mut d = [0u8; 2];
        u64_to_data(0x1234_5678, &mut d);
        assert_eq!(d, [0x78, 0x56]);
    }
}
