//! Where a host file has data, by SEEK_DATA/SEEK_HOLE: raw images are sparse files, and
//! convert and map skip their holes without reading them (as qemu-img's file driver does).

use std::fs::File;
use std::os::fd::AsRawFd;

/// The `[start, end)` ranges of `file` (of `len` bytes) that hold data, in order. A file
/// system without SEEK_DATA reports the whole file as data.
pub fn data_extents(file: &File, len: u64) -> Vec<(u64, u64)> {
    let fd = file.as_raw_fd();
    let seek = |off: u64, whence| {
        // SAFETY: lseek only moves this descriptor's offset, which nothing else here uses
        // (reads go through pread); a bad offset is an error return, not undefined behaviour.
        let r = unsafe { libc::lseek(fd, off as libc::off_t, whence) };
        u64::try_from(r).ok()
    };
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < len {
        let Some(data) = seek(pos, libc::SEEK_DATA) else {
            // ENXIO: no data after pos; any other error: assume data to the end.
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::ENXIO) {
                out.push((pos, len));
            }
            break;
        };
        if data >= len {
            break;
        }
        let hole = seek(data, libc::SEEK_HOLE).unwrap_or(len).min(len);
        if hole <= data {
            out.push((data, len));
            break;
        }
        out.push((data, hole));
        pos = hole;
    }
    out
}
