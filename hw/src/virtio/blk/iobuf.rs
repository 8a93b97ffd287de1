//! The buffer virtio-blk moves request data through: one per disk, reused across requests,
//! grown when a longer run needs it and never cleared between requests (every byte a request
//! hands on was first filled by it), and starting at a 4 KiB boundary so that an image opened
//! with O_DIRECT (cache=none) reads and writes it in place instead of through a bounce buffer.

/// Alignment of the usable part: O_DIRECT's, which 4 KiB covers for 512-byte and 4 KiB
/// logical blocks (the block layer's file protocol uses the same).
const ALIGN: usize = 4096;

/// A grow-only byte buffer whose usable part starts at an [`ALIGN`] boundary.
///
/// Safe code over an over-allocated `Vec` (the aligned start is an offset into it) rather than
/// a custom allocation: it is as fast, since the only cost is up to 4 KiB more per disk.
#[derive(Debug, Default)]
pub(super) struct IoBuf {
    storage: Vec<u8>,
}

impl IoBuf {
    /// `len` bytes starting at an [`ALIGN`] boundary. Their contents are whatever an earlier
    /// request left there: callers fill the slice before they pass any of it on.
    pub(super) fn get(&mut self, len: usize) -> &mut [u8] {
        // Callers bound `len` (a few MiB), so this does not overflow.
        let need = len + ALIGN - 1;
        if self.storage.len() < need {
            // Replaced rather than resized: nothing in it is worth the copy a resize makes,
            // and a fresh zeroed allocation of this size is mapped lazily by the allocator.
            self.storage = vec![0u8; need];
        }
        let addr = self.storage.as_ptr() as usize;
        let start = (ALIGN - addr % ALIGN) % ALIGN;
        &mut self.storage[start..start + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_aligned_and_keep_their_storage() {
        let mut b = IoBuf::default();
        let p = b.get(8192).as_ptr();
        assert_eq!(p as usize % ALIGN, 0);
        b.get(512)[0] = 0xab;
        // A shorter or equal request reuses the same storage, and nothing is cleared.
        assert_eq!(b.get(4096).as_ptr(), p);
        assert_eq!(b.get(4096)[0], 0xab);
        let q = b.get(1 << 20);
        assert_eq!(q.len(), 1 << 20);
        assert_eq!(q.as_ptr() as usize % ALIGN, 0);
    }
}
