//! A small raw-deflate compressor (RFC 1951) for qcow2 compressed clusters: LZ77 with a hash
//! chain over a 4 KiB window and the fixed Huffman codes, in one final block.
//!
//! Why our own: tandem-block only inflates, and this crate has no deflate dependency. The
//! window is 4 KiB because QEMU inflates compressed clusters with windowBits -12, so a stream
//! with longer distances would not read back under QEMU. Compression is weaker than zlib's
//! (no dynamic Huffman tables); streams are standard and any inflater reads them.

/// Largest match distance: QEMU's 4 KiB inflate window.
const WINDOW: usize = 4096;
/// Longest and shortest matches deflate can code.
const MAX_MATCH: usize = 258;
const MIN_MATCH: usize = 3;
/// Candidates tried per position (speed over ratio).
const MAX_CHAIN: usize = 24;
const HASH_BITS: u32 = 14;

/// Length codes 257..285: base length and extra bits (RFC 1951 3.2.5).
const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// Distance codes 0..23 (up to 4096): base distance and extra bits.
const DIST_BASE: [u16; 24] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073,
];
const DIST_EXTRA: [u8; 24] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10,
];

/// An LSB-first bit writer.
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u32, bits: u32) {
        self.acc |= (value as u64) << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code, which deflate stores most significant bit first.
    fn code(&mut self, code: u32, len: u32) {
        self.put(code.reverse_bits() >> (32 - len), len);
    }

    /// A literal/length symbol in the fixed code.
    fn symbol(&mut self, sym: u32) {
        match sym {
            0..=143 => self.code(0x30 + sym, 8),
            144..=255 => self.code(0x190 + sym - 144, 9),
            256..=279 => self.code(sym - 256, 7),
            _ => self.code(0xc0 + sym - 280, 8),
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

fn hash(b: &[u8], i: usize) -> usize {
    let v = (b[i] as u32) | (b[i + 1] as u32) << 8 | (b[i + 2] as u32) << 16;
    (v.wrapping_mul(0x9e37_79b1) >> (32 - HASH_BITS)) as usize
}

/// Compresses `input` to a raw deflate stream, or `None` if it would take `limit` bytes or
/// more (the caller then stores the data plainly).
pub fn compress(input: &[u8], limit: usize) -> Option<Vec<u8>> {
    let n = input.len();
    let mut bits = Bits {
        out: Vec::with_capacity(limit.min(n + 64)),
        acc: 0,
        n: 0,
    };
    bits.put(1, 1); // BFINAL
    bits.put(1, 2); // BTYPE 01: fixed Huffman codes
    let mut head = vec![usize::MAX; 1 << HASH_BITS];
    let mut prev = vec![usize::MAX; n];
    let insert = |head: &mut [usize], prev: &mut [usize], i: usize| {
        if i + MIN_MATCH <= n {
            let h = hash(input, i);
            prev[i] = head[h];
            head[h] = i;
        }
    };
    let mut i = 0;
    while i < n {
        let (mut best_len, mut best_dist) = (0, 0);
        if i + MIN_MATCH <= n {
            let max = MAX_MATCH.min(n - i);
            let mut cand = head[hash(input, i)];
            let mut tries = 0;
            while cand != usize::MAX && i - cand <= WINDOW && tries < MAX_CHAIN {
                let len = input[cand..]
                    .iter()
                    .zip(&input[i..i + max])
                    .take_while(|(a, b)| a == b)
                    .count();
                if len > best_len {
                    (best_len, best_dist) = (len, i - cand);
                    if len == max {
                        break;
                    }
                }
                cand = prev[cand];
                tries += 1;
            }
        }
        if best_len >= MIN_MATCH {
            emit_match(&mut bits, best_len, best_dist);
            for k in i..i + best_len {
                insert(&mut head, &mut prev, k);
            }
            i += best_len;
        } else {
            bits.symbol(input[i] as u32);
            insert(&mut head, &mut prev, i);
            i += 1;
        }
        if bits.out.len() >= limit {
            return None;
        }
    }
    bits.symbol(256);
    let out = bits.finish();
    (out.len() < limit).then_some(out)
}

fn emit_match(bits: &mut Bits, len: usize, dist: usize) {
    let li = LEN_BASE
        .iter()
        .rposition(|&b| b as usize <= len)
        .unwrap_or(0);
    bits.symbol(257 + li as u32);
    bits.put((len - LEN_BASE[li] as usize) as u32, LEN_EXTRA[li] as u32);
    let di = DIST_BASE
        .iter()
        .rposition(|&b| b as usize <= dist)
        .unwrap_or(0);
    bits.code(di as u32, 5);
    bits.put(
        (dist - DIST_BASE[di] as usize) as u32,
        DIST_EXTRA[di] as u32,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroes_compress_small() {
        let out = compress(&[0u8; 65536], 65535).unwrap_or_default();
        assert!(!out.is_empty() && out.len() < 1024, "{}", out.len());
    }

    #[test]
    fn random_data_is_refused() {
        let mut x = 0x1234_5678u32;
        let data: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert!(compress(&data, 4095).is_none());
    }
}
