//! Lazy condition codes: how RFLAGS' arithmetic bits follow from the last operation.
//!
//! A flag-setting instruction records `cc_op` (kind and width), its result and operands; the
//! flags are computed only when read (QEMU's CC_OP scheme, target/i386/cpu.h). The rules are the
//! Intel SDM's per instruction; where the SDM leaves a flag undefined this model produces what
//! the definition below says, and the differential tests mask exactly those flags (see
//! [`undefined_flags`]).

use tandem_tcg::Width;

/// RFLAGS bits.
pub mod bit {
    #![allow(missing_docs)]
    pub const CF: u64 = 1 << 0;
    pub const PF: u64 = 1 << 2;
    pub const AF: u64 = 1 << 4;
    pub const ZF: u64 = 1 << 6;
    pub const SF: u64 = 1 << 7;
    pub const TF: u64 = 1 << 8;
    pub const IF: u64 = 1 << 9;
    pub const DF: u64 = 1 << 10;
    pub const OF: u64 = 1 << 11;
    /// The six arithmetic flags.
    pub const ARITH: u64 = CF | PF | AF | ZF | SF | OF;
}

/// What the last flag-setting operation was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum CcKind {
    /// The flags are in RFLAGS.
    Eflags = 0,
    /// dst = src + src2.
    Add = 1,
    /// dst = src + src2 + carry-in.
    Adc = 2,
    /// dst = src - src2.
    Sub = 3,
    /// dst = src - src2 - borrow-in.
    Sbb = 4,
    /// Logic (and/or/xor/test): CF = OF = 0, AF = 0.
    Logic = 5,
    /// inc: src2 holds the CF to keep.
    Inc = 6,
    /// dec: src2 holds the CF to keep.
    Dec = 7,
    /// shl by a non-zero count: src = the value shifted by count - 1.
    Shl = 8,
    /// shr: src = the value shifted by count - 1, src2 = the original value.
    Shr = 9,
    /// sar: src = the value shifted by count - 1.
    Sar = 10,
    /// mul/imul: src != 0 means CF = OF = 1.
    Mul = 11,
    /// lzcnt/tzcnt: CF = (src == 0), ZF from the result, OF = AF = 0; SF and PF (undefined)
    /// follow the result.
    Cnt = 12,
    /// popcnt: every arithmetic flag clear except ZF = (src == 0).
    Popcnt = 13,
    /// shrd by a non-zero count: src = the value shifted by count - 1 (CF is its bit 0),
    /// src2 = the original destination (OF = its sign XOR the result's).
    Shrd = 14,
}

/// `cc_op` value for "flags are in RFLAGS".
pub const CC_EFLAGS: u64 = 0;

/// Encodes `kind` at width `w` as a `cc_op` value.
pub const fn cc_op(kind: CcKind, w: Width) -> u64 {
    if matches!(kind, CcKind::Eflags) {
        return CC_EFLAGS;
    }
    ((kind as u64) << 2)
        | match w {
            Width::W8 => 0,
            Width::W16 => 1,
            Width::W32 => 2,
            Width::W64 => 3,
        }
}

/// The kind and width a `cc_op` value encodes (None for CC_EFLAGS or garbage).
pub fn cc_kind_width(op: u64) -> Option<(CcKind, Width)> {
    decode(op)
}

fn decode(op: u64) -> Option<(CcKind, Width)> {
    let w = match op & 3 {
        0 => Width::W8,
        1 => Width::W16,
        2 => Width::W32,
        _ => Width::W64,
    };
    let kind = match op >> 2 {
        1 => CcKind::Add,
        2 => CcKind::Adc,
        3 => CcKind::Sub,
        4 => CcKind::Sbb,
        5 => CcKind::Logic,
        6 => CcKind::Inc,
        7 => CcKind::Dec,
        8 => CcKind::Shl,
        9 => CcKind::Shr,
        10 => CcKind::Sar,
        11 => CcKind::Mul,
        12 => CcKind::Cnt,
        13 => CcKind::Popcnt,
        14 => CcKind::Shrd,
        _ => return None,
    };
    Some((kind, w))
}

/// The flags the SDM leaves undefined after `kind`.
pub fn undefined_flags(kind: CcKind) -> u64 {
    match kind {
        CcKind::Logic => bit::AF,
        CcKind::Shl | CcKind::Shr | CcKind::Sar => bit::AF,
        CcKind::Mul => bit::SF | bit::ZF | bit::AF | bit::PF,
        CcKind::Cnt => bit::OF | bit::SF | bit::PF | bit::AF,
        CcKind::Shrd => bit::AF,
        _ => 0,
    }
}

/// The flags the SDM leaves undefined after instruction `m` at operand width `w`, for the
/// differential tests to mask. `count` is the shift or rotate count after masking to 5 bits
/// (6 for 64-bit operands); other instructions ignore it.
///
/// What this model produces for each undefined flag is documented at the instruction's
/// semantics (`semantics::shift`, `shift_double`, `muldiv`, `bits`); the masks are the SDM's.
pub fn undefined_flags_of(m: iced_x86::Mnemonic, w: Width, count: u64) -> u64 {
    use iced_x86::Mnemonic as M;
    let bits = u64::from(w.bits());
    match m {
        M::And | M::Or | M::Xor | M::Test => bit::AF,
        // A zero count changes nothing; OF is defined only for count 1; CF is undefined for
        // SHL/SHR once everything has been shifted out (count >= width, 8/16-bit forms).
        M::Shl | M::Sal | M::Shr | M::Sar => match count {
            0 => 0,
            1 => bit::AF,
            c if c >= bits && m != M::Sar => bit::AF | bit::OF | bit::CF,
            _ => bit::AF | bit::OF,
        },
        M::Rol | M::Ror | M::Rcl | M::Rcr if count > 1 => bit::OF,
        M::Shld | M::Shrd => match count {
            0 => 0,
            1 => bit::AF,
            c if c > bits => bit::ARITH,
            _ => bit::AF | bit::OF,
        },
        M::Mul | M::Imul => bit::SF | bit::ZF | bit::AF | bit::PF,
        M::Div | M::Idiv => bit::ARITH,
        M::Bt | M::Bts | M::Btr | M::Btc => bit::OF | bit::SF | bit::AF | bit::PF,
        M::Bsf | M::Bsr => bit::CF | bit::OF | bit::SF | bit::AF | bit::PF,
        M::Lzcnt | M::Tzcnt => bit::OF | bit::SF | bit::PF | bit::AF,
        _ => 0,
    }
}

fn parity(v: u64) -> bool {
    (v as u8).count_ones().is_multiple_of(2)
}

/// RFLAGS after the operation recorded as (`op`, `dst`, `src`, `src2`), starting from `rflags`.
pub fn eflags_from_cc(op: u64, dst: u64, src: u64, src2: u64, rflags: u64) -> u64 {
    let Some((kind, w)) = decode(op) else {
        return rflags;
    };
    let m = w.mask();
    let sign = w.sign_bit();
    let (res, a, b) = (dst & m, src & m, src2 & m);
    let mut cf = false;
    let mut of = false;
    let mut af = false;
    match kind {
        CcKind::Eflags => return rflags,
        CcKind::Add | CcKind::Adc => {
            let cin = kind == CcKind::Adc && (res.wrapping_sub(a).wrapping_sub(b) & m) == 1;
            cf = if cin { res <= a } else { res < a };
            of = (a ^ res) & (b ^ res) & sign != 0;
            af = (a ^ b ^ res) & 0x10 != 0;
        }
        CcKind::Sub | CcKind::Sbb => {
            let bin = kind == CcKind::Sbb && (a.wrapping_sub(b).wrapping_sub(res) & m) == 1;
            cf = if bin { a <= b } else { a < b };
            of = (a ^ b) & (a ^ res) & sign != 0;
            af = (a ^ b ^ res) & 0x10 != 0;
        }
        CcKind::Logic => {}
        CcKind::Inc => {
            cf = src2 != 0;
            of = res == sign;
            af = (a ^ 1 ^ res) & 0x10 != 0;
        }
        CcKind::Dec => {
            cf = src2 != 0;
            of = res == sign - 1;
            af = (a ^ 1 ^ res) & 0x10 != 0;
        }
        CcKind::Shl => {
            cf = a & sign != 0;
            of = cf != (res & sign != 0);
        }
        CcKind::Shr => {
            cf = a & 1 != 0;
            of = b & sign != 0;
        }
        CcKind::Sar => {
            cf = a & 1 != 0;
        }
        CcKind::Mul => {
            cf = src != 0;
            of = cf;
        }
        CcKind::Cnt => {
            cf = a == 0;
        }
        CcKind::Popcnt => {
            let zf = if res == 0 { bit::ZF } else { 0 };
            return (rflags & !bit::ARITH) | zf;
        }
        CcKind::Shrd => {
            cf = a & 1 != 0;
            of = (b ^ res) & sign != 0;
        }
    }
    let mut f = rflags & !bit::ARITH;
    f |= if cf { bit::CF } else { 0 };
    f |= if parity(res) { bit::PF } else { 0 };
    f |= if af { bit::AF } else { 0 };
    f |= if res == 0 { bit::ZF } else { 0 };
    f |= if res & sign != 0 { bit::SF } else { 0 };
    f |= if of { bit::OF } else { 0 };
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(kind: CcKind, w: Width, dst: u64, src: u64, src2: u64) -> u64 {
        eflags_from_cc(cc_op(kind, w), dst, src, src2, 0x2) & bit::ARITH
    }

    #[test]
    fn add_boundaries() {
        // 0x7f + 1 = 0x80: OF, SF, AF; no CF.
        assert_eq!(
            flags(CcKind::Add, Width::W8, 0x80, 0x7f, 1),
            bit::OF | bit::SF | bit::AF
        );
        // 0xff + 1 = 0: CF, ZF, AF, PF.
        assert_eq!(
            flags(CcKind::Add, Width::W8, 0, 0xff, 1),
            bit::CF | bit::ZF | bit::AF | bit::PF
        );
        // 64-bit all-ones + 1.
        assert_eq!(
            flags(CcKind::Add, Width::W64, 0, u64::MAX, 1) & (bit::CF | bit::ZF),
            bit::CF | bit::ZF
        );
    }

    #[test]
    fn adc_with_carry_in_sets_cf_on_equal() {
        // 0xff + 0 + 1 = 0 (CF via carry-in), and 0xff + 0xff + 1 = 0xff (CF).
        assert_ne!(flags(CcKind::Adc, Width::W8, 0, 0xff, 0) & bit::CF, 0);
        assert_ne!(flags(CcKind::Adc, Width::W8, 0xff, 0xff, 0xff) & bit::CF, 0);
        assert_eq!(
            flags(CcKind::Adc, Width::W8, 0xfe, 0xff, 0xff) & bit::CF,
            bit::CF
        );
    }

    #[test]
    fn sub_and_sbb() {
        // 0 - 1 = 0xff: CF, SF, AF, PF.
        assert_eq!(
            flags(CcKind::Sub, Width::W8, 0xff, 0, 1),
            bit::CF | bit::SF | bit::AF | bit::PF
        );
        // 0x80 - 1 = 0x7f: OF, AF.
        assert_eq!(
            flags(CcKind::Sub, Width::W8, 0x7f, 0x80, 1),
            bit::OF | bit::AF
        );
        // sbb 5 - 5 - 1 = 0xff..: CF.
        assert_ne!(
            flags(CcKind::Sbb, Width::W32, 0xffff_ffff, 5, 5) & bit::CF,
            0
        );
        // cmp equal: ZF, PF.
        assert_eq!(flags(CcKind::Sub, Width::W16, 0, 7, 7), bit::ZF | bit::PF);
    }

    #[test]
    fn inc_dec_keep_cf_and_set_of_at_the_sign_boundary() {
        assert_eq!(
            flags(CcKind::Inc, Width::W32, 0x8000_0000, 0x7fff_ffff, 1),
            bit::OF | bit::SF | bit::AF | bit::PF | bit::CF
        );
        assert_eq!(
            flags(CcKind::Dec, Width::W8, 0x7f, 0x80, 0),
            bit::OF | bit::AF
        );
    }

    #[test]
    fn logic_clears_cf_of() {
        let before = bit::CF | bit::OF;
        let f = eflags_from_cc(cc_op(CcKind::Logic, Width::W8), 0, 0, 0, before | 2);
        assert_eq!(f & bit::ARITH, bit::ZF | bit::PF);
        assert_eq!(undefined_flags(CcKind::Logic), bit::AF);
    }

    #[test]
    fn shifts() {
        // shl 0x81 by 1: CF = 1, result 0x02, OF = CF ^ SF = 1.
        assert_eq!(
            flags(CcKind::Shl, Width::W8, 0x02, 0x81, 0) & (bit::CF | bit::OF),
            bit::CF | bit::OF
        );
        // shr 0x81 by 1: CF = 1, OF = original sign.
        assert_eq!(
            flags(CcKind::Shr, Width::W8, 0x40, 0x81, 0x81) & (bit::CF | bit::OF),
            bit::CF | bit::OF
        );
        assert_eq!(eflags_from_cc(CC_EFLAGS, 1, 2, 3, 0x8d7), 0x8d7);
    }

    #[test]
    fn bit_counts_and_double_shifts() {
        // lzcnt of 0 (16-bit): result 16, CF = 1, ZF = 0.
        assert_eq!(flags(CcKind::Cnt, Width::W16, 16, 0, 0) & bit::CF, bit::CF);
        // tzcnt of 1: result 0, ZF = 1, CF = 0.
        assert_eq!(
            flags(CcKind::Cnt, Width::W32, 0, 1, 0) & (bit::CF | bit::ZF),
            bit::ZF
        );
        // popcnt clears everything but ZF, even with odd parity or a carry before.
        let f = eflags_from_cc(cc_op(CcKind::Popcnt, Width::W64), 0, 0, 0, bit::CF | 2);
        assert_eq!(f & bit::ARITH, bit::ZF);
        assert_eq!(flags(CcKind::Popcnt, Width::W64, 3, 0x11, 0), 0);
        // shrd 0x80 by 1 with a 1 shifted in: 0xc0; OF = 1 ^ 1 = 0, CF = 0.
        assert_eq!(
            flags(CcKind::Shrd, Width::W8, 0xc0, 0x80, 0x80) & (bit::CF | bit::OF),
            0
        );
        // shrd 0x01 by 1 with a 1 shifted in: 0x80; CF = 1, OF = 0 ^ 1 = 1.
        assert_eq!(
            flags(CcKind::Shrd, Width::W8, 0x80, 0x01, 0x01) & (bit::CF | bit::OF),
            bit::CF | bit::OF
        );
    }

    #[test]
    fn undefined_flags_follow_the_count() {
        use iced_x86::Mnemonic as M;
        assert_eq!(undefined_flags_of(M::Shl, Width::W32, 0), 0);
        assert_eq!(undefined_flags_of(M::Shl, Width::W32, 1), bit::AF);
        assert_eq!(undefined_flags_of(M::Sar, Width::W8, 9), bit::AF | bit::OF);
        assert_eq!(
            undefined_flags_of(M::Shr, Width::W8, 9),
            bit::AF | bit::OF | bit::CF
        );
        assert_eq!(undefined_flags_of(M::Shld, Width::W16, 17), bit::ARITH);
        assert_eq!(undefined_flags_of(M::Rcl, Width::W64, 1), 0);
        assert_eq!(undefined_flags_of(M::Div, Width::W64, 0), bit::ARITH);
    }
}
