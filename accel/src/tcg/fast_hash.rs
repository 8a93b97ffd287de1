//! A fast hasher for maps keyed by guest addresses.

use std::hash::{BuildHasherDefault, Hasher};

/// A multiply-rotate hasher (the FxHash recipe) for the engine's hot maps: blocks by key and
/// code pages, looked up tens of millions of times per second. Their keys are guest addresses,
/// and a guest choosing colliding ones only slows itself: SipHash's flooding resistance buys
/// nothing here.
#[derive(Default)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
}

/// A `HashSet` of guest page numbers with [`FastHasher`].
pub type PageSet = std::collections::HashSet<u64, BuildHasherDefault<FastHasher>>;
