//! Opening and creating images: the format drivers by name, probing when no name is given, the
//! options of `-drive` (read-only, cache mode), and the backing chain's bookkeeping (loops and
//! depth).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::file::HostFile;
use crate::probe::{probe, PROBE_LEN};
use crate::qcow2::Qcow2;
use crate::qed::Qed;
use crate::raw::Raw;
use crate::{BlockDriver, BlockError};

/// How deep a backing chain may be before it is refused.
pub const MAX_BACKING_DEPTH: usize = 32;

/// How the host page cache is used, with QEMU's `cache=` meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// Host page cache; writes complete when cached; flushes reach the disk.
    #[default]
    Writeback,
    /// O_DIRECT where the host allows it (else the page cache); flushes reach the disk.
    None,
    /// Host page cache; every write is made durable before it completes.
    Writethrough,
    /// O_DIRECT where the host allows it, and every write durable before it completes.
    Directsync,
    /// Host page cache; flushes are ignored (for throwaway images).
    Unsafe,
}

impl CacheMode {
    /// The name `cache=` uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::Writeback => "writeback",
            Self::None => "none",
            Self::Writethrough => "writethrough",
            Self::Directsync => "directsync",
            Self::Unsafe => "unsafe",
        }
    }
}

impl FromStr for CacheMode {
    type Err = BlockError;

    fn from_str(s: &str) -> Result<Self, BlockError> {
        Ok(match s {
            "writeback" => Self::Writeback,
            "none" | "off" => Self::None,
            "writethrough" => Self::Writethrough,
            "directsync" => Self::Directsync,
            "unsafe" => Self::Unsafe,
            _ => {
                return Err(BlockError::InvalidArgument(format!(
                    "unknown cache mode '{s}'"
                )))
            }
        })
    }
}

/// How to open an image (`-drive file=...,format=...,readonly=...,cache=...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// The format's name; `None` probes by magic (and guards sector 0 of a probed raw image).
    pub format: Option<String>,
    /// Refuse writes, and open the files read-only.
    pub read_only: bool,
    /// The host cache mode, inherited by backing files.
    pub cache: CacheMode,
}

/// How to create an image (`qemu-img create -f FORMAT -o ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    /// `raw`, `qcow2` or `qed`.
    pub format: String,
    /// Virtual size in bytes; `None` takes the backing file's size.
    pub size: Option<u64>,
    /// qcow2: bytes per cluster, a power of two from 512 to 2 MiB; QED: from 4 KiB to 64 MiB.
    pub cluster_size: u32,
    /// qcow2: 2 (`compat=0.10`) or 3 (`compat=1.1`).
    pub version: u32,
    /// qcow2 v3: defer refcount updates, marking the image dirty while it is open.
    pub lazy_refcounts: bool,
    /// qcow2: bits per refcount, a power of two from 1 to 64 (v2: only 16).
    pub refcount_bits: u32,
    /// qcow2 and QED: the backing file's name, stored as given (relative names are relative to the
    /// new image's directory).
    pub backing_file: Option<String>,
    /// qcow2 and QED: the backing file's format, recorded in the image (probed when absent;
    /// QED records only `raw`, and probes any other).
    pub backing_fmt: Option<String>,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            format: "qcow2".into(),
            size: None,
            cluster_size: 65536,
            version: 3,
            lazy_refcounts: false,
            refcount_bits: 16,
            backing_file: None,
            backing_fmt: None,
        }
    }
}

/// The formats a `format=` may name.
pub const FORMATS: &[&str] = &["raw", "qcow2", "qed"];

/// Opens the image at `path`.
pub fn open(
    path: impl AsRef<Path>,
    options: OpenOptions,
) -> Result<Box<dyn BlockDriver>, BlockError> {
    open_in_chain(path.as_ref(), &options, &mut Vec::new())
}

/// Opens `path` as one image of a backing chain: `chain` holds the canonical paths of the
/// images above it, to refuse loops and over-deep chains.
pub(crate) fn open_in_chain(
    path: &Path,
    options: &OpenOptions,
    chain: &mut Vec<PathBuf>,
) -> Result<Box<dyn BlockDriver>, BlockError> {
    let canonical = std::fs::canonicalize(path).map_err(|e| BlockError::io(path, e))?;
    if chain.contains(&canonical) {
        return Err(BlockError::corrupt(
            path,
            "backing chain loops back to this image",
        ));
    }
    if chain.len() >= MAX_BACKING_DEPTH {
        return Err(BlockError::corrupt(
            path,
            format!("backing chain is deeper than {MAX_BACKING_DEPTH} images"),
        ));
    }
    chain.push(canonical);
    let mut file = HostFile::open(path, options.read_only, options.cache)?;
    let (format, probed) = match &options.format {
        Some(name) => match FORMATS.iter().find(|f| **f == name.as_str()) {
            Some(f) => (*f, false),
            None => return Err(BlockError::UnknownFormat(name.clone())),
        },
        None => {
            let len = file.len()?.min(PROBE_LEN as u64) as usize;
            let mut head = vec![0u8; len];
            file.read_at(0, &mut head)?;
            (probe(&head), true)
        }
    };
    let driver: Box<dyn BlockDriver> = match format {
        "raw" => Box::new(Raw::new(file, probed)?),
        "qcow2" => Box::new(Qcow2::open(file, options, chain)?),
        "qed" => Box::new(Qed::open(file, options, chain)?),
        other => return Err(BlockError::unsupported(path, format!("format {other}"))),
    };
    chain.pop();
    Ok(driver)
}

/// Creates an image at `path` (replacing any file there).
pub fn create(path: impl AsRef<Path>, options: &CreateOptions) -> Result<(), BlockError> {
    let path = path.as_ref();
    match options.format.as_str() {
        "raw" => {
            let size = options
                .size
                .ok_or_else(|| BlockError::InvalidArgument("a raw image needs a size".into()))?;
            let f = std::fs::File::create(path).map_err(|e| BlockError::io(path, e))?;
            f.set_len(size).map_err(|e| BlockError::io(path, e))
        }
        "qcow2" => crate::qcow2::create(path, options),
        "qed" => crate::qed::create(path, options),
        other => Err(BlockError::UnknownFormat(other.to_string())),
    }
}
