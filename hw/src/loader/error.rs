//! Why a kernel image could not be loaded.
//!
//! Every check the loaders make on an image (an offset, a size, an address) ends here as a value,
//! never as a panic. Files that cannot be opened are the caller's errors, not these.
//! Wart: the `&'static str` fields name the offending part in English, not as a code, so callers
//! can show them but should not match on their text.

use tandem_softmmu::MemoryError;
use thiserror::Error;

/// A kernel image that cannot be loaded, or a boot request that cannot be met.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LoaderError {
    /// Neither multiboot, ELF nor any other format tandem recognises.
    #[error("unknown kernel format (not multiboot, ELF or a flat binary)")]
    UnknownFormat,
    /// The image file is empty.
    #[error("the kernel image is empty")]
    Empty,
    /// A recognised format that tandem does not load (yet).
    #[error("unsupported kernel format: {0}")]
    UnsupportedFormat(&'static str),
    /// A header, table or segment runs past the end of the file.
    #[error("truncated image: {what} runs past the end of the file")]
    Truncated {
        /// The part that is cut off.
        what: &'static str,
    },
    /// A header field that makes no sense.
    #[error("bad kernel header: {what}")]
    BadHeader {
        /// What is wrong.
        what: &'static str,
    },
    /// The multiboot header asks for features this loader does not provide (flags bits 0-15
    /// are "must understand").
    #[error("multiboot header requires unsupported features (flags {unsupported:#x})")]
    MultibootFlags {
        /// The required flag bits tandem does not implement.
        unsupported: u32,
    },
    /// Bytes to be loaded land outside RAM or on memory the loader needs.
    #[error("cannot load {len:#x} bytes at {addr:#x}: {why}")]
    DoesNotFit {
        /// First guest-physical byte.
        addr: u64,
        /// Length.
        len: u64,
        /// Where it collides (outside RAM, the boot area, the boot stack, above 4 GiB).
        why: &'static str,
    },
    /// The image file alone is larger than guest RAM.
    #[error("kernel image ({len} bytes) is larger than RAM ({ram} bytes)")]
    TooLarge {
        /// Image size.
        len: u64,
        /// RAM size.
        ram: u64,
    },
    /// The entry point cannot be executed in the entry mode (above 4 GiB).
    #[error("entry point {entry:#x} is not reachable: only the first 4 GiB are mapped at entry")]
    EntryUnreachable {
        /// The entry point.
        entry: u64,
    },
    /// The command line does not fit its 4 KiB page.
    #[error("kernel command line is {len} bytes; at most {max} fit")]
    CmdlineTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A flat binary's load address is unusable in the entry mode asked.
    #[error("flat binary cannot be loaded at {addr:#x}: {why}")]
    FlatAddress {
        /// The requested load address.
        addr: u64,
        /// Why not.
        why: &'static str,
    },
    /// A real-mode flat binary gets no boot information, so it cannot take a command line or
    /// an initrd.
    #[error("a real-mode flat binary takes no {what}")]
    NoBootInfo {
        /// "command line" or "initrd".
        what: &'static str,
    },
    /// The board's e820 map has more entries than the multiboot information page holds.
    #[error("the e820 map has {entries} entries; the boot information holds at most {max}")]
    E820TooLarge {
        /// Entries in the map.
        entries: usize,
        /// The limit.
        max: usize,
    },
    /// Writing guest memory failed after the checks passed (the address space and the e820
    /// map disagree).
    #[error("writing the kernel to guest memory")]
    Memory(#[source] MemoryError),
}
