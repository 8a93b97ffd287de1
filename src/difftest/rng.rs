//! A tiny seeded PRNG (SplitMix64): the same seed gives the same sequence on every machine and
//! in every build, which is all the generator needs (no crate, no global state).

/// SplitMix64 (Steele, Lea, Flood 2014): one 64-bit state, a full-period increment and a
/// strong output mix.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

/// The SplitMix64 output function, also used to derive independent seeds.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: mix(seed) }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// A number in `0..n` (0 when `n` is 0); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// An index into a slice of `len` elements (0 for an empty one).
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// A number in `lo..=hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = (hi as i128 - lo as i128 + 1) as u128;
        (lo as i128 + (u128::from(self.next_u64()) % span) as i128) as i64
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// One element of `items` (None for an empty slice).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.index(items.len()))
    }

    /// A value that is often an edge case: 0, ±1, the signed limits of each width, a single
    /// bit, a small number, or fully random bits.
    pub fn interesting(&mut self) -> u64 {
        const EDGES: [u64; 16] = [
            0,
            1,
            2,
            u64::MAX,
            0x7f,
            0x80,
            0xff,
            0x7fff,
            0x8000,
            0xffff,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            0x7fff_ffff_ffff_ffff,
            0x8000_0000_0000_0000,
            0x1_0000_0000,
        ];
        match self.below(8) {
            0 | 1 => EDGES[self.index(EDGES.len())],
            2 => 1u64 << self.below(64),
            3 => self.below(64),
            4 => self.next_u64() & 0xffff_ffff,
            5 => (self.below(32)).wrapping_neg(),
            _ => self.next_u64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_bounded() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        for _ in 0..100 {
            let r = a.range(-3, 3);
            assert!((-3..=3).contains(&r));
            assert!(a.below(5) < 5);
        }
        assert_eq!(a.below(0), 0);
        assert_eq!(a.range(5, 1), 5);
        let _ = a.range(i64::MIN, i64::MAX);
        assert!(a.pick::<u8>(&[]).is_none());
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }
}
