//! The block layer's errors.

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
}
