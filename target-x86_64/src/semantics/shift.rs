//! Shifts and rotates within one operand: SAL/SHL, SHR, SAR, ROL, ROR (SDM Vol. 2B,
//! "SAL/SAR/SHL/SHR—Shift" and "RCL/RCR/ROL/ROR—Rotate"); the count plumbing shared with
//! RCL/RCR and SHLD/SHRD ([`super::shift_double`]).
//!
//! The count (CL or an immediate) is masked to 5 bits, 6 for 64-bit operands. A masked count
//! of 0 changes nothing, flags included: an immediate 0 emits no update at all, a CL count
//! runs the update under `if_then(count != 0)`. The memory operand is read (and may fault)
//! whatever the count, as on hardware, and a 32-bit register is zero-extended even for a zero
//! count (the write happens; only the flags are spared).
//!
//! Flags: SHL/SHR/SAR record lazy kinds (CF = last bit out, SF/ZF/PF of the result). Where the
//! SDM leaves a flag undefined this model produces: AF = 0; OF for counts > 1 by the count-1
//! formula (SHL: CF ^ MSB(result); SHR: MSB(original); SAR: 0); CF for SHL/SHR counts >= the
//! 8/16-bit width: the last bit of the 64-bit shift (0). ROL/ROR change only CF and OF (OF by
//! the count-1 formula for any count), eagerly, since the other flags must survive; 8/16-bit
//! rotates set CF/OF even when the count is a multiple of the width (the SDM's pseudocode).
//! [`crate::flags::undefined_flags_of`] lists the undefined flags per count.

use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use tandem_tcg::{Builder, Cond, Width};

use super::flag_ops::set_cc;
use super::operand::{op_width, read_op, read_reg, write_op};
use super::partial::{to_flag, update_flags};
use super::shift_double;
use super::translate::{Dc, Flow, Untranslated};
use crate::flags::{bit, CcKind};

type Outcome = Result<Flow, Untranslated>;

/// The count mask of a `w`-wide shift: 5 bits, or 6 for 64-bit operands.
pub fn count_mask(w: Width) -> u64 {
    if w == Width::W64 {
        63
    } else {
        31
    }
}

/// Runs `body` with operand `n`'s count masked for width `w`, only when that count is not 0:
/// an immediate count decides at translation time, CL at run time (`if_then`). `None` when
/// operand `n` is not a count.
pub fn with_count<B: Builder>(
    b: &mut B,
    i: &Instruction,
    n: u32,
    w: Width,
    body: impl FnOnce(&mut B, B::Value) -> Result<(), B::Trap>,
) -> Result<Option<()>, B::Trap> {
    let mask = count_mask(w);
    match i.op_kind(n) {
        OpKind::Register if i.op_register(n) == Register::CL => {
            let Some(cl) = read_reg(b, Register::CL) else {
                return Ok(None);
            };
            let m = b.imm(mask);
            let c = b.and(cl, m);
            let z = b.imm(0);
            let nz = b.icmp(Cond::Ne, c, z);
            b.if_then(nz, |b| body(b, c))?;
        }
        OpKind::Immediate8 => {
            let c = u64::from(i.immediate8()) & mask;
            if c != 0 {
                let c = b.imm(c);
                body(b, c)?;
            }
        }
        _ => return Ok(None),
    }
    Ok(Some(()))
}

/// SHL/SAL, SHR, SAR, ROL, ROR, RCL, RCR.
pub fn shift<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Outcome, B::Trap> {
    if !matches!(i.op_kind(0), OpKind::Register | OpKind::Memory) {
        return Ok(Err(Untranslated));
    }
    let w = op_width(i, 0);
    let Some(x) = read_op(b, dc, i, 0)? else {
        return Ok(Err(Untranslated));
    };
    // A 32-bit register destination is written even for a zero count, so its upper half is
    // cleared as by any 32-bit write (hardware and QEMU agree); the flags stay untouched.
    if w == Width::W32 && i.op_kind(0) == OpKind::Register {
        let _ = write_op(b, dc, i, 0, x)?;
    }
    let m = i.mnemonic();
    let done = with_count(b, i, 1, w, |b, c| match m {
        Mnemonic::Rcl | Mnemonic::Rcr => shift_double::rotate_through_carry(b, dc, i, w, x, c),
        Mnemonic::Rol | Mnemonic::Ror => rotate(b, dc, i, w, x, c),
        _ => shift_by(b, dc, i, w, x, c),
    })?;
    Ok(done.map(|_| Flow::Next).ok_or(Untranslated))
}

/// SHL/SAL, SHR, SAR by a non-zero count `c`.
fn shift_by<B: Builder>(
    b: &mut B,
    dc: &Dc,
    i: &Instruction,
    w: Width,
    x: B::Value,
    c: B::Value,
) -> Result<(), B::Trap> {
    let one = b.imm(1);
    let c1 = b.sub(c, one);
    let zero = b.imm(0);
    // Counts are at most 31 for 8/16/32-bit operands, so the 64-bit shifts below keep every
    // bit that leaves the operand: the lazy flags read CF from the count-1 shift.
    let (kind, res, src, src2) = match i.mnemonic() {
        Mnemonic::Shl | Mnemonic::Sal => {
            let r = b.shl(x, c);
            let s = b.shl(x, c1);
            (CcKind::Shl, r, s, zero)
        }
        Mnemonic::Shr => {
            let r = b.lshr(x, c);
            let s = b.lshr(x, c1);
            (CcKind::Shr, r, s, x)
        }
        _ => {
            let sx = b.sext(x, w);
            let r = b.ashr(sx, c);
            let s = b.ashr(sx, c1);
            (CcKind::Sar, r, s, zero)
        }
    };
    let res = b.zext(res, w);
    let _ = write_op(b, dc, i, 0, res)?;
    set_cc(b, kind, w, res, src, src2);
    Ok(())
}

/// Bit `n` of `v` as 0 or 1.
pub fn bit_of<B: Builder>(b: &mut B, v: B::Value, n: u32) -> B::Value {
    let sh = b.imm(u64::from(n));
    let s = b.lshr(v, sh);
    let one = b.imm(1);
    b.and(s, one)
}

/// Writes CF and OF (each 0 or 1), keeping the other flags.
pub fn set_cf_of<B: Builder>(b: &mut B, cf: B::Value, of: B::Value) -> Result<(), B::Trap> {
    let o = to_flag(b, of, bit::OF);
    let v = b.or(o, cf);
    update_flags(b, bit::CF | bit::OF, v)
}

/// ROL/ROR by a non-zero masked count `c` (the rotation itself is `c` mod the width).
fn rotate<B: Builder>(
    b: &mut B,
    dc: &Dc,
    i: &Instruction,
    w: Width,
    x: B::Value,
    c: B::Value,
) -> Result<(), B::Trap> {
    let left = i.mnemonic() == Mnemonic::Rol;
    let bits = w.bits();
    let res = if w == Width::W64 {
        if left {
            b.rotl(x, c)
        } else {
            b.rotr(x, c)
        }
    } else {
        // r in 0..bits; for r = 0 the complementary shift by `bits` moves x entirely out of
        // the zero-extended width, so the result is x.
        let m = b.imm(u64::from(bits) - 1);
        let r = b.and(c, m);
        let n = b.imm(u64::from(bits));
        let back = b.sub(n, r);
        let (p, q) = if left {
            (b.shl(x, r), b.lshr(x, back))
        } else {
            (b.lshr(x, r), b.shl(x, back))
        };
        let o = b.or(p, q);
        b.zext(o, w)
    };
    let _ = write_op(b, dc, i, 0, res)?;
    let msb = bit_of(b, res, bits - 1);
    if dc.dead_flags & (bit::CF | bit::OF) == bit::CF | bit::OF {
        // The rest of the block overwrites both before anything looks (sha256's ROR chains).
        return Ok(());
    }
    let (cf, of) = if left {
        // ROL: CF = LSB(result), OF = MSB(result) ^ CF.
        let cf = bit_of(b, res, 0);
        (cf, b.xor(msb, cf))
    } else {
        // ROR: CF = MSB(result), OF = MSB(result) ^ MSB-1(result).
        let next = bit_of(b, res, bits - 2);
        (msb, b.xor(msb, next))
    };
    set_cf_of(b, cf, of)
}
