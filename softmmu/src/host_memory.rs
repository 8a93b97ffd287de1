//! A block of host memory that backs guest RAM or ROM: an anonymous mapping or a mapped file.
//!
//! Several threads (vCPUs, the KVM kernel side, device DMA) touch it at once, as real RAM is
//! touched by several agents; accesses are plain byte copies through a raw pointer, bounds-checked
//! against the mapping, never references into guest memory that could alias.

use std::fs::OpenOptions;
use std::path::Path;

use memmap2::{MmapMut, MmapOptions};

use crate::error::MapError;

/// Host memory backing guest RAM or ROM.
pub struct HostMemory {
    // Kept alive for `ptr`; never accessed through a reference after creation.
    _map: MmapMut,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by this struct and lives as long as it; all access goes through
// raw-pointer copies with bounds checks, which is how concurrently running guest CPUs share RAM.
unsafe impl Send for HostMemory {}
// SAFETY: as above; there are no Rust references into the mapping to invalidate.
unsafe impl Sync for HostMemory {}

impl HostMemory {
    /// Maps `len` bytes of zeroed anonymous memory.
    pub fn anonymous(len: u64) -> Result<Self, MapError> {
        let size = usize::try_from(len).map_err(|_| MapError::HostMap {
            len,
            source: std::io::Error::other("size does not fit the host"),
        })?;
        let map = MmapOptions::new()
            .len(size)
            .map_anon()
            .map_err(|source| MapError::HostMap { len, source })?;
        Ok(Self::from_map(map))
    }

    /// Maps `len` bytes of the file at `path` (created or extended to `len`), shared.
    pub fn file(path: &Path, len: u64) -> Result<Self, MapError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| MapError::HostMap { len, source })?;
        let cur = file
            .metadata()
            .map_err(|source| MapError::HostMap { len, source })?
            .len();
        if cur < len {
            file.set_len(len)
                .map_err(|source| MapError::HostMap { len, source })?;
        }
        let size = usize::try_from(len).map_err(|_| MapError::HostMap {
            len,
            source: std::io::Error::other("size does not fit the host"),
        })?;
        // SAFETY: the file is opened read-write by us; other processes modifying it concurrently
        // is the documented meaning of a shared -mem-path, and we never form references into it.
        let map = unsafe { MmapOptions::new().len(size).map_mut(&file) }
            .map_err(|source| MapError::HostMap { len, source })?;
        Ok(Self::from_map(map))
    }

    fn from_map(mut map: MmapMut) -> Self {
        let ptr = map.as_mut_ptr();
        let len = map.len();
        Self {
            _map: map,
            ptr,
            len,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len as u64
    }

    /// True for a zero-length block.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Host address of byte 0, for engines that map this memory into the guest (KVM slots).
    pub fn host_addr(&self) -> *mut u8 {
        self.ptr
    }

    fn check(&self, offset: u64, len: usize) -> Option<usize> {
        let end = offset.checked_add(len as u64)?;
        if end > self.len as u64 {
            return None;
        }
        Some(offset as usize)
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`; false if out of range.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> bool {
        let Some(off) = self.check(offset, buf.len()) else {
            return false;
        };
        // SAFETY: `off + buf.len()` is within the mapping (checked above) and `buf` is a distinct
        // Rust buffer, so the ranges cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(off), buf.as_mut_ptr(), buf.len()) };
        true
    }

    /// Copies `data` to `offset`; false if out of range.
    pub fn write(&self, offset: u64, data: &[u8]) -> bool {
        let Some(off) = self.check(offset, data.len()) else {
            return false;
        };
        // SAFETY: in range (checked above); `data` is a Rust buffer outside the mapping.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(off), data.len()) };
        true
    }

    /// Sets `len` bytes at `offset` to `value`; false if out of range.
    pub fn fill(&self, offset: u64, len: usize, value: u8) -> bool {
        let Some(off) = self.check(offset, len) else {
            return false;
        };
        // SAFETY: in range (checked above).
        unsafe { std::ptr::write_bytes(self.ptr.add(off), value, len) };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_within_bounds_only() {
        let m = HostMemory::anonymous(4096).unwrap();
        assert!(m.write(4092, &[1, 2, 3, 4]));
        let mut b = [0u8; 4];
        assert!(m.read(4092, &mut b));
        assert_eq!(b, [1, 2, 3, 4]);
        assert!(!m.write(4093, &[1, 2, 3, 4]));
        assert!(!m.read(u64::MAX - 1, &mut b));
        assert!(!m.fill(4000, 200, 0));
    }

    #[test]
    fn file_backed_memory_persists_in_the_file() {
        let dir = std::env::temp_dir().join(format!("tandem-hm-{}", std::process::id()));
        {
            let m = HostMemory::file(&dir, 8192).unwrap();
            assert!(m.write(100, b"tandem"));
        }
        let data = std::fs::read(&dir).unwrap();
        assert_eq!(&data[100..106], b"tandem");
        std::fs::remove_file(&dir).unwrap();
    }
}
