//! Executable memory for compiled blocks: one region, bump-allocated, freed whole.
//!
//! DESIGN.md: finalizing each block through a fresh page costs 8-23 µs; one region written in
//! place costs nothing. The region is mapped read-write-execute (no W^X toggling per block, as
//! QEMU's default split-less code buffer); when it fills, the engine drops every compiled block
//! and starts over (QEMU's tb_flush).

use crate::jit::JitError;

/// The code region.
pub struct CodeBuffer {
    base: *mut u8,
    len: usize,
    used: usize,
}

// SAFETY: the mapping is owned by the buffer; its users (one vCPU's compiler) move it between
// threads only as a whole.
unsafe impl Send for CodeBuffer {}

impl CodeBuffer {
    /// Maps `len` bytes.
    pub fn new(len: usize) -> Result<Self, JitError> {
        // SAFETY: an anonymous private mapping with no fixed address; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(JitError::CodeMemory(std::io::Error::last_os_error()));
        }
        Ok(Self {
            base: p.cast(),
            len,
            used: 0,
        })
    }

    /// Copies `code` in (16-byte aligned); its address, or None when the region is full.
    pub fn push(&mut self, code: &[u8]) -> Option<*const u8> {
        let start = self.used.div_ceil(16) * 16;
        let end = start.checked_add(code.len())?;
        if end > self.len {
            return None;
        }
        // SAFETY: [start, end) lies inside the mapping (checked above) and nothing executes
        // this range yet: it has never been handed out.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), self.base.add(start), code.len()) };
        self.used = end;
        // SAFETY: start is within the mapping.
        Some(unsafe { self.base.add(start) }.cast_const())
    }

    /// Forgets every block (the caller has dropped all pointers into the region).
    pub fn reset(&mut self) {
        self.used = 0;
    }

    /// Bytes in use.
    pub fn used(&self) -> usize {
        self.used
    }
}

impl Drop for CodeBuffer {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped; no compiled block outlives the buffer.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}
