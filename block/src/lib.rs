//! The block layer: disk images behind one [`BlockDriver`] trait, as QEMU's
//! BlockDriverState is to its devices. Formats (raw, qcow2, QED) are drivers found by name in
//! a registry or probed by magic; a format driver reads and writes its image through a
//! protocol (a host file or block device), and may chain to a backing image. Nothing here
//! knows which device (virtio-blk, later others) uses a disk.

pub mod error;

pub use error::BlockError;

/// An open disk image, as a device sees it: a flat array of bytes.
///
/// Offsets and lengths come from the guest: every implementation checks them against
/// [`BlockDriver::size`] and returns [`BlockError::OutOfRange`], never panics.
pub trait BlockDriver: Send {
    /// The format's name as `-drive format=` spells it (`raw`, `qcow2`, `qed`).
    fn format_name(&self) -> &'static str;
    /// The virtual disk size in bytes.
    fn size(&self) -> u64;
    /// Whether writes are refused.
    fn is_read_only(&self) -> bool;
    /// Reads `buf.len()` bytes at byte `offset` (holes read as zeroes, or the backing image).
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError>;
    /// Writes `data` at byte `offset`.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError>;
    /// Makes every completed write durable (fdatasync of the files under the image).
    fn flush(&mut self) -> Result<(), BlockError>;
    /// The guest no longer needs `[offset, offset + len)`: the image may deallocate it. Reads of
    /// it afterwards return zeroes or the old data, as the device advertises.
    fn discard(&mut self, offset: u64, len: u64) -> Result<(), BlockError> {
        check_range(self.size(), offset, len)
    }
    /// Writes `len` zero bytes at `offset` (formats may record zero clusters instead).
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), BlockError> {
        check_range(self.size(), offset, len)?;
        let zeroes = vec![0u8; 64 << 10];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(zeroes.len() as u64);
            self.write_at(offset + done, &zeroes[..n as usize])?;
            done += n;
        }
        Ok(())
    }
}

/// Checks that `[offset, offset + len)` lies within a disk of `size` bytes.
pub fn check_range(size: u64, offset: u64, len: u64) -> Result<(), BlockError> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(BlockError::OutOfRange { offset, len, size }),
    }
}
