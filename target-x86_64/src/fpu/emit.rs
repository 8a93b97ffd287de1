//! The translator's side of a host-executed instruction: the CR0/CR4 checks, the memory
//! operand staged in and out of the context, and the call of [`super::run::HOST_EXEC`].
//!
//! Order follows the SDM's exception priorities: #UD/#NM before the memory operand is touched,
//! then #GP for a misaligned m128, then page faults of the read; the write happens after the
//! instruction ran. An x87 store (FSTP, FISTP, ...) changes the register stack before its write,
//! so its destination is first read and written back unchanged: a fault then comes before any
//! register changed and the instruction restarts cleanly. SSE/MMX stores change no register
//! state the restart would repeat differently.

use iced_x86::{Instruction, InstructionInfoFactory, Register};
use tandem_tcg::{Builder, Cond, Width};

use super::plan::{plan, Family, MemOperand};
use super::run::{FLAGS, HOST_EXEC, WHOLE_IMAGE, WRITES_FLAGS, X87};
use super::stub_cache::stub_for;
use crate::context::{CR0, CR4, FP_SCRATCH};
use crate::cpu_state::bits;
use crate::exception::vector;
use crate::semantics::operand::{effective_address, linear, read_reg, require_aligned};
use crate::semantics::translate::{Dc, Flow, Untranslated};

/// Raises `v` when `state[offset] & mask` is non-zero (or zero, with `when_clear`).
fn raise_if<B: Builder>(
    b: &mut B,
    offset: usize,
    mask: u64,
    when_clear: bool,
    v: u8,
) -> Result<(), B::Trap> {
    let reg = b.load_state(offset, Width::W64);
    let m = b.imm(mask);
    let bitv = b.and(reg, m);
    let zero = b.imm(0);
    let cond = if when_clear { Cond::Eq } else { Cond::Ne };
    let c = b.icmp(cond, bitv, zero);
    b.if_then(c, |b| Err(b.raise(v, None)))
}

/// The device-not-available and invalid-opcode checks of `family` (SDM Vol. 3A Table 2-2).
pub fn checks<B: Builder>(b: &mut B, family: Family) -> Result<(), B::Trap> {
    match family {
        Family::X87 => raise_if(b, CR0, bits::CR0_EM | bits::CR0_TS, false, vector::NM),
        Family::Mmx => {
            raise_if(b, CR0, bits::CR0_EM, false, vector::UD)?;
            raise_if(b, CR0, bits::CR0_TS, false, vector::NM)
        }
        Family::Sse => {
            raise_if(b, CR0, bits::CR0_EM, false, vector::UD)?;
            raise_if(b, CR4, bits::CR4_OSFXSR, true, vector::UD)?;
            raise_if(b, CR0, bits::CR0_TS, false, vector::NM)
        }
        Family::Integer => Ok(()),
    }
}

/// The pieces a `size`-byte operand moves in: (offset, width).
fn chunks(size: usize) -> &'static [(u64, Width)] {
    match size {
        1 => &[(0, Width::W8)],
        2 => &[(0, Width::W16)],
        4 => &[(0, Width::W32)],
        8 => &[(0, Width::W64)],
        10 => &[(0, Width::W64), (8, Width::W16)],
        _ => &[(0, Width::W64), (8, Width::W64)],
    }
}

/// Guest memory at `addr` into the staging area.
pub fn stage_in<B: Builder>(b: &mut B, addr: B::Value, size: usize) -> Result<(), B::Trap> {
    for &(off, w) in chunks(size) {
        let o = b.imm(off);
        let a = b.add(addr, o);
        let v = b.load(a, w)?;
        b.store_state(FP_SCRATCH + off as usize, w, v);
    }
    Ok(())
}

/// The staging area out to guest memory at `addr`.
pub fn stage_out<B: Builder>(b: &mut B, addr: B::Value, size: usize) -> Result<(), B::Trap> {
    for &(off, w) in chunks(size) {
        let o = b.imm(off);
        let a = b.add(addr, o);
        let v = b.load_state(FP_SCRATCH + off as usize, w);
        b.store(a, w, v)?;
    }
    Ok(())
}

/// The linear address of the implicit `[rDI]` of MASKMOVQ/MASKMOVDQU (DS or its override).
fn implicit_rdi<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Option<B::Value> {
    let mut factory = InstructionInfoFactory::new();
    let m = *factory.info(i).used_memory().first()?;
    let base = m.base();
    let off = read_reg(b, base)?;
    let seg = if m.segment() == Register::None {
        Register::DS
    } else {
        m.segment()
    };
    Some(linear(b, dc, seg, off))
}

/// Emits (or runs) host-executed instruction `i`.
pub fn translate<B: Builder>(
    b: &mut B,
    dc: &Dc,
    i: &Instruction,
) -> Result<Result<Flow, Untranslated>, B::Trap> {
    let Some(plan) = plan(i) else {
        return Ok(Err(Untranslated));
    };
    let Some(stub) = stub_for(i, &plan) else {
        return Ok(Err(Untranslated));
    };
    checks(b, plan.family)?;
    let x87 = plan.family == Family::X87;
    let mut mem: Option<(MemOperand, B::Value)> = None;
    if let Some(m) = plan.mem {
        let addr = if m.implicit_rdi {
            match implicit_rdi(b, dc, i) {
                Some(a) => a,
                None => return Ok(Err(Untranslated)),
            }
        } else {
            effective_address(b, dc, i)
        };
        if m.aligned {
            require_aligned(b, addr, 16)?;
        }
        if m.read || (m.write && plan.whole_image) {
            stage_in(b, addr, m.size)?;
        }
        if m.write && !m.read && plan.whole_image {
            stage_out(b, addr, m.size)?;
        }
        mem = Some((m, addr));
    }
    let mut info = 0;
    if plan.whole_image {
        info |= WHOLE_IMAGE;
    }
    if x87 {
        info |= X87;
    }
    if plan.reads_flags || plan.writes_flags {
        info |= FLAGS;
    }
    if plan.writes_flags {
        info |= WRITES_FLAGS;
    }
    let args = [
        b.imm(stub as u64),
        b.imm(info),
        b.imm(i.ip()),
        match mem {
            Some((_, a)) => a,
            None => b.imm(0),
        },
    ];
    b.call(&HOST_EXEC, &args)?;
    if let Some((m, addr)) = mem {
        if m.write {
            stage_out(b, addr, m.size)?;
        }
    }
    if plan.writes_flags {
        *b.flags_memo() = None;
    }
    Ok(Ok(Flow::Next))
}
