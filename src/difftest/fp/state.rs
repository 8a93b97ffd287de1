//! The x87/SSE state a sequence starts from, and FXSAVE images for FXRSTOR to load: random but
//! always with every exception masked (FCW and MXCSR mask bits set, FSW.ES clear), so that
//! no sequence raises #MF or #XM unless it unmasks one itself.

use tandem_target_x86_64::FxsaveArea;

use super::values::{f80, xmm};
use crate::difftest::rng::Rng;

/// MXCSR with every exception masked and nothing else set.
pub const MXCSR_MASKED: u32 = 0x1f80;
/// MXCSR's rounding-control field.
const MXCSR_RC_SHIFT: u32 = 13;
/// MXCSR.DAZ (denormal inputs are zero).
const MXCSR_DAZ: u32 = 1 << 6;
/// MXCSR.FTZ (flush denormal results to zero).
const MXCSR_FTZ: u32 = 1 << 15;

/// A random MXCSR: every exception masked, rounding mode round-to-nearest half the time, DAZ
/// and FTZ a quarter of the time each, sticky exception flags (bits 0-5) half the time.
pub fn mxcsr(rng: &mut Rng) -> u32 {
    let rc = if rng.chance(1, 2) {
        0
    } else {
        rng.below(4) as u32
    };
    let mut m = MXCSR_MASKED | (rc << MXCSR_RC_SHIFT);
    if rng.chance(1, 4) {
        m |= MXCSR_DAZ;
    }
    if rng.chance(1, 4) {
        m |= MXCSR_FTZ;
    }
    if rng.chance(1, 2) {
        m |= rng.below(64) as u32;
    }
    m
}

/// A random x87 control word: every exception masked (bits 0-5), reserved bit 6 set as FNINIT
/// sets it, precision 64 bits most of the time, else 53 or 24 (never the reserved 01), any
/// rounding mode.
pub fn fcw(rng: &mut Rng) -> u16 {
    let pc = [3u16, 3, 3, 2, 2, 0][rng.index(6)];
    let rc = if rng.chance(1, 2) {
        0
    } else {
        rng.below(4) as u16
    };
    0x7f | (pc << 8) | (rc << 10)
}

/// How the x87 stack starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackStart {
    /// TOP anywhere.
    Any,
    /// TOP 0 most of the time (MMX code runs with TOP = 0; a non-zero TOP checks that MMi is
    /// physical register i, not ST(i)).
    MostlyZero,
}

/// The x87 part of `fx`: random register contents in all eight slots, a TOP, a stack of
/// 0..=8 valid registers from ST(0) up (or, one time in five, any tag pattern), FCW from
/// [`fcw`], and an FSW with that TOP, random condition codes and sticky flags (never ES or B:
/// nothing is pending).
pub fn randomize_x87(rng: &mut Rng, fx: &mut FxsaveArea, start: StackStart) {
    let top = match start {
        StackStart::MostlyZero if rng.chance(3, 4) => 0,
        _ => rng.below(8) as u16,
    };
    for i in 0..8 {
        fx.set_st(i, f80(rng));
    }
    let tags = if rng.chance(1, 5) {
        rng.below(256) as u8
    } else {
        // ST(0)..ST(depth-1) valid: physical registers TOP, TOP+1, ... (mod 8).
        let depth = rng.below(9);
        (0..depth).fold(0u8, |t, i| t | 1 << ((u64::from(top) + i) % 8))
    };
    fx.set_ftw(tags);
    fx.set_fcw(fcw(rng));
    let cc = (rng.below(16) as u16) & 0b1111;
    let cc_bits = (cc & 0b111) << 8 | (cc >> 3) << 14;
    let sticky = if rng.chance(1, 2) {
        rng.below(128) as u16
    } else {
        0
    };
    fx.set_fsw(top << 11 | cc_bits | sticky);
}

/// A random x87/SSE state: XMM0-15 from [`xmm`], MXCSR from [`mxcsr`], the x87 part from
/// [`randomize_x87`].
pub fn random_state(rng: &mut Rng, start: StackStart) -> FxsaveArea {
    let mut fx = FxsaveArea::default();
    for i in 0..16 {
        fx.set_xmm(i, xmm(rng));
    }
    fx.set_mxcsr(mxcsr(rng));
    randomize_x87(rng, &mut fx, start);
    fx
}

/// A valid FXSAVE image for FXRSTOR: a [`random_state`] with random bytes where FXRSTOR
/// ignores them (FOP and the pointers, MXCSR_MASK, the reserved and available bytes).
pub fn image(rng: &mut Rng) -> [u8; 512] {
    let state = random_state(rng, StackStart::Any);
    let mut img = [0u8; 512];
    for chunk in img.chunks_exact_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    let fields = [0..5usize, 24..28];
    for r in fields {
        img[r.clone()].copy_from_slice(&state.0[r]);
    }
    for i in 0..8 {
        let at = 32 + 16 * i;
        img[at..at + 10].copy_from_slice(&state.st(i));
    }
    img[160..416].copy_from_slice(&state.0[160..416]);
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_never_unmask_or_pend_an_exception() {
        let mut rng = Rng::new(3);
        for _ in 0..500 {
            let fx = random_state(&mut rng, StackStart::Any);
            assert_eq!(fx.mxcsr() & 0xffff_1f80, 0x1f80, "{:#x}", fx.mxcsr());
            assert_eq!(fx.fcw() & 0x7f, 0x7f);
            assert_ne!((fx.fcw() >> 8) & 3, 1, "reserved precision");
            assert_eq!(fx.fsw() & 0x8080, 0, "ES and B stay clear");
            let img = image(&mut rng);
            let mx = u32::from_le_bytes(img[24..28].try_into().unwrap());
            assert_eq!(mx & 0xffff_0000, 0);
        }
    }

    #[test]
    fn stacks_are_contiguous_from_top() {
        let mut rng = Rng::new(9);
        let mut fx = FxsaveArea::default();
        let mut contiguous = 0;
        for _ in 0..200 {
            randomize_x87(&mut rng, &mut fx, StackStart::Any);
            let top = (fx.fsw() >> 11) & 7;
            let tags = fx.ftw().rotate_right(u32::from(top));
            contiguous += u32::from(tags & tags.wrapping_add(1) == 0);
        }
        assert!(contiguous > 140, "{contiguous}");
    }
}
