//! The `file` protocol: a host file or block device, read and written with pread/pwrite.
//!
//! Format drivers (raw, qcow2) sit on one of these, as QEMU's format BlockDriverStates sit on a
//! `file` child. The cache mode decides how the host page cache is used:
//! `none`/`directsync` open with O_DIRECT where the host allows it (tmpfs, for one, may not; the
//! file is then opened without it and nothing fails), `writethrough`/`directsync` make every
//! write durable before it completes, `unsafe` turns flushes into no-ops.
//!
//! O_DIRECT needs aligned buffers, offsets and lengths: a direct access whose buffer address,
//! offset and length are all 4 KiB-aligned goes straight to the caller's buffer (virtio-blk
//! keeps its request buffer aligned for this); any other is bounced through a 4 KiB-aligned
//! buffer (read-modify-write at unaligned edges) rather than refused.
//!
//! Warts: the alignment is a fixed 4 KiB rather than the host's logical block size, so an
//! access aligned to 512 only is still bounced. Reads beyond the end of the file return
//! zeroes, as QEMU's do.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::registry::CacheMode;
use crate::BlockError;

/// Alignment used for O_DIRECT accesses: covers 512-byte and 4 KiB logical sectors.
const DIRECT_ALIGN: u64 = 4096;

/// An open host file or block device.
#[derive(Debug)]
pub struct HostFile {
    file: File,
    path: PathBuf,
    read_only: bool,
    cache: CacheMode,
    direct: bool,
    block_device: bool,
}

impl HostFile {
    /// Opens `path` for reading, and for writing unless `read_only`, honouring `cache`.
    pub fn open(path: &Path, read_only: bool, cache: CacheMode) -> Result<Self, BlockError> {
        let want_direct = matches!(cache, CacheMode::None | CacheMode::Directsync);
        let open = |direct: bool| {
            let mut o = std::fs::OpenOptions::new();
            o.read(true).write(!read_only);
            if direct {
                o.custom_flags(libc::O_DIRECT);
            }
            o.open(path)
        };
        let (file, direct) = match want_direct {
            true => match open(true) {
                Ok(f) => (f, true),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    (open(false).map_err(|e| BlockError::io(path, e))?, false)
                }
                Err(e) => return Err(BlockError::io(path, e)),
            },
            false => (open(false).map_err(|e| BlockError::io(path, e))?, false),
        };
        let meta = file.metadata().map_err(|e| BlockError::io(path, e))?;
        let block_device = meta.file_type().is_block_device();
        if meta.is_dir() {
            return Err(BlockError::io(
                path,
                std::io::Error::from_raw_os_error(libc::EISDIR),
            ));
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            read_only,
            cache,
            direct,
            block_device,
        })
    }

    /// The path the file was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether writes are refused.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Whether the file is open with O_DIRECT.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Whether this is a block device rather than a regular file.
    pub fn is_block_device(&self) -> bool {
        self.block_device
    }

    fn err(&self, e: std::io::Error) -> BlockError {
        BlockError::io(&self.path, e)
    }

    /// The file's length in bytes (a block device's size).
    pub fn len(&self) -> Result<u64, BlockError> {
        if self.block_device {
            if let Some(n) = self.blkgetsize64() {
                return Ok(n);
            }
            let mut f = &self.file;
            return f.seek(SeekFrom::End(0)).map_err(|e| self.err(e));
        }
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| self.err(e))
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> Result<bool, BlockError> {
        Ok(self.len()? == 0)
    }

    fn blkgetsize64(&self) -> Option<u64> {
        use std::os::fd::AsRawFd;
        // BLKGETSIZE64 = _IOR(0x12, 114, size_t)
        const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
        let mut size: u64 = 0;
        // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points to a live local
        // u64; the descriptor is owned by `self.file` and open for the duration of the call.
        let r = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                BLKGETSIZE64 as _,
                &mut size as *mut u64,
            )
        };
        (r == 0).then_some(size)
    }

    /// Reads `buf.len()` bytes at `offset`; bytes beyond the end of the file read as zero.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        if buf.is_empty() {
            return Ok(());
        }
        if self.direct {
            match self.read_direct(offset, buf) {
                Err(BlockError::Io { source, .. })
                    if source.raw_os_error() == Some(libc::EINVAL) =>
                {
                    self.drop_direct()?;
                }
                r => return r,
            }
        }
        read_full(&self.file, offset, buf).map_err(|e| self.err(e))
    }

    /// Writes all of `data` at `offset`, extending the file if needed.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        if data.is_empty() {
            return Ok(());
        }
        if offset.checked_add(data.len() as u64).is_none() {
            return Err(self.err(std::io::Error::from_raw_os_error(libc::EFBIG)));
        }
        let mut done = false;
        if self.direct {
            match self.write_direct(offset, data) {
                Err(BlockError::Io { source, .. })
                    if source.raw_os_error() == Some(libc::EINVAL) =>
                {
                    self.drop_direct()?;
                }
                r => {
                    r?;
                    done = true;
                }
            }
        }
        if !done {
            self.file
                .write_all_at(data, offset)
                .map_err(|e| self.err(e))?;
        }
        if matches!(self.cache, CacheMode::Writethrough | CacheMode::Directsync) {
            self.file.sync_data().map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Makes completed writes durable (a no-op in `cache=unsafe`).
    pub fn flush(&mut self) -> Result<(), BlockError> {
        if self.read_only || self.cache == CacheMode::Unsafe {
            return Ok(());
        }
        self.file.sync_data().map_err(|e| self.err(e))
    }

    /// Sets the file's length (regular files only; a block device keeps its size).
    pub fn set_len(&mut self, len: u64) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        if self.block_device {
            return Ok(());
        }
        self.file.set_len(len).map_err(|e| self.err(e))
    }

    /// Reopens without O_DIRECT after the host refused a direct access.
    fn drop_direct(&mut self) -> Result<(), BlockError> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(!self.read_only)
            .open(&self.path)
            .map_err(|e| self.err(e))?;
        self.file = f;
        self.direct = false;
        Ok(())
    }

    fn read_direct(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        if direct_aligned(offset, buf) {
            return read_full(&self.file, offset, buf).map_err(|e| self.err(e));
        }
        let start = offset & !(DIRECT_ALIGN - 1);
        let end = align_up(offset + buf.len() as u64, DIRECT_ALIGN)
            .ok_or_else(|| self.err(std::io::Error::from_raw_os_error(libc::EINVAL)))?;
        let mut bounce = AlignedBuf::new((end - start) as usize);
        read_full(&self.file, start, bounce.as_mut()).map_err(|e| self.err(e))?;
        let skip = (offset - start) as usize;
        buf.copy_from_slice(&bounce.as_mut()[skip..skip + buf.len()]);
        Ok(())
    }

    fn write_direct(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        if direct_aligned(offset, data) {
            // Nothing beyond what was asked for is written, so the file needs no trimming.
            return self
                .file
                .write_all_at(data, offset)
                .map_err(|e| self.err(e));
        }
        let old_len = self.len()?;
        let start = offset & !(DIRECT_ALIGN - 1);
        let end = align_up(offset + data.len() as u64, DIRECT_ALIGN)
            .ok_or_else(|| self.err(std::io::Error::from_raw_os_error(libc::EINVAL)))?;
        let mut bounce = AlignedBuf::new((end - start) as usize);
        let skip = (offset - start) as usize;
        if skip != 0 || (end - start) as usize != data.len() {
            read_full(&self.file, start, bounce.as_mut()).map_err(|e| self.err(e))?;
        }
        bounce.as_mut()[skip..skip + data.len()].copy_from_slice(data);
        self.file
            .write_all_at(bounce.as_mut(), start)
            .map_err(|e| self.err(e))?;
        // The aligned tail may have extended the file past what was asked for.
        let want = old_len.max(offset + data.len() as u64);
        if end > want && !self.block_device {
            self.file.set_len(want).map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}

/// Whether O_DIRECT can use `buf` at `offset` as it is: address, offset and length aligned.
fn direct_aligned(offset: u64, buf: &[u8]) -> bool {
    let a = DIRECT_ALIGN;
    (buf.as_ptr() as u64 | offset | buf.len() as u64) & (a - 1) == 0
}

fn align_up(x: u64, a: u64) -> Option<u64> {
    x.checked_add(a - 1).map(|v| v & !(a - 1))
}

/// pread until `buf` is full; the part beyond the end of the file is zeroed.
fn read_full(file: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                buf[done..].fill(0);
                break;
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A heap buffer whose usable part starts at a [`DIRECT_ALIGN`] boundary.
struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> Self {
        let align = DIRECT_ALIGN as usize;
        let storage = vec![0u8; len + align];
        let addr = storage.as_ptr() as usize;
        let start = (align - addr % align) % align;
        Self {
            storage,
            start,
            len,
        }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_direct_accesses_skip_the_bounce_and_agree_with_bounced_ones() {
        let dir = std::env::temp_dir().join(format!("tandem-file-direct-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.img");
        std::fs::write(&path, vec![0u8; 64 << 10]).unwrap();
        let mut f = HostFile::open(&path, false, CacheMode::None).unwrap();
        // Aligned: a 4 KiB-aligned slice of an over-allocated buffer.
        let mut storage = vec![0u8; (16 << 10) + 4095];
        let at = (4096 - storage.as_ptr() as usize % 4096) % 4096;
        let buf = &mut storage[at..at + (16 << 10)];
        assert!(direct_aligned(8192, buf));
        assert!(!direct_aligned(512, buf));
        assert!(!direct_aligned(8192, &buf[1..4097]));
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        f.write_at(8192, buf).unwrap();
        // A bounced (unaligned) write over part of it, then both read back either way.
        f.write_at(8192 + 100, &[0xee; 300]).unwrap();
        let mut want: Vec<u8> = (0..16 << 10).map(|i| (i % 251) as u8).collect();
        want[100..400].fill(0xee);
        buf.fill(0);
        f.read_at(8192, buf).unwrap();
        assert_eq!(buf, &want[..]);
        let mut odd = vec![0u8; 1000];
        f.read_at(8192 + 50, &mut odd).unwrap();
        assert_eq!(odd, want[50..1050]);
        assert_eq!(f.len().unwrap(), 64 << 10);
        drop(f);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
