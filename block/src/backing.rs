//! Backing files, for the formats that have them (qcow2, QED): resolving the recorded name,
//! opening the chain read-only with one-line errors, reopening it after the name changes
//! (rebase -u), and reading or mapping through it where an image has no data of its own.
//!
//! A chain that does not open after a name change is stood in for by [`Unopened`]: the new
//! name is recorded (as `rebase -u` wants) but any read that reaches it fails with its error.

use std::path::{Path, PathBuf};

use crate::registry::{open_in_chain, CacheMode, OpenOptions};
use crate::{push_extent, BlockDriver, BlockError, MapEntry};

/// A backing file name resolved as QEMU does: relative names are relative to the directory of
/// the image that names them.
pub(crate) fn resolve(image: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    match image.parent() {
        Some(dir) => dir.join(p),
        None => p.to_path_buf(),
    }
}

/// Opens the backing file `name` (of `format`, probed when `None`) of the image at `image`,
/// read-only; `chain` holds the images above it. Errors name the image and the backing file,
/// with only the innermost fault of a deeper chain.
pub(crate) fn open(
    image: &Path,
    name: &str,
    format: Option<&str>,
    cache: CacheMode,
    chain: &mut Vec<PathBuf>,
) -> Result<Box<dyn BlockDriver>, BlockError> {
    let opts = OpenOptions {
        format: format.map(str::to_string),
        read_only: true,
        cache,
    };
    open_in_chain(&resolve(image, name), &opts, chain).map_err(|e| BlockError::Backing {
        path: image.display().to_string(),
        backing: name.to_string(),
        cause: innermost_cause(e),
    })
}

/// The innermost fault of a failed open: a deeper chain's own backing error is not repeated.
fn innermost_cause(e: BlockError) -> String {
    match e {
        BlockError::Backing { cause, .. } => cause,
        e => e.to_string(),
    }
}

/// The arguments of a set_backing call, normalized as QEMU does: empty names mean none, and a
/// format without a file is refused.
pub(crate) fn set_backing_args<'a>(
    file: Option<&'a str>,
    format: Option<&'a str>,
) -> Result<(Option<&'a str>, Option<&'a str>), BlockError> {
    let file = file.filter(|f| !f.is_empty());
    let format = format.filter(|f| !f.is_empty());
    if format.is_some() && file.is_none() {
        return Err(BlockError::InvalidArgument(
            "a backing format needs a backing file".into(),
        ));
    }
    Ok((file, format))
}

/// Reopens the backing file after the image at `image` recorded a new one: the chain, or a
/// stand-in whose reads fail with the open's error.
pub(crate) fn reopen(
    image: &Path,
    name: &str,
    format: Option<&str>,
    cache: CacheMode,
) -> Box<dyn BlockDriver> {
    let mut chain: Vec<_> = std::fs::canonicalize(image).into_iter().collect();
    match open(image, name, format, cache, &mut chain) {
        Ok(b) => b,
        Err(e) => Box::new(Unopened {
            path: image.display().to_string(),
            name: name.to_string(),
            cause: innermost_cause(e),
        }),
    }
}

/// Reads `buf` at guest offset `off` from `backing`: zeroes beyond its end, or everywhere
/// when there is none.
pub(crate) fn read(
    backing: Option<&mut Box<dyn BlockDriver>>,
    off: u64,
    buf: &mut [u8],
) -> Result<(), BlockError> {
    let Some(b) = backing else {
        buf.fill(0);
        return Ok(());
    };
    let n = b.size().saturating_sub(off).min(buf.len() as u64) as usize;
    if n > 0 {
        b.read_at(off, &mut buf[..n])?;
    }
    buf[n..].fill(0);
    Ok(())
}

/// Appends the extents of `[off, off + n)`, which the image above does not allocate, as the
/// backing chain stores them (one level deeper), or as a hole.
pub(crate) fn map(
    backing: Option<&mut Box<dyn BlockDriver>>,
    off: u64,
    n: u64,
    out: &mut Vec<MapEntry>,
) -> Result<(), BlockError> {
    let hole = MapEntry {
        start: off,
        length: n,
        depth: 0,
        present: false,
        zero: true,
        data: false,
        compressed: false,
        offset: None,
    };
    let Some(b) = backing else {
        push_extent(out, hole);
        return Ok(());
    };
    let bn = b.size().saturating_sub(off).min(n);
    if bn > 0 {
        for e in b.map(off, bn)? {
            push_extent(
                out,
                MapEntry {
                    depth: e.depth + 1,
                    ..e
                },
            );
        }
    }
    if bn < n {
        push_extent(
            out,
            MapEntry {
                start: off + bn,
                length: n - bn,
                depth: 1,
                ..hole
            },
        );
    }
    Ok(())
}

/// A backing file that could not be opened: every read of it fails with the open's error.
#[derive(Debug)]
pub(crate) struct Unopened {
    path: String,
    name: String,
    cause: String,
}

impl Unopened {
    fn error(&self) -> BlockError {
        BlockError::Backing {
            path: self.path.clone(),
            backing: self.name.clone(),
            cause: self.cause.clone(),
        }
    }
}

impl BlockDriver for Unopened {
    fn format_name(&self) -> &'static str {
        "unopened"
    }

    fn size(&self) -> u64 {
        // Unknown: every guest offset may reach it, so every such read reports the error.
        u64::MAX
    }

    fn is_read_only(&self) -> bool {
        true
    }

    fn read_at(&mut self, _offset: u64, _buf: &mut [u8]) -> Result<(), BlockError> {
        Err(self.error())
    }

    fn write_at(&mut self, _offset: u64, _data: &[u8]) -> Result<(), BlockError> {
        Err(BlockError::ReadOnly)
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        Ok(())
    }

    fn map(&mut self, _offset: u64, _len: u64) -> Result<Vec<MapEntry>, BlockError> {
        Err(self.error())
    }
}
