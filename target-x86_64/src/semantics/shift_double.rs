//! The shifts that bring in bits from outside the operand: RCL/RCR through the carry flag
//! (SDM Vol. 2B "RCL/RCR/ROL/ROR—Rotate") and SHLD/SHRD from a second register (Vol. 2B
//! "SHLD—Double Precision Shift Left", "SHRD—Double Precision Shift Right").
//!
//! RCL/RCR rotate the (width + 1)-bit value CF:dest by the masked count taken modulo 9 for
//! 8-bit and 17 for 16-bit operands (the modulo is done with two selects, the builder having
//! no division). Only CF and OF change (eagerly, the others must survive); OF for counts > 1
//! (undefined) is the count-1 formula: RCL MSB(result) ^ CF, RCR MSB(dest) ^ CF-in. A count
//! that is a non-zero multiple of 9 or 17 rotates nothing and leaves CF, recomputing OF.
//!
//! SHLD/SHRD: a count of 0 changes nothing. A 16-bit count above 16 (the SDM: result and
//! flags undefined) is computed here as a shift of the 32-bit concatenation dest:src (SHLD)
//! or src:dest (SHRD), so zeros follow the source bits. Flags are lazy (SHLD as SHL, SHRD with
//! its own kind): AF = 0, OF for counts > 1 by the count-1 rule (sign change).

use iced_x86::{Instruction, Mnemonic, OpKind};
use tandem_tcg::{Builder, Cond, Width};

use super::flag_ops::{carry, set_cc};
use super::operand::{op_width, read_op, write_op};
use super::shift::{bit_of, set_cf_of, with_count};
use super::translate::{Dc, Flow, Untranslated};
use crate::flags::CcKind;

type Outcome = Result<Flow, Untranslated>;

/// `v >> n` that is 0 for n >= 64 (the builder's shifts take n mod 64).
fn lshr_wide<B: Builder>(b: &mut B, v: B::Value, n: B::Value) -> B::Value {
    let s = b.lshr(v, n);
    let lim = b.imm(64);
    let big = b.icmp(Cond::Uge, n, lim);
    let z = b.imm(0);
    b.select(big, z, s)
}

/// `v << n` that is 0 for n >= 64.
fn shl_wide<B: Builder>(b: &mut B, v: B::Value, n: B::Value) -> B::Value {
    let s = b.shl(v, n);
    let lim = b.imm(64);
    let big = b.icmp(Cond::Uge, n, lim);
    let z = b.imm(0);
    b.select(big, z, s)
}

/// `c` mod (width + 1) for 8/16-bit operands (c <= 31), `c` itself otherwise.
fn rcx_count<B: Builder>(b: &mut B, w: Width, c: B::Value) -> B::Value {
    let modulus = match w {
        Width::W8 => 9,
        Width::W16 => 17,
        _ => return c,
    };
    let mut t = c;
    // c <= 31: subtracting 2m (when it fits) then m leaves c mod m for m = 9 (31 -> 13 -> 4)
    // and m = 17 (31 -> 31 -> 14).
    for k in [2 * modulus, modulus] {
        let kv = b.imm(k);
        let ge = b.icmp(Cond::Uge, t, kv);
        let d = b.sub(t, kv);
        t = b.select(ge, d, t);
    }
    t
}

/// RCL/RCR by a non-zero masked count `c`.
pub fn rotate_through_carry<B: Builder>(
    b: &mut B,
    dc: &Dc,
    i: &Instruction,
    w: Width,
    x: B::Value,
    c: B::Value,
) -> Result<(), B::Trap> {
    let left = i.mnemonic() == Mnemonic::Rcl;
    let bits = w.bits();
    let n = b.imm(u64::from(bits));
    let n1 = b.imm(u64::from(bits) + 1);
    let one = b.imm(1);
    let cf = carry(b)?;
    let t = rcx_count(b, w, c);
    let t1 = b.sub(t, one);
    let back = b.sub(n1, t); // n + 1 - t: in 1..=n+1 for t in 0..=n
    let (rot, cf_new) = if left {
        // dest' = dest << t | CF << (t - 1) | dest >> (n + 1 - t); CF' = bit n - t of dest.
        let p = b.shl(x, t);
        let q = b.shl(cf, t1);
        let r = lshr_wide(b, x, back);
        let pq = b.or(p, q);
        let nt = b.sub(n, t);
        let out = b.lshr(x, nt);
        (b.or(pq, r), b.and(out, one))
    } else {
        // dest' = dest >> t | CF << (n - t) | dest << (n + 1 - t); CF' = bit t - 1 of dest.
        let p = b.lshr(x, t);
        let nt = b.sub(n, t);
        let q = b.shl(cf, nt);
        let r = shl_wide(b, x, back);
        let pq = b.or(p, q);
        let out = b.lshr(x, t1);
        (b.or(pq, r), b.and(out, one))
    };
    let rot = b.zext(rot, w);
    // t = 0 (a count that is a multiple of 9 or 17): nothing rotates, CF stays.
    let z = b.imm(0);
    let none = b.icmp(Cond::Eq, t, z);
    let res = b.select(none, x, rot);
    let cf_new = b.select(none, cf, cf_new);
    let _ = write_op(b, dc, i, 0, res)?;
    let of = if left {
        let msb = bit_of(b, res, bits - 1);
        b.xor(msb, cf_new)
    } else {
        let msb = bit_of(b, x, bits - 1);
        b.xor(msb, cf)
    };
    set_cf_of(b, cf_new, of)
}

/// SHLD and SHRD (register or memory destination, register source, CL or imm8 count).
pub fn double_shift<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Outcome, B::Trap> {
    if !matches!(i.op_kind(0), OpKind::Register | OpKind::Memory) {
        return Ok(Err(Untranslated));
    }
    let w = op_width(i, 0);
    let (Some(x), Some(y)) = (read_op(b, dc, i, 0)?, read_op(b, dc, i, 1)?) else {
        return Ok(Err(Untranslated));
    };
    // As for the one-operand shifts: a 32-bit register is zero-extended whatever the count.
    if w == Width::W32 && i.op_kind(0) == OpKind::Register {
        let _ = write_op(b, dc, i, 0, x)?;
    }
    let left = i.mnemonic() == Mnemonic::Shld;
    let done = with_count(b, i, 2, w, |b, c| {
        let one = b.imm(1);
        let c1 = b.sub(c, one);
        let (res, src) = if w == Width::W64 {
            // 1 <= c <= 63: both shifts are in range.
            let n = b.imm(64);
            let back = b.sub(n, c);
            if left {
                let p = b.shl(x, c);
                let q = b.lshr(y, back);
                (b.or(p, q), b.shl(x, c1))
            } else {
                let p = b.lshr(x, c);
                let q = b.shl(y, back);
                (b.or(p, q), b.lshr(x, c1))
            }
        } else {
            // The 2w-bit concatenation fits in 64 bits (w <= 32) and c <= 31.
            let sh = b.imm(u64::from(w.bits()));
            if left {
                let hi = b.shl(x, sh);
                let cat = b.or(hi, y);
                let s = b.shl(cat, c);
                let s1 = b.shl(cat, c1);
                (b.lshr(s, sh), b.lshr(s1, sh))
            } else {
                let hi = b.shl(y, sh);
                let cat = b.or(hi, x);
                (b.lshr(cat, c), b.lshr(cat, c1))
            }
        };
        let res = b.zext(res, w);
        let _ = write_op(b, dc, i, 0, res)?;
        if left {
            // As SHL: CF = MSB of the count-1 shift, OF = CF ^ MSB(result).
            let z = b.imm(0);
            set_cc(b, CcKind::Shl, w, res, src, z);
        } else {
            set_cc(b, CcKind::Shrd, w, res, src, x);
        }
        Ok(())
    })?;
    Ok(done.map(|_| Flow::Next).ok_or(Untranslated))
}
