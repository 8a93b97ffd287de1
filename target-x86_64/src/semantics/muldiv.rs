//! Multiplication and division: MUL, IMUL (one-, two- and three-operand forms), DIV, IDIV
//! (SDM Vol. 2A "DIV", "IDIV", "IMUL", Vol. 2B "MUL").
//!
//! MUL/IMUL are builder operations: for 8/16/32-bit operands the full product fits in 64
//! bits; 64-bit operands use `umulh`/`smulh`. CF = OF = 1 when the high half is significant
//! (MUL: non-zero; IMUL: not the sign extension of the low half), recorded lazily with
//! [`CcKind::Mul`]; SF, ZF, PF (undefined) follow the low half of the result (the destination
//! width; the accumulator width for the one-operand forms) and AF (undefined) is 0.
//!
//! DIV/IDIV go to helpers ([`crate::helpers::DIV`], [`crate::helpers::IDIV`]) that divide the
//! implicit AX, DX:AX, EDX:EAX or RDX:RAX in 128-bit arithmetic, write quotient and remainder,
//! and raise #DE (registers untouched, RIP at the instruction) on a zero divisor or a quotient
//! that does not fit, including IDIV of the most negative dividend by -1. The six flags are
//! undefined after DIV/IDIV; this model leaves them as they were.

use iced_x86::{Instruction, Mnemonic, Register};
use tandem_tcg::{Builder, Cond, Width};

use super::flag_ops::set_cc;
use super::operand::{op_width, read_op, read_reg, write_op, write_reg};
use super::translate::{Dc, Flow, Untranslated};
use crate::flags::CcKind;
use crate::helpers::{DIV, IDIV};

type Outcome = Result<Flow, Untranslated>;

/// The accumulator and its high-half partner for a one-operand MUL/IMUL/DIV of width `w`.
fn acc_pair(w: Width) -> (Register, Register) {
    match w {
        Width::W8 => (Register::AL, Register::AH),
        Width::W16 => (Register::AX, Register::DX),
        Width::W32 => (Register::EAX, Register::EDX),
        Width::W64 => (Register::RAX, Register::RDX),
    }
}

/// `x * y` at width `w`: (low half, high half, 1 if the high half is significant).
fn product<B: Builder>(
    b: &mut B,
    w: Width,
    signed: bool,
    x: B::Value,
    y: B::Value,
) -> (B::Value, B::Value, B::Value) {
    if w == Width::W64 {
        let lo = b.mul(x, y);
        if signed {
            let hi = b.smulh(x, y);
            let s = b.imm(63);
            let ext = b.ashr(lo, s);
            let ov = b.icmp(Cond::Ne, hi, ext);
            (lo, hi, ov)
        } else {
            let hi = b.umulh(x, y);
            let z = b.imm(0);
            let ov = b.icmp(Cond::Ne, hi, z);
            (lo, hi, ov)
        }
    } else {
        // Operands of at most 32 bits: the exact product fits in 64 bits.
        let sh = b.imm(u64::from(w.bits()));
        if signed {
            let (sx, sy) = (b.sext(x, w), b.sext(y, w));
            let p = b.mul(sx, sy);
            let lo = b.zext(p, w);
            let h = b.ashr(p, sh);
            let hi = b.zext(h, w);
            let back = b.sext(p, w);
            let ov = b.icmp(Cond::Ne, back, p);
            (lo, hi, ov)
        } else {
            let p = b.mul(x, y);
            let lo = b.zext(p, w);
            let hi = b.lshr(p, sh);
            let z = b.imm(0);
            let ov = b.icmp(Cond::Ne, hi, z);
            (lo, hi, ov)
        }
    }
}

/// MUL and IMUL.
pub fn multiply<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Outcome, B::Trap> {
    let signed = i.mnemonic() == Mnemonic::Imul;
    let w = op_width(i, 0);
    match i.op_count() {
        1 => {
            let (acc, high) = acc_pair(w);
            let (Some(src), Some(a)) = (read_op(b, dc, i, 0)?, read_reg(b, acc)) else {
                return Ok(Err(Untranslated));
            };
            let (lo, hi, ov) = product(b, w, signed, a, src);
            if w == Width::W8 {
                // AX = AL * r/m8: AH is the high half.
                let sh = b.imm(8);
                let h = b.shl(hi, sh);
                let ax = b.or(h, lo);
                write_reg(b, Register::AX, ax);
            } else {
                write_reg(b, acc, lo);
                write_reg(b, high, hi);
            }
            let z = b.imm(0);
            set_cc(b, CcKind::Mul, w, lo, ov, z);
        }
        2 | 3 => {
            // IMUL r, r/m (dest *= src) and IMUL r, r/m, imm (dest = src * imm).
            let (x, y) = if i.op_count() == 2 {
                (read_op(b, dc, i, 0)?, read_op(b, dc, i, 1)?)
            } else {
                let iw = op_width(i, 2);
                let imm = read_op(b, dc, i, 2)?.map(|v| b.sext(v, iw));
                (read_op(b, dc, i, 1)?, imm)
            };
            let (Some(x), Some(y)) = (x, y) else {
                return Ok(Err(Untranslated));
            };
            let (lo, _, ov) = product(b, w, true, x, y);
            if write_op(b, dc, i, 0, lo)?.is_none() {
                return Ok(Err(Untranslated));
            }
            let z = b.imm(0);
            set_cc(b, CcKind::Mul, w, lo, ov, z);
        }
        _ => return Ok(Err(Untranslated)),
    }
    Ok(Ok(Flow::Next))
}

/// DIV and IDIV: the divisor is read here (a memory divisor may fault first), the division
/// and the #DE checks happen in the helper.
pub fn divide<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Outcome, B::Trap> {
    let w = op_width(i, 0);
    let Some(d) = read_op(b, dc, i, 0)? else {
        return Ok(Err(Untranslated));
    };
    let helper = if i.mnemonic() == Mnemonic::Idiv {
        &IDIV
    } else {
        &DIV
    };
    let bits = b.imm(u64::from(w.bits()));
    b.call(helper, &[d, bits])?;
    Ok(Ok(Flow::Next))
}
