//! Control transfer and machine control: JMP, Jcc, CALL, RET (near), LOOP/JRCXZ, CLC/STC/CMC/
//! CLD/STD, HLT.

use iced_x86::{Instruction, Mnemonic, OpKind};
use tandem_tcg::{Builder, Width};

use super::condition::evaluate;
use super::data_move::{pop_value, push_value};
use super::flag_ops::{rflags, set_rflags};
use super::operand::read_op;
use super::translate::{Dc, Flow, Untranslated};
use crate::context::RIP;
use crate::flags::bit;

type Outcome = Result<Flow, Untranslated>;

fn ip_width(dc: &Dc) -> Width {
    match dc.bitness {
        64 => Width::W64,
        32 => Width::W32,
        _ => Width::W16,
    }
}

/// The target of a near branch: immediate, register or memory.
fn target<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Option<B::Value>, B::Trap> {
    Ok(match i.op_kind(0) {
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
            Some(b.imm(i.near_branch_target()))
        }
        OpKind::Register | OpKind::Memory => read_op(b, dc, i, 0)?,
        _ => None,
    })
}

/// JMP, Jcc, CALL, RET, LOOPcc, JRCXZ.
pub fn branch<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Outcome, B::Trap> {
    let next = b.imm(i.next_ip());
    let w = ip_width(dc);
    match i.mnemonic() {
        Mnemonic::Jmp => {
            let Some(t) = target(b, dc, i)? else {
                return Ok(Err(Untranslated));
            };
            let t = b.zext(t, w);
            b.store_state(RIP, Width::W64, t);
        }
        Mnemonic::Call => {
            let Some(t) = target(b, dc, i)? else {
                return Ok(Err(Untranslated));
            };
            let t = b.zext(t, w);
            push_value(b, dc, w, next)?;
            b.store_state(RIP, Width::W64, t);
        }
        Mnemonic::Ret => {
            let t = pop_value(b, dc, w)?;
            if i.op_count() == 1 {
                // RET imm16 releases that many bytes of arguments.
                let sp_reg = super::data_move::sp_reg(dc);
                let sp = super::operand::read_reg(b, sp_reg).unwrap_or_else(|| b.imm(0));
                let n = b.imm(u64::from(i.immediate16()));
                let nsp = b.add(sp, n);
                super::operand::write_reg(b, sp_reg, nsp);
            }
            b.store_state(RIP, Width::W64, t);
        }
        _ if i.is_jcc_short_or_near() => {
            let Some(c) = evaluate(b, i.condition_code())? else {
                return Ok(Err(Untranslated));
            };
            let t = b.imm(w.zext(i.near_branch_target()));
            let dest = b.select(c, t, next);
            b.store_state(RIP, Width::W64, dest);
        }
        _ => return Ok(Err(Untranslated)),
    }
    Ok(Ok(Flow::Jump))
}

/// CLC, STC, CMC, CLD, STD.
pub fn flag_control<B: Builder>(b: &mut B, i: &Instruction) -> Result<Outcome, B::Trap> {
    let f = rflags(b)?;
    let v = match i.mnemonic() {
        Mnemonic::Clc => {
            let m = b.imm(!bit::CF);
            b.and(f, m)
        }
        Mnemonic::Stc => {
            let m = b.imm(bit::CF);
            b.or(f, m)
        }
        Mnemonic::Cmc => {
            let m = b.imm(bit::CF);
            b.xor(f, m)
        }
        Mnemonic::Cld => {
            let m = b.imm(!bit::DF);
            b.and(f, m)
        }
        Mnemonic::Std => {
            let m = b.imm(bit::DF);
            b.or(f, m)
        }
        _ => return Ok(Err(Untranslated)),
    };
    set_rflags(b, v);
    Ok(Ok(Flow::Next))
}
