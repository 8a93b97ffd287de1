//! Errors of the memory map: building it, and guest-memory accesses that miss RAM.

use thiserror::Error;

/// A guest-physical access that cannot be served from RAM or ROM.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum MemoryError {
    /// Part of `[gpa, gpa + len)` is not backed by RAM or ROM.
    #[error("guest physical range {gpa:#x}+{len:#x} is not RAM")]
    NotRam {
        /// First byte of the access.
        gpa: u64,
        /// Length of the access.
        len: u64,
    },
    /// `gpa + len` overflows the 64-bit physical address space.
    #[error("guest physical range {gpa:#x}+{len:#x} overflows")]
    Overflow {
        /// First byte of the access.
        gpa: u64,
        /// Length of the access.
        len: u64,
    },
}

/// A region or port range that cannot be added to the map.
#[derive(Debug, Error)]
pub enum MapError {
    /// The new range overlaps one already mapped.
    #[error("range {base:#x}+{len:#x} overlaps an existing mapping")]
    Overlap {
        /// Start of the rejected range.
        base: u64,
        /// Its length.
        len: u64,
    },
    /// The range is empty or its end overflows.
    #[error("range {base:#x}+{len:#x} is empty or overflows")]
    BadRange {
        /// Start of the rejected range.
        base: u64,
        /// Its length.
        len: u64,
    },
    /// Host memory for RAM or ROM could not be mapped.
    #[error("cannot map {len:#x} bytes of host memory")]
    HostMap {
        /// Bytes requested.
        len: u64,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
