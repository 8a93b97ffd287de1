//! Data movement: MOV, MOVZX, MOVSX, MOVSXD, LEA, XCHG, PUSH, POP, CBW/CWDE/CDQE,
//! CWD/CDQ/CQO, SETcc, CMOVcc, NOP.

use iced_x86::{Instruction, Mnemonic, Register};
use tandem_tcg::{Builder, Width};

use super::condition::evaluate;
use super::operand::{linear, op_width, operand_offset, read_op, read_reg, write_op, write_reg};
use super::translate::{Dc, Flow, Untranslated};

type Outcome = Result<Flow, Untranslated>;

/// MOV, MOVZX (zero-extension is how operands are read), MOVSX, MOVSXD, LEA, XCHG.
pub fn moves<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Outcome, B::Trap> {
    let v = match i.mnemonic() {
        Mnemonic::Mov | Mnemonic::Movzx => read_op(b, dc, i, 1)?,
        Mnemonic::Movsx | Mnemonic::Movsxd => {
            let w = op_width(i, 1);
            read_op(b, dc, i, 1)?.map(|v| b.sext(v, w))
        }
        // LEA: the offset only, never a segment base.
        Mnemonic::Lea => Some(operand_offset(b, dc, i)),
        Mnemonic::Xchg => {
            let (Some(x), Some(y)) = (read_op(b, dc, i, 0)?, read_op(b, dc, i, 1)?) else {
                return Ok(Err(Untranslated));
            };
            // Memory (if any) is written first, so a fault leaves the register intact.
            if write_op(b, dc, i, 1, x)?.is_none() || write_op(b, dc, i, 0, y)?.is_none() {
                return Ok(Err(Untranslated));
            }
            return Ok(Ok(Flow::Next));
        }
        _ => None,
    };
    let Some(v) = v else {
        return Ok(Err(Untranslated));
    };
    let w = op_width(i, 0);
    let v = b.zext(v, w);
    Ok(write_op(b, dc, i, 0, v)?
        .map(|_| Flow::Next)
        .ok_or(Untranslated))
}

fn stack_width(i: &Instruction) -> Width {
    Width::from_bytes(i.stack_pointer_increment().unsigned_abs() as usize).unwrap_or(Width::W64)
}

/// The stack pointer register for the current stack size.
pub fn sp_reg(dc: &Dc) -> Register {
    match dc.bitness {
        64 => Register::RSP,
        32 => Register::ESP,
        _ => Register::SP,
    }
}

/// Pushes `v` of width `w`: the store happens before RSP moves, so a fault leaves RSP intact.
pub fn push_value<B: Builder>(b: &mut B, dc: &Dc, w: Width, v: B::Value) -> Result<(), B::Trap> {
    let sp = read_reg(b, sp_reg(dc)).unwrap_or_else(|| b.imm(0));
    let size = b.imm(w.bytes() as u64);
    let new_sp = b.sub(sp, size);
    let addr = linear(b, dc, Register::SS, new_sp);
    b.store(addr, w, v)?;
    write_reg(b, sp_reg(dc), new_sp);
    Ok(())
}

/// Pops a value of width `w`.
pub fn pop_value<B: Builder>(b: &mut B, dc: &Dc, w: Width) -> Result<B::Value, B::Trap> {
    let sp = read_reg(b, sp_reg(dc)).unwrap_or_else(|| b.imm(0));
    let addr = linear(b, dc, Register::SS, sp);
    let v = b.load(addr, w)?;
    let size = b.imm(w.bytes() as u64);
    let new_sp = b.add(sp, size);
    write_reg(b, sp_reg(dc), new_sp);
    Ok(v)
}

/// PUSH and POP of registers, memory and immediates.
pub fn stack<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Outcome, B::Trap> {
    let w = stack_width(i);
    match i.mnemonic() {
        Mnemonic::Push => {
            let Some(v) = read_op(b, dc, i, 0)? else {
                return Ok(Err(Untranslated));
            };
            // Immediates are sign-extended to the stack width.
            let v = if i.op_kind(0) == iced_x86::OpKind::Register
                || i.op_kind(0) == iced_x86::OpKind::Memory
            {
                v
            } else {
                let iw = op_width(i, 0);
                let s = b.sext(v, iw);
                b.zext(s, w)
            };
            push_value(b, dc, w, v)?;
        }
        Mnemonic::Pop if i.op_kind(0) == iced_x86::OpKind::Register => {
            let v = pop_value(b, dc, w)?;
            // POP RSP: the popped value wins over the increment.
            write_reg(b, i.op_register(0), v);
        }
        Mnemonic::Pop if i.op_kind(0) == iced_x86::OpKind::Memory => {
            // POP r/m (8F /0). The destination's address is computed with RSP already
            // incremented (SDM "POP": "If the ESP register is used as a base register ...");
            // RSP only moves once the store succeeded, so a fault leaves it intact.
            let sp = read_reg(b, sp_reg(dc)).unwrap_or_else(|| b.imm(0));
            let from = linear(b, dc, Register::SS, sp);
            let v = b.load(from, w)?;
            let size = b.imm(w.bytes() as u64);
            let new_sp = b.add(sp, size);
            write_reg(b, sp_reg(dc), new_sp);
            let to = super::operand::effective_address(b, dc, i);
            write_reg(b, sp_reg(dc), sp);
            b.store(to, w, v)?;
            write_reg(b, sp_reg(dc), new_sp);
        }
        _ => return Ok(Err(Untranslated)),
    }
    Ok(Ok(Flow::Next))
}

/// CBW/CWDE/CDQE and CWD/CDQ/CQO.
pub fn sign_extend_acc<B: Builder>(b: &mut B, i: &Instruction) -> Outcome {
    let (from, to, into_dx) = match i.mnemonic() {
        Mnemonic::Cbw => (Register::AL, Register::AX, false),
        Mnemonic::Cwde => (Register::AX, Register::EAX, false),
        Mnemonic::Cdqe => (Register::EAX, Register::RAX, false),
        Mnemonic::Cwd => (Register::AX, Register::DX, true),
        Mnemonic::Cdq => (Register::EAX, Register::EDX, true),
        Mnemonic::Cqo => (Register::RAX, Register::RDX, true),
        _ => return Err(Untranslated),
    };
    let w = Width::from_bytes(from.size()).ok_or(Untranslated)?;
    let v = read_reg(b, from).ok_or(Untranslated)?;
    let s = b.sext(v, w);
    let r = if into_dx {
        let sh = b.imm(63);
        b.ashr(s, sh)
    } else {
        s
    };
    write_reg(b, to, r).ok_or(Untranslated)?;
    Ok(Flow::Next)
}

/// SETcc and CMOVcc.
pub fn conditional<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Outcome, B::Trap> {
    let Some(c) = evaluate(b, i.condition_code())? else {
        return Ok(Err(Untranslated));
    };
    if is_setcc(i.mnemonic()) {
        return Ok(write_op(b, dc, i, 0, c)?
            .map(|_| Flow::Next)
            .ok_or(Untranslated));
    }
    // CMOVcc: the source is read (and may fault) whatever the condition; a 32-bit destination
    // is zero-extended even when the move does not happen.
    let (Some(old), Some(new)) = (read_op(b, dc, i, 0)?, read_op(b, dc, i, 1)?) else {
        return Ok(Err(Untranslated));
    };
    let v = b.select(c, new, old);
    Ok(write_op(b, dc, i, 0, v)?
        .map(|_| Flow::Next)
        .ok_or(Untranslated))
}

/// CMOVcc mnemonics.
pub fn is_cmovcc(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Cmova
            | Mnemonic::Cmovae
            | Mnemonic::Cmovb
            | Mnemonic::Cmovbe
            | Mnemonic::Cmove
            | Mnemonic::Cmovg
            | Mnemonic::Cmovge
            | Mnemonic::Cmovl
            | Mnemonic::Cmovle
            | Mnemonic::Cmovne
            | Mnemonic::Cmovno
            | Mnemonic::Cmovnp
            | Mnemonic::Cmovns
            | Mnemonic::Cmovo
            | Mnemonic::Cmovp
            | Mnemonic::Cmovs
    )
}

/// SETcc mnemonics.
pub fn is_setcc(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Seta
            | Mnemonic::Setae
            | Mnemonic::Setb
            | Mnemonic::Setbe
            | Mnemonic::Sete
            | Mnemonic::Setg
            | Mnemonic::Setge
            | Mnemonic::Setl
            | Mnemonic::Setle
            | Mnemonic::Setne
            | Mnemonic::Setno
            | Mnemonic::Setnp
            | Mnemonic::Setns
            | Mnemonic::Seto
            | Mnemonic::Setp
            | Mnemonic::Sets
    )
}
