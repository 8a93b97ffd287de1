//! What `info` shows that the block layer's [`tandem_block::BlockDriver`] does not expose:
//! a qcow2 image's header fields (cluster size, compat level, feature bits, refcount width,
//! backing file name and format) and its snapshots' instruction counts, read here from the
//! file, read-only (docs/interop/qcow2.txt, "Header", "Header extensions", "Snapshots").
//!
//! Known wart: this duplicates a little of tandem-block's private header parser; once the
//! block layer offers an image-info call, this module should shrink to a call to it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::ImgError;

/// The qcow2 magic, "QFI\xfb".
const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";
/// Header extension: the backing file's format name.
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
/// Incompatible feature bits (qcow2.txt).
const INCOMPAT_DIRTY: u64 = 1;
const INCOMPAT_CORRUPT: u64 = 2;
const INCOMPAT_EXTL2: u64 = 1 << 4;
/// Compatible feature bit: lazy refcounts.
const COMPAT_LAZY_REFCOUNTS: u64 = 1;

/// qcow2 header fields, as `info` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Qcow2Meta {
    /// 2 (compat 0.10) or 3 (compat 1.1).
    pub version: u32,
    /// Bytes per cluster.
    pub cluster_size: u64,
    /// Lazy refcounts (v3 compatible bit 0).
    pub lazy_refcounts: bool,
    /// Bits per refcount.
    pub refcount_bits: u32,
    /// The corrupt bit.
    pub corrupt: bool,
    /// The dirty bit (lazy refcounts not yet written back).
    pub dirty: bool,
    /// Extended L2 entries (subclusters).
    pub extended_l2: bool,
    /// The backing file's name as recorded.
    pub backing_file: Option<String>,
    /// The backing file's format as recorded.
    pub backing_fmt: Option<String>,
    /// Each snapshot's id and instruction count (`None` when not recorded).
    pub icounts: Vec<(String, Option<u64>)>,
}

/// `N` bytes at `off`, zeroes past the end of `b`.
fn bytes<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    b.get(off..off + N)
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; N])
}

fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes(bytes(b, off))
}

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(bytes(b, off))
}

fn be64(b: &[u8], off: usize) -> u64 {
    u64::from_be_bytes(bytes(b, off))
}

/// Reads `len` bytes at `off`, or fewer at the end of the file.
fn read_some(f: &File, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match f.read_at(&mut buf[done..], off + done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    buf.truncate(done);
    Ok(buf)
}

/// Reads the header of the qcow2 image at `path` (named `name` in errors). The block layer has
/// opened and validated the image already; anything odd here is reported, never trusted.
pub fn read_qcow2(path: &Path, name: &str) -> Result<Qcow2Meta, ImgError> {
    let f = File::open(path).map_err(|e| ImgError::file(name, e))?;
    let head = read_some(&f, 0, 4096).map_err(|e| ImgError::file(name, e))?;
    if head.len() < 72 || head[0..4] != QCOW2_MAGIC {
        return Err(ImgError::file(name, "not a qcow2 image"));
    }
    let version = be32(&head, 4);
    let cluster_bits = be32(&head, 20);
    if !(9..=21).contains(&cluster_bits) {
        return Err(ImgError::file(name, "invalid cluster size"));
    }
    let cs = 1u64 << cluster_bits;
    let mut m = Qcow2Meta {
        version,
        cluster_size: cs,
        refcount_bits: 16,
        ..Default::default()
    };
    let header_len = if version >= 3 {
        let incompat = be64(&head, 72);
        let compat = be64(&head, 80);
        m.dirty = incompat & INCOMPAT_DIRTY != 0;
        m.corrupt = incompat & INCOMPAT_CORRUPT != 0;
        m.extended_l2 = incompat & INCOMPAT_EXTL2 != 0;
        m.lazy_refcounts = compat & COMPAT_LAZY_REFCOUNTS != 0;
        m.refcount_bits = 1u32.checked_shl(be32(&head, 96)).unwrap_or(0);
        be32(&head, 100) as usize
    } else {
        72
    };
    // The header cluster holds the extensions and the backing file's name.
    let first = read_some(&f, 0, cs as usize).map_err(|e| ImgError::file(name, e))?;
    let mut off = header_len;
    while off + 8 <= first.len() {
        let (kind, len) = (be32(&first, off), be32(&first, off + 4) as usize);
        if kind == 0 {
            break;
        }
        let Some(data) = first.get(off + 8..off + 8 + len) else {
            break;
        };
        if kind == EXT_BACKING_FORMAT {
            m.backing_fmt = Some(String::from_utf8_lossy(data).into_owned());
        }
        off += 8 + len.div_ceil(8) * 8;
    }
    let (bf_off, bf_len) = (be64(&head, 8) as usize, be32(&head, 16) as usize);
    if bf_off != 0 {
        if let Some(b) = first.get(bf_off..bf_off.saturating_add(bf_len)) {
            m.backing_file = Some(String::from_utf8_lossy(b).into_owned());
        }
    }
    m.icounts = read_icounts(&f, be32(&head, 60), be64(&head, 64));
    Ok(m)
}

/// Each snapshot's id and instruction count (extra data bytes 16..24, qcow2.txt), best effort.
fn read_icounts(f: &File, count: u32, mut off: u64) -> Vec<(String, Option<u64>)> {
    let mut out = Vec::new();
    for _ in 0..count.min(65536) {
        let Ok(e) = read_some(f, off, 40) else {
            break;
        };
        if e.len() < 40 {
            break;
        }
        let id_len = be16(&e, 12) as u64;
        let name_len = be16(&e, 14) as u64;
        let extra_len = be32(&e, 36) as u64;
        let var = read_some(f, off + 40, (extra_len + id_len) as usize).unwrap_or_default();
        let icount = (extra_len >= 24)
            .then(|| be64(&var, 16))
            .filter(|v| *v != u64::MAX);
        let id = var
            .get(extra_len as usize..)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        out.push((id, icount));
        off += (40 + extra_len + id_len + name_len).div_ceil(8) * 8;
    }
    out
}

/// Resolves a backing file name as QEMU does: relative to the directory of the image naming it.
pub fn resolve_backing(image: &str, backing: &str) -> String {
    let b = Path::new(backing);
    if b.is_absolute() {
        return backing.to_string();
    }
    match Path::new(image).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(b).display().to_string(),
        _ => backing.to_string(),
    }
}

/// Bytes the file occupies on the host (st_blocks * 512), as qemu's "disk size".
pub fn allocated_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.blocks() * 512)
}
