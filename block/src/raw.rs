//! The raw format: the image is the disk, byte for byte, on a host file or block device.
//!
//! When the format was probed rather than named, a write that would put another format's magic
//! into sector 0 is refused (QEMU's rule), so a guest cannot turn its disk into, say, a qcow2
//! header that names a host file as backing on the next probed open.

use crate::file::HostFile;
use crate::probe::{probe, PROBE_LEN};
use crate::{check_range, BlockDriver, BlockError};

/// A raw image.
#[derive(Debug)]
pub struct Raw {
    file: HostFile,
    size: u64,
    probed: bool,
}

impl Raw {
    /// A raw image over `file`; `probed` says the format was found by probing, not named.
    pub fn new(file: HostFile, probed: bool) -> Result<Self, BlockError> {
        let size = file.len()?;
        Ok(Self { file, size, probed })
    }

    /// Refuses a write of `data` at `offset` if it would change what sector 0 probes as.
    fn check_sector_zero(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        if !self.probed || offset >= PROBE_LEN as u64 || data.is_empty() {
            return Ok(());
        }
        let mut head = [0u8; PROBE_LEN];
        let n = (self.size.min(PROBE_LEN as u64)) as usize;
        self.file.read_at(0, &mut head[..n])?;
        let start = offset as usize;
        let len = data.len().min(PROBE_LEN - start);
        head[start..start + len].copy_from_slice(&data[..len]);
        if probe(&head[..n]) != "raw" {
            return Err(BlockError::ProbedRawSectorZero {
                path: self.file.path().display().to_string(),
            });
        }
        Ok(())
    }
}

impl BlockDriver for Raw {
    fn format_name(&self) -> &'static str {
        "raw"
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn is_read_only(&self) -> bool {
        self.file.is_read_only()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_range(self.size, offset, buf.len() as u64)?;
        self.file.read_at(offset, buf)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        check_range(self.size, offset, data.len() as u64)?;
        if self.file.is_read_only() {
            return Err(BlockError::ReadOnly);
        }
        self.check_sector_zero(offset, data)?;
        self.file.write_at(offset, data)
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        self.file.flush()
    }

    fn resize(&mut self, new_size: u64) -> Result<(), BlockError> {
        if self.file.is_read_only() {
            return Err(BlockError::ReadOnly);
        }
        if self.file.is_block_device() {
            // A device's size is the device's; only an unchanged size is honoured.
            if new_size == self.size {
                return Ok(());
            }
            return Err(BlockError::NotSupported {
                format: "raw",
                operation: "resizing a block device",
            });
        }
        if new_size > i64::MAX as u64 {
            return Err(BlockError::InvalidArgument(format!(
                "size {new_size} is too large"
            )));
        }
        self.file.set_len(new_size)?;
        self.size = new_size;
        Ok(())
    }
}
