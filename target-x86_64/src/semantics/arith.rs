//! Integer arithmetic and logic with their flags: ADD, ADC, SUB, SBB, CMP, AND, OR, XOR, TEST,
//! INC, DEC, NEG, NOT (SDM Vol. 2A/2B, one page each).

use iced_x86::{Instruction, Mnemonic};
use tandem_tcg::Builder;

use super::flag_ops::{carry, set_cc};
use super::operand::{op_width, read_op, write_op};
use super::translate::{Dc, Flow, Untranslated};
use crate::flags::{bit, CcKind};

/// Two-operand arithmetic and logic.
pub fn binary<B: Builder>(
    b: &mut B,
    dc: &Dc,
    i: &Instruction,
) -> Result<Result<Flow, Untranslated>, B::Trap> {
    let w = op_width(i, 0);
    let (Some(x), Some(y)) = (read_op(b, dc, i, 0)?, read_op(b, dc, i, 1)?) else {
        return Ok(Err(Untranslated));
    };
    let (kind, res, src2, write) = match i.mnemonic() {
        Mnemonic::Add => (CcKind::Add, b.add(x, y), y, true),
        Mnemonic::Sub => (CcKind::Sub, b.sub(x, y), y, true),
        Mnemonic::Cmp => (CcKind::Sub, b.sub(x, y), y, false),
        Mnemonic::Adc => {
            let c = carry(b)?;
            let s = b.add(x, y);
            (CcKind::Adc, b.add(s, c), y, true)
        }
        Mnemonic::Sbb => {
            let c = carry(b)?;
            let s = b.sub(x, y);
            (CcKind::Sbb, b.sub(s, c), y, true)
        }
        Mnemonic::And => (CcKind::Logic, b.and(x, y), y, true),
        Mnemonic::Test => (CcKind::Logic, b.and(x, y), y, false),
        Mnemonic::Or => (CcKind::Logic, b.or(x, y), y, true),
        Mnemonic::Xor => (CcKind::Logic, b.xor(x, y), y, true),
        _ => return Ok(Err(Untranslated)),
    };
    let res = b.zext(res, w);
    if write && write_op(b, dc, i, 0, res)?.is_none() {
        return Ok(Err(Untranslated));
    }
    set_cc(b, kind, w, res, x, src2);
    Ok(Ok(Flow::Next))
}

/// One-operand arithmetic: INC, DEC, NEG, NOT.
pub fn unary<B: Builder>(
    b: &mut B,
    dc: &Dc,
    i: &Instruction,
) -> Result<Result<Flow, Untranslated>, B::Trap> {
    let w = op_width(i, 0);
    let Some(x) = read_op(b, dc, i, 0)? else {
        return Ok(Err(Untranslated));
    };
    let one = b.imm(1);
    let zero = b.imm(0);
    let (res, cc) = match i.mnemonic() {
        Mnemonic::Inc => {
            let c = super::flag_ops::flag(b, bit::CF)?;
            (b.add(x, one), Some((CcKind::Inc, x, c)))
        }
        Mnemonic::Dec => {
            let c = super::flag_ops::flag(b, bit::CF)?;
            (b.sub(x, one), Some((CcKind::Dec, x, c)))
        }
        // NEG is 0 - x, flags as SUB (CF set unless x was 0).
        Mnemonic::Neg => (b.neg(x), Some((CcKind::Sub, zero, x))),
        Mnemonic::Not => (b.not(x), None),
        _ => return Ok(Err(Untranslated)),
    };
    let res = b.zext(res, w);
    if write_op(b, dc, i, 0, res)?.is_none() {
        return Ok(Err(Untranslated));
    }
    if let Some((kind, src, src2)) = cc {
        set_cc(b, kind, w, res, src, src2);
    }
    Ok(Ok(Flow::Next))
}
