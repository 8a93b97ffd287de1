//! Which physical pages hold translated code, shared with the threads that write guest RAM
//! behind the vCPU's back (device DMA on the I/O thread, page-walk A/D updates): a write there
//! queues the page for the vCPU to drop its translations, and sets its exit request so chained
//! code stops at the next block boundary, as a guest store to code does.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tandem_softmmu::WriteWatch;

/// The code-page bitmap over guest-physical frames, and the pages written since the vCPUs last
/// looked.
pub struct CodeWatch {
    /// One bit per 4 KiB frame below `bits.len() * 64 * 4096`.
    bits: Vec<AtomicU64>,
    /// Frames with code written since the last [`CodeWatch::drain_into`].
    written: Mutex<HashSet<u64>>,
    /// Whether `written` may be non-empty (read without the lock on every check).
    pending: AtomicBool,
    /// The vCPUs' exit-request flags.
    exit_requests: Mutex<Vec<Arc<AtomicU64>>>,
}

impl CodeWatch {
    /// A watch over guest-physical addresses below `top`.
    pub fn new(top: u64) -> Self {
        let frames = top.div_ceil(4096);
        Self {
            bits: (0..frames.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            written: Mutex::new(HashSet::new()),
            pending: AtomicBool::new(false),
            exit_requests: Mutex::new(Vec::new()),
        }
    }

    /// Registers a vCPU's exit-request flag.
    pub fn add_vcpu(&self, exit_request: Arc<AtomicU64>) {
        self.exit_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(exit_request);
    }

    /// Frame `frame` holds translated code. Bits are never cleared: a stale one costs a
    /// spurious check of a page with no blocks left, nothing more.
    pub fn mark(&self, frame: u64) {
        if let Some(w) = self.bits.get((frame / 64) as usize) {
            w.fetch_or(1 << (frame % 64), Ordering::SeqCst);
        }
    }

    fn is_marked(&self, frame: u64) -> bool {
        self.bits
            .get((frame / 64) as usize)
            .is_some_and(|w| w.load(Ordering::SeqCst) & (1 << (frame % 64)) != 0)
    }

    /// Moves the frames written since the last call into `out` (deduplicated); false at once
    /// when there are none.
    #[inline]
    pub fn drain_into(&self, out: &mut Vec<u64>) -> bool {
        // A plain load first, inlined: the interpreter asks after every instruction.
        if !self.pending.load(Ordering::Relaxed) {
            return false;
        }
        self.drain_slow(out)
    }

    #[cold]
    fn drain_slow(&self, out: &mut Vec<u64>) -> bool {
        if !self.pending.swap(false, Ordering::SeqCst) {
            return false;
        }
        let mut w = self.written.lock().unwrap_or_else(|e| e.into_inner());
        for f in w.drain() {
            if !out.contains(&f) {
                out.push(f);
            }
        }
        true
    }
}

impl WriteWatch for CodeWatch {
    fn ram_written(&self, gpa: u64, len: u64) {
        let Some(last) = gpa.checked_add(len.max(1) - 1) else {
            return;
        };
        let hits: Vec<u64> = (gpa >> 12..=last >> 12)
            .filter(|&f| self.is_marked(f))
            .collect();
        if hits.is_empty() {
            return;
        }
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(hits);
        self.pending.store(true, Ordering::SeqCst);
        for flag in self
            .exit_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            flag.store(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_to_marked_frames_are_queued_and_stop_the_vcpu() {
        let w = CodeWatch::new(1 << 20);
        let flag = Arc::new(AtomicU64::new(0));
        w.add_vcpu(flag.clone());
        w.mark(3);
        w.mark(1 << 30); // beyond the bitmap: ignored
        w.ram_written(0x1000, 0x2000); // frames 1 and 2: no code
        let mut out = Vec::new();
        assert!(!w.drain_into(&mut out));
        assert_eq!(flag.load(Ordering::SeqCst), 0);
        w.ram_written(0x2ff0, 0x20); // frames 2 and 3
        assert_eq!(flag.load(Ordering::SeqCst), 1);
        assert!(w.drain_into(&mut out));
        assert_eq!(out, vec![3]);
        assert!(!w.drain_into(&mut out));
        w.ram_written(u64::MAX - 1, 8); // wraps: ignored, no panic
    }
}
