//! What a parsed image asks to be copied where: the common output of every format's parser.
//!
//! Parsers only read the file; nothing touches guest memory until the whole plan (and the boot
//! area, the command line and the initrd) has been checked, so a rejected image leaves RAM as it
//! was.

use tandem_softmmu::AddressSpace;

use super::error::LoaderError;

/// One contiguous piece of the kernel in guest-physical memory: `data` copied to `addr`, then
/// zeroes up to `mem_len` (an ELF segment's bss, a multiboot kernel's bss).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunk<'a> {
    /// First guest-physical byte.
    pub addr: u64,
    /// Bytes from the file.
    pub data: &'a [u8],
    /// Bytes in memory (at least `data.len()`).
    pub mem_len: u64,
}

impl<'a> Chunk<'a> {
    /// A chunk, checked: the file part fits the memory part and the end does not wrap.
    pub fn new(addr: u64, data: &'a [u8], mem_len: u64) -> Result<Self, LoaderError> {
        if (data.len() as u64) > mem_len {
            return Err(LoaderError::BadHeader {
                what: "a segment's file size exceeds its memory size",
            });
        }
        if addr.checked_add(mem_len).is_none() {
            return Err(LoaderError::BadHeader {
                what: "a segment wraps around the address space",
            });
        }
        Ok(Self {
            addr,
            data,
            mem_len,
        })
    }

    /// One past the last byte.
    pub fn end(&self) -> u64 {
        // Checked in `new`.
        self.addr.saturating_add(self.mem_len)
    }

    /// Copies the file bytes and zeroes the rest.
    pub fn write(&self, space: &AddressSpace) -> Result<(), LoaderError> {
        space
            .load(self.addr, self.data)
            .map_err(LoaderError::Memory)?;
        let filesz = self.data.len() as u64;
        let bss = self.mem_len - filesz;
        if bss > 0 {
            space
                .zero(self.addr + filesz, bss)
                .map_err(LoaderError::Memory)?;
        }
        Ok(())
    }
}

/// The pieces of a kernel and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoadPlan<'a> {
    /// Pieces to load, in file order; empty ones are left out.
    pub chunks: Vec<Chunk<'a>>,
    /// Guest-physical entry point.
    pub entry: u64,
}

impl LoadPlan<'_> {
    /// One past the highest byte loaded (0 for an empty plan).
    pub fn end(&self) -> u64 {
        self.chunks.iter().map(Chunk::end).max().unwrap_or(0)
    }
}
