//! Flags transfer, frames, counted branches and odds and ends: LAHF, SAHF, PUSHF/PUSHFD/PUSHFQ,
//! POPF/POPFD/POPFQ, ENTER, LEAVE, LOOP, LOOPE, LOOPNE, JCXZ/JECXZ/JRCXZ, XLAT, UD2, PAUSE
//! (SDM Vol. 2A/2B, one page each).
//!
//! PUSHF stores RFLAGS with VM and RF cleared (the SDM's image); in virtual-8086 mode it would
//! need IOPL = 3, which 64-bit code never meets (not modelled). POPF goes to a helper
//! ([`crate::helpers::POPF`]) for the CPL/IOPL/VM rules, and ends the block (RIP stored, then
//! `Flow::Jump`) so that a change of IF or TF is seen before the next instruction; the value
//! is loaded and the helper run before RSP moves, so a fault leaves RSP alone. LAHF/SAHF are
//! taken as available in 64-bit mode (CPUID LAHF-SAHF). ENTER writes every frame slot before
//! RSP and RBP change (its #SS checks on the final RSP are not modelled); the nesting level is
//! taken modulo 32. LOOP*/JrCXZ use rCX at the address size. UD2 raises #UD deliberately;
//! PAUSE is a NOP for a single-threaded interpreter (the engine may yield on it later).

use iced_x86::{Code, Instruction, Mnemonic, Register};
use tandem_tcg::{Builder, Cond, Width};

use super::data_move::{push_value, sp_reg};
use super::flag_ops::{flag, rflags};
use super::operand::{effective_address, linear, read_reg, write_reg};
use super::partial::update_flags;
use super::translate::{Dc, Flow, Untranslated};
use crate::context::RIP;
use crate::exception::vector;
use crate::flags::bit;
use crate::helpers::POPF;

type Outcome = Result<Flow, Untranslated>;

/// The flags SAHF loads from AH and LAHF stores into it (with the fixed bit 1).
const AH_FLAGS: u64 = bit::SF | bit::ZF | bit::AF | bit::PF | bit::CF;

/// The stack operand width of PUSHF/POPF/ENTER/LEAVE, from the stack-pointer movement or the
/// code's size suffix.
fn stack_width(i: &Instruction) -> Width {
    match i.code() {
        Code::Enterw_imm16_imm8 | Code::Leavew | Code::Pushfw | Code::Popfw => Width::W16,
        Code::Enterd_imm16_imm8 | Code::Leaved | Code::Pushfd | Code::Popfd => Width::W32,
        _ => Width::W64,
    }
}

/// LAHF, SAHF, PUSHF, POPF.
pub fn flags_transfer<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Outcome, B::Trap> {
    let w = stack_width(i);
    match i.mnemonic() {
        Mnemonic::Lahf => {
            let f = rflags(b)?;
            let m = b.imm(AH_FLAGS);
            let v = b.and(f, m);
            let fixed = b.imm(2);
            let v = b.or(v, fixed);
            write_reg(b, Register::AH, v);
        }
        Mnemonic::Sahf => {
            let ah = read_reg(b, Register::AH).unwrap_or_else(|| b.imm(0));
            let m = b.imm(AH_FLAGS);
            let v = b.and(ah, m);
            update_flags(b, AH_FLAGS, v)?;
        }
        Mnemonic::Pushf | Mnemonic::Pushfd | Mnemonic::Pushfq => {
            let f = rflags(b)?;
            let m = b.imm(!((1 << 16) | (1 << 17)));
            let v = b.and(f, m);
            push_value(b, dc, w, v)?;
        }
        Mnemonic::Popf | Mnemonic::Popfd | Mnemonic::Popfq => {
            let sp = read_reg(b, sp_reg(dc)).unwrap_or_else(|| b.imm(0));
            let addr = linear(b, dc, Register::SS, sp);
            let v = b.load(addr, w)?;
            let bytes = b.imm(w.bytes() as u64);
            b.call(&POPF, &[v, bytes])?;
            // The helper wrote RFLAGS itself.
            super::flag_ops::forget_cc(b);
            let nsp = b.add(sp, bytes);
            write_reg(b, sp_reg(dc), nsp);
            let next = b.imm(i.next_ip());
            b.store_state(RIP, Width::W64, next);
            return Ok(Ok(Flow::Jump));
        }
        _ => return Ok(Err(Untranslated)),
    }
    Ok(Ok(Flow::Next))
}

/// The frame-pointer register of width `w`.
fn bp_reg(w: Width) -> Register {
    match w {
        Width::W16 => Register::BP,
        Width::W32 => Register::EBP,
        _ => Register::RBP,
    }
}

/// ENTER and LEAVE.
pub fn frame<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Outcome, B::Trap> {
    let w = stack_width(i);
    let spr = sp_reg(dc);
    let Some(sp) = read_reg(b, spr) else {
        return Ok(Err(Untranslated));
    };
    let size = b.imm(w.bytes() as u64);
    if i.mnemonic() == Mnemonic::Leave {
        // RSP = RBP, then RBP = pop: the load comes first so a fault changes nothing.
        let Some(bp) = read_reg(b, bp_reg(if dc.bitness == 64 { Width::W64 } else { w })) else {
            return Ok(Err(Untranslated));
        };
        let addr = linear(b, dc, Register::SS, bp);
        let v = b.load(addr, w)?;
        let nsp = b.add(bp, size);
        write_reg(b, spr, nsp);
        write_reg(b, bp_reg(w), v);
        return Ok(Ok(Flow::Next));
    }
    if i.mnemonic() != Mnemonic::Enter {
        return Ok(Err(Untranslated));
    }
    let alloc = u64::from(i.immediate16());
    let level = u64::from(i.immediate8_2nd()) % 32;
    let Some(bp) = read_reg(b, bp_reg(w)) else {
        return Ok(Err(Untranslated));
    };
    // Slot k (k = 1..) is at frame_temp - k * size: the old RBP, the level - 1 outer frame
    // pointers copied from [RBP - j * size], then frame_temp itself.
    let mut slot = b.sub(sp, size);
    let a = linear(b, dc, Register::SS, slot);
    b.store(a, w, bp)?;
    let frame_temp = slot;
    if level > 0 {
        let mut outer = bp;
        for _ in 1..level {
            outer = b.sub(outer, size);
            let src = linear(b, dc, Register::SS, outer);
            let v = b.load(src, w)?;
            slot = b.sub(slot, size);
            let dst = linear(b, dc, Register::SS, slot);
            b.store(dst, w, v)?;
        }
        slot = b.sub(slot, size);
        let dst = linear(b, dc, Register::SS, slot);
        b.store(dst, w, frame_temp)?;
    }
    let n = b.imm(alloc);
    let nsp = b.sub(slot, n);
    write_reg(b, bp_reg(w), frame_temp);
    write_reg(b, spr, nsp);
    Ok(Ok(Flow::Next))
}

/// The counter register of LOOPcc/JrCXZ (rCX at the address size).
fn counter(i: &Instruction) -> Register {
    use Code as C;
    match i.code() {
        C::Loop_rel8_16_CX
        | C::Loop_rel8_32_CX
        | C::Loope_rel8_16_CX
        | C::Loope_rel8_32_CX
        | C::Loopne_rel8_16_CX
        | C::Loopne_rel8_32_CX
        | C::Jcxz_rel8_16
        | C::Jcxz_rel8_32 => Register::CX,
        C::Loop_rel8_16_ECX
        | C::Loop_rel8_32_ECX
        | C::Loop_rel8_64_ECX
        | C::Loope_rel8_16_ECX
        | C::Loope_rel8_32_ECX
        | C::Loope_rel8_64_ECX
        | C::Loopne_rel8_16_ECX
        | C::Loopne_rel8_32_ECX
        | C::Loopne_rel8_64_ECX
        | C::Jecxz_rel8_16
        | C::Jecxz_rel8_32
        | C::Jecxz_rel8_64 => Register::ECX,
        _ => Register::RCX,
    }
}

/// LOOP, LOOPE, LOOPNE (decrement rCX, no flags changed) and JCXZ/JECXZ/JRCXZ.
pub fn counted_branch<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Outcome, B::Trap> {
    let _ = dc;
    let cx = counter(i);
    let Some(c) = read_reg(b, cx) else {
        return Ok(Err(Untranslated));
    };
    let z = b.imm(0);
    let taken = match i.mnemonic() {
        Mnemonic::Jcxz | Mnemonic::Jecxz | Mnemonic::Jrcxz => b.icmp(Cond::Eq, c, z),
        m => {
            let one = b.imm(1);
            let n = b.sub(c, one);
            write_reg(b, cx, n);
            let cw = Width::from_bytes(cx.size()).unwrap_or(Width::W64);
            let n = b.zext(n, cw);
            let more = b.icmp(Cond::Ne, n, z);
            match m {
                Mnemonic::Loope => {
                    let zf = flag(b, bit::ZF)?;
                    b.and(more, zf)
                }
                Mnemonic::Loopne => {
                    let zf = flag(b, bit::ZF)?;
                    let one = b.imm(1);
                    let nz = b.xor(zf, one);
                    b.and(more, nz)
                }
                Mnemonic::Loop => more,
                _ => return Ok(Err(Untranslated)),
            }
        }
    };
    // near_branch_target is already truncated to the operand size.
    let t = b.imm(i.near_branch_target());
    let next = b.imm(i.next_ip());
    let rip = b.select(taken, t, next);
    b.store_state(RIP, Width::W64, rip);
    Ok(Ok(Flow::Jump))
}

/// XLAT, UD2, PAUSE.
pub fn odd<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Outcome, B::Trap> {
    match i.mnemonic() {
        Mnemonic::Xlatb => {
            // The memory operand is seg:[rBX + AL] (iced's base and index).
            let addr = effective_address(b, dc, i);
            let v = b.load(addr, Width::W8)?;
            write_reg(b, Register::AL, v);
        }
        Mnemonic::Ud2 => return Err(b.raise(vector::UD, None)),
        Mnemonic::Pause => {}
        _ => return Ok(Err(Untranslated)),
    }
    Ok(Ok(Flow::Next))
}
