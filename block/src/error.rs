//! The block layer's errors.
//!
//! Every message is one line and, when a file is involved, starts with the file's path: a
//! refused image reads "PATH: FAULT". Causes from other images of a chain (a backing file that
//! fails to open) are folded into the text rather than chained, so the one line says it all.

use thiserror::Error;

/// What can go wrong opening, reading or writing an image.
#[derive(Debug, Error)]
pub enum BlockError {
    /// An access beyond the end of the disk.
    #[error("access of {len} bytes at offset {offset} is beyond the disk's {size} bytes")]
    OutOfRange {
        /// Byte offset.
        offset: u64,
        /// Length in bytes.
        len: u64,
        /// The disk's size.
        size: u64,
    },
    /// A write to an image opened read-only.
    #[error("the image is read-only")]
    ReadOnly,
    /// The host file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The host error.
        #[source]
        source: std::io::Error,
    },
    /// The image's metadata is invalid, inconsistent or hostile; nothing was written to it.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The image file.
        path: String,
        /// What is wrong, e.g. "L1 table at 0x30000 (8 bytes) is beyond the end of the file".
        reason: String,
    },
    /// The image uses a feature this implementation does not have (encryption, external data
    /// files, extended L2 entries, zstd compression, ...).
    #[error("{path}: unsupported {feature}")]
    Unsupported {
        /// The image file.
        path: String,
        /// The feature.
        feature: String,
    },
    /// The image is marked corrupt (qcow2's corrupt bit) and may only be opened read-only.
    #[error("{path}: image is marked corrupt; open it read-only or repair it")]
    MarkedCorrupt {
        /// The image file.
        path: String,
    },
    /// A backing file could not be opened: `cause` is that file's own one-line error.
    #[error("{path}: backing file {backing}: {cause}")]
    Backing {
        /// The image whose backing file failed.
        path: String,
        /// The backing file's name as the image records it.
        backing: String,
        /// The backing image's error, as text.
        cause: String,
    },
    /// A `format=` name no driver has.
    #[error("unknown block format '{0}'")]
    UnknownFormat(String),
    /// A bad argument from the user (create options, snapshot names, cache mode names).
    #[error("{0}")]
    InvalidArgument(String),
    /// The format has no such operation (snapshots of a raw image, ...).
    #[error("format '{format}' does not support {operation}")]
    NotSupported {
        /// The format's name.
        format: &'static str,
        /// The operation.
        operation: &'static str,
    },
    /// No snapshot has that name or id.
    #[error("{path}: no snapshot '{name}'")]
    SnapshotNotFound {
        /// The image file.
        path: String,
        /// The name or id asked for.
        name: String,
    },
    /// A write to sector 0 of a raw image whose format was probed would make it probe as
    /// another format (QEMU's rule: a guest must not turn its raw disk into a qcow2 header).
    #[error("{path}: refusing a write to sector 0 of an image probed as raw: it would change the probed format")]
    ProbedRawSectorZero {
        /// The image file.
        path: String,
    },
    /// A refcount would exceed what the image's refcount width holds (refcount_bits=1 and a
    /// snapshot, for example).
    #[error("{path}: refcount of cluster at {offset:#x} overflows refcount_bits={bits}")]
    RefcountOverflow {
        /// The image file.
        path: String,
        /// Host offset of the cluster.
        offset: u64,
        /// The image's refcount width.
        bits: u32,
    },
}

impl BlockError {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// A corrupt or hostile image at `path`.
    pub fn corrupt(path: &std::path::Path, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            path: path.display().to_string(),
            reason: reason.into(),
        }
    }

    /// An unsupported feature of the image at `path`.
    pub fn unsupported(path: &std::path::Path, feature: impl Into<String>) -> Self {
        Self::Unsupported {
            path: path.display().to_string(),
            feature: feature.into(),
        }
    }
}
