//! Edge-case-rich floating-point bit patterns: single, double and x87 extended values (±0,
//! ±inf, quiet and signalling NaNs with payloads, denormals, the largest and smallest normals,
//! small integers, halves that round either way, ordinary numbers, raw bits), and 128-bit XMM
//! values made of them.

use crate::difftest::rng::Rng;

/// An IEEE binary format: exponent and fraction widths.
#[derive(Debug, Clone, Copy)]
struct Format {
    exp_bits: u32,
    frac_bits: u32,
}

const SINGLE: Format = Format {
    exp_bits: 8,
    frac_bits: 23,
};
const DOUBLE: Format = Format {
    exp_bits: 11,
    frac_bits: 52,
};

impl Format {
    fn bias(self) -> i64 {
        (1 << (self.exp_bits - 1)) - 1
    }
    fn max_exp(self) -> u64 {
        (1 << self.exp_bits) - 1
    }
    fn frac_mask(self) -> u64 {
        (1 << self.frac_bits) - 1
    }
    fn pack(self, sign: bool, exp: u64, frac: u64) -> u64 {
        (u64::from(sign) << (self.exp_bits + self.frac_bits))
            | ((exp & self.max_exp()) << self.frac_bits)
            | (frac & self.frac_mask())
    }

    /// An interesting value of this format, as raw bits.
    fn interesting(self, rng: &mut Rng) -> u64 {
        let sign = rng.chance(1, 2);
        let quiet = 1u64 << (self.frac_bits - 1);
        let frac = rng.next_u64() & self.frac_mask();
        match rng.below(16) {
            0 => self.pack(sign, 0, 0),
            1 => self.pack(sign, self.max_exp(), 0),
            // QNaN with a payload, or the default NaN.
            2 => self.pack(sign, self.max_exp(), quiet | (frac * rng.below(2))),
            // SNaN: quiet bit clear, payload non-zero.
            3 => self.pack(sign, self.max_exp(), (frac & (quiet - 1)).max(1)),
            // Denormals: the smallest, the largest, any.
            4 => self.pack(sign, 0, [1, self.frac_mask(), frac.max(1)][rng.index(3)]),
            5 => self.pack(sign, self.max_exp() - 1, self.frac_mask()),
            6 => self.pack(sign, 1, [0, frac][rng.index(2)]),
            7 | 8 => self.integer(rng.range(-16, 16)),
            // n + 0.5: rounds differently in each rounding mode.
            9 => self.half(rng.range(-8, 8)),
            // Near 1.0, where sums of values close in magnitude cancel.
            10 => self.pack(sign, self.bias() as u64 - rng.below(2), frac),
            // Large and tiny magnitudes within range, for overflow and underflow.
            11 => {
                let e = if rng.chance(1, 2) {
                    self.max_exp() - 1 - rng.below(4)
                } else {
                    1 + rng.below(4)
                };
                self.pack(sign, e, frac)
            }
            12 => self.pack(sign, 1 + rng.below(self.max_exp() - 1), frac),
            13 => rng.next_u64() & (u64::MAX >> (63 - self.exp_bits - self.frac_bits)),
            // Ordinary numbers of moderate magnitude: the common case.
            _ => {
                let e = (self.bias() + rng.range(-20, 20)) as u64;
                self.pack(sign, e, frac)
            }
        }
    }

    /// The exact value of a small integer.
    fn integer(self, n: i64) -> u64 {
        if n == 0 {
            return self.pack(false, 0, 0);
        }
        let m = n.unsigned_abs();
        let top = 63 - m.leading_zeros();
        let frac = (m << (self.frac_bits - top)) & self.frac_mask();
        self.pack(n < 0, (self.bias() + i64::from(top)) as u64, frac)
    }

    /// The exact value of `n + 0.5` (or `n - 0.5` for negative `n`).
    fn half(self, n: i64) -> u64 {
        let twice = 2 * n.unsigned_abs() + 1;
        let top = 63 - twice.leading_zeros();
        let frac = (twice << (self.frac_bits - top)) & self.frac_mask();
        self.pack(n < 0, (self.bias() + i64::from(top) - 1) as u64, frac)
    }
}

/// An interesting single-precision value, as bits.
pub fn f32_bits(rng: &mut Rng) -> u32 {
    SINGLE.interesting(rng) as u32
}

/// An interesting double-precision value, as bits.
pub fn f64_bits(rng: &mut Rng) -> u64 {
    DOUBLE.interesting(rng)
}

/// The x87 extended value of a double (exact: every double is an extended value).
pub fn f80_of_f64(bits: u64) -> [u8; 10] {
    let sign = bits >> 63;
    let exp = (bits >> 52) & 0x7ff;
    let frac = bits & ((1 << 52) - 1);
    let (e80, mant) = match (exp, frac) {
        (0, 0) => (0, 0),
        (0, f) => {
            // A denormal double is a normal extended value.
            // value = f * 2^-1074 = (f << shift) * 2^(-1074 - shift), significand bit 63 set.
            let shift = f.leading_zeros();
            (16383 + 63 - 1074 - u64::from(shift), f << shift)
        }
        (0x7ff, f) => (0x7fff, (1 << 63) | (f << 11)),
        (e, f) => (e + 16383 - 1023, (1 << 63) | (f << 11)),
    };
    pack80(sign != 0, e80, mant)
}

/// An 80-bit extended value from its fields.
pub fn pack80(sign: bool, exp: u64, mant: u64) -> [u8; 10] {
    let mut b = [0u8; 10];
    b[..8].copy_from_slice(&mant.to_le_bytes());
    let top = (u16::from(sign) << 15) | (exp as u16 & 0x7fff);
    b[8..].copy_from_slice(&top.to_le_bytes());
    b
}

/// An interesting x87 extended value: the special values, values exact from doubles, normal
/// numbers with all 64 significand bits, and now and then an encoding the x87 no longer
/// supports (unnormal, pseudo-NaN, pseudo-infinity: #IA) or a pseudo-denormal.
pub fn f80(rng: &mut Rng) -> [u8; 10] {
    let sign = rng.chance(1, 2);
    let int = 1u64 << 63;
    let frac = rng.next_u64() & !int;
    match rng.below(20) {
        0 => pack80(sign, 0, 0),
        1 => pack80(sign, 0x7fff, int),
        // QNaN (the real indefinite among them) and SNaN.
        2 => pack80(sign, 0x7fff, int | (1 << 62) | (frac * rng.below(2))),
        3 => pack80(sign, 0x7fff, int | (frac >> 1).max(1)),
        4 => pack80(sign, 0, frac.max(1)),
        5 => pack80(sign, 0x7ffe, u64::MAX),
        6 => pack80(sign, 1, int | (frac * rng.below(2))),
        7..=10 => f80_of_f64(f64_bits(rng)),
        // Unsupported encodings: unnormal, pseudo-NaN/infinity; and a pseudo-denormal.
        11 if rng.chance(1, 3) => match rng.below(3) {
            0 => pack80(sign, 1 + rng.below(0x7ffe), frac),
            1 => pack80(sign, 0x7fff, frac),
            _ => pack80(sign, 0, int | frac),
        },
        12 => {
            let e = if rng.chance(1, 2) {
                0x7ffe - rng.below(4)
            } else {
                1 + rng.below(4)
            };
            pack80(sign, e, int | frac)
        }
        13 => pack80(sign, 16383 + rng.below(70), int | frac),
        _ => pack80(sign, (16383 + rng.range(-20, 20)) as u64, int | frac),
    }
}

/// A 128-bit XMM value: four singles, two doubles, integer lanes of edge values, or random
/// bits.
pub fn xmm(rng: &mut Rng) -> [u8; 16] {
    let mut b = [0u8; 16];
    match rng.below(10) {
        0..=3 => {
            for lane in b.chunks_exact_mut(4) {
                lane.copy_from_slice(&f32_bits(rng).to_le_bytes());
            }
        }
        4..=6 => {
            for lane in b.chunks_exact_mut(8) {
                lane.copy_from_slice(&f64_bits(rng).to_le_bytes());
            }
        }
        7 | 8 => {
            let width = [1usize, 2, 4, 8][rng.index(4)];
            for lane in b.chunks_exact_mut(width) {
                let v = rng.interesting().to_le_bytes();
                lane.copy_from_slice(&v[..width]);
            }
        }
        _ => {
            b[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
            b[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_constructions() {
        assert_eq!(f32::from_bits(SINGLE.integer(-3) as u32), -3.0);
        assert_eq!(f64::from_bits(DOUBLE.integer(12)), 12.0);
        assert_eq!(f64::from_bits(DOUBLE.half(2)), 2.5);
        assert_eq!(f32::from_bits(SINGLE.half(-1) as u32), -1.5);
        assert_eq!(f64::from_bits(DOUBLE.half(0)), 0.5);
        // 1.0 and the smallest double denormal as extended values.
        assert_eq!(f80_of_f64(1f64.to_bits()), pack80(false, 16383, 1 << 63));
        assert_eq!(f80_of_f64(1), pack80(false, 16383 - 1074, 1 << 63));
        assert_eq!(
            f80_of_f64(f64::NEG_INFINITY.to_bits()),
            pack80(true, 0x7fff, 1 << 63)
        );
    }

    #[test]
    fn values_cover_the_special_classes() {
        let mut rng = Rng::new(1);
        let v: Vec<f64> = (0..2000)
            .map(|_| f64::from_bits(f64_bits(&mut rng)))
            .collect();
        assert!(v.iter().any(|x| x.is_nan()));
        assert!(v.iter().any(|x| x.is_infinite()));
        assert!(v.iter().any(|x| x.is_subnormal()));
        assert!(v.iter().any(|x| *x == 0.0 && x.is_sign_negative()));
        assert!(v.iter().any(|x| x.fract() == 0.5));
        assert!(v.iter().filter(|x| x.is_normal()).count() > 1000);
    }
}
