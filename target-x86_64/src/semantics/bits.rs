//! Bit operations: BT, BTS, BTR, BTC, BSF, BSR, LZCNT, TZCNT, POPCNT, BSWAP, MOVBE (SDM
//! Vol. 2A/2B, one page each).
//!
//! BT*: a register or immediate offset into a register is taken modulo the width, as is an
//! immediate offset into memory. A register offset into memory is the SDM's bit string: the
//! offset is signed and moves the address by `(offset >> log2(width)) * bytes`, within which
//! bit `offset mod width` is used (the displacement is added to the linear address, not
//! wrapped at a 16/32-bit address size). Only CF is written; ZF is kept, and OF, SF, AF, PF
//! (undefined) are kept too, so BT* update RFLAGS eagerly.
//!
//! BSF/BSR: a zero source sets ZF and leaves the destination untouched, all 64 bits of it
//! (AMD documents this; Intel processors behave so); flags are recorded as a logic result on
//! the source (ZF = source is 0; CF = OF = AF = 0 and SF/PF of the source for the undefined
//! ones). LZCNT/TZCNT return the width for a zero source, CF = source is 0, ZF = result is 0
//! (OF = AF = 0; SF/PF of the result). POPCNT clears every flag but ZF = source is 0. LZCNT and
//! TZCNT assume the ABM/BMI1 encodings (without them hardware runs BSR/BSF: not modelled).
//!
//! BSWAP with a 16-bit operand is undefined in the SDM; this model writes 0 there, as Intel
//! processors do. MOVBE moves with the bytes reversed, in either direction.

use iced_x86::{Instruction, Mnemonic, OpKind};
use tandem_tcg::{Builder, Cond, Width};

use super::flag_ops::set_cc;
use super::operand::{effective_address, op_width, read_op, read_reg, write_op, write_reg};
use super::partial::{update_flags, write_reg_if};
use super::translate::{Dc, Flow, Untranslated};
use crate::flags::{bit, CcKind};

type Outcome = Result<Flow, Untranslated>;

/// BT, BTS, BTR, BTC.
pub fn bit_test<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Outcome, B::Trap> {
    let w = op_width(i, 0);
    let bits = u64::from(w.bits());
    let low = b.imm(bits - 1);
    let Some(off) = read_op(b, dc, i, 1)? else {
        return Ok(Err(Untranslated));
    };
    let pos = b.and(off, low);
    let one = b.imm(1);
    let m = b.shl(one, pos);
    let modify = |b: &mut B, v: B::Value| -> Option<B::Value> {
        match i.mnemonic() {
            Mnemonic::Bts => Some(b.or(v, m)),
            Mnemonic::Btr => {
                let nm = b.not(m);
                Some(b.and(v, nm))
            }
            Mnemonic::Btc => Some(b.xor(v, m)),
            _ => None,
        }
    };
    let v = match (i.op_kind(0), i.op_kind(1)) {
        (OpKind::Memory, OpKind::Register) => {
            // The bit string: a signed offset selects the operand-sized unit that holds it.
            let soff = b.sext(off, w);
            let unit = b.imm(u64::from(w.bits().trailing_zeros()));
            let idx = b.ashr(soff, unit);
            let scale = b.imm(w.bytes().trailing_zeros().into());
            let disp = b.shl(idx, scale);
            let base = effective_address(b, dc, i);
            let addr = b.add(base, disp);
            let v = b.load(addr, w)?;
            if let Some(nv) = modify(b, v) {
                b.store(addr, w, nv)?;
            }
            v
        }
        (OpKind::Register | OpKind::Memory, _) => {
            let Some(v) = read_op(b, dc, i, 0)? else {
                return Ok(Err(Untranslated));
            };
            if let Some(nv) = modify(b, v) {
                let _ = write_op(b, dc, i, 0, nv)?;
            }
            v
        }
        _ => return Ok(Err(Untranslated)),
    };
    if dc.dead_flags & bit::CF == 0 {
        let s = b.lshr(v, pos);
        let cf = b.and(s, one);
        update_flags(b, bit::CF, cf)?;
    }
    Ok(Ok(Flow::Next))
}

/// BSF, BSR, LZCNT, TZCNT, POPCNT.
pub fn scan<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Outcome, B::Trap> {
    let w = op_width(i, 0);
    let Some(src) = read_op(b, dc, i, 1)? else {
        return Ok(Err(Untranslated));
    };
    if i.op_kind(0) != OpKind::Register {
        return Ok(Err(Untranslated));
    }
    let dst = i.op_register(0);
    let z = b.imm(0);
    let zero = b.icmp(Cond::Eq, src, z);
    let bits = b.imm(u64::from(w.bits()));
    // `src` is zero-extended, so its leading zeros count the 64 - width bits above it.
    let above = b.imm(64 - u64::from(w.bits()));
    match i.mnemonic() {
        Mnemonic::Bsf | Mnemonic::Bsr => {
            let idx = if i.mnemonic() == Mnemonic::Bsf {
                b.ctz(src)
            } else {
                let l = b.clz(src);
                let top = b.imm(63);
                b.sub(top, l)
            };
            let nz = b.icmp(Cond::Ne, src, z);
            if write_reg_if(b, dst, nz, idx).is_none() {
                return Ok(Err(Untranslated));
            }
            set_cc(b, CcKind::Logic, w, src, src, src);
        }
        Mnemonic::Lzcnt | Mnemonic::Tzcnt => {
            let r = if i.mnemonic() == Mnemonic::Lzcnt {
                let l = b.clz(src);
                b.sub(l, above)
            } else {
                let t = b.ctz(src);
                b.select(zero, bits, t)
            };
            if write_reg(b, dst, r).is_none() {
                return Ok(Err(Untranslated));
            }
            set_cc(b, CcKind::Cnt, w, r, src, z);
        }
        Mnemonic::Popcnt => {
            let r = b.popcnt(src);
            if write_reg(b, dst, r).is_none() {
                return Ok(Err(Untranslated));
            }
            set_cc(b, CcKind::Popcnt, w, r, src, z);
        }
        _ => return Ok(Err(Untranslated)),
    }
    Ok(Ok(Flow::Next))
}

/// `v` (zero-extended, width `w`) with its `w` bytes reversed.
fn swap_bytes<B: Builder>(b: &mut B, v: B::Value, w: Width) -> B::Value {
    let s = b.bswap(v);
    let sh = b.imm(64 - u64::from(w.bits()));
    b.lshr(s, sh)
}

/// BSWAP and MOVBE.
pub fn byte_order<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Outcome, B::Trap> {
    let w = op_width(i, 0);
    let v = match i.mnemonic() {
        Mnemonic::Bswap => {
            let Some(x) = read_op(b, dc, i, 0)? else {
                return Ok(Err(Untranslated));
            };
            if w == Width::W16 {
                b.imm(0)
            } else {
                swap_bytes(b, x, w)
            }
        }
        Mnemonic::Movbe => {
            let Some(x) = read_op(b, dc, i, 1)? else {
                return Ok(Err(Untranslated));
            };
            swap_bytes(b, x, w)
        }
        _ => return Ok(Err(Untranslated)),
    };
    Ok(write_op(b, dc, i, 0, v)?
        .map(|_| Flow::Next)
        .ok_or(Untranslated))
}

/// The accumulator register of width `w` (CMPXCHG, string instructions).
pub fn accumulator(w: Width) -> iced_x86::Register {
    use iced_x86::Register as R;
    match w {
        Width::W8 => R::AL,
        Width::W16 => R::AX,
        Width::W32 => R::EAX,
        Width::W64 => R::RAX,
    }
}

/// Reads the accumulator of width `w`.
pub fn read_accumulator<B: Builder>(b: &mut B, w: Width) -> Option<B::Value> {
    read_reg(b, accumulator(w))
}
