//! Exchange-and-operate instructions: XADD, CMPXCHG, CMPXCHG8B, CMPXCHG16B (SDM Vol. 2A,
//! "CMPXCHG", "CMPXCHG8B/CMPXCHG16B", Vol. 2B "XADD").
//!
//! A vCPU runs one instruction at a time, so the LOCK prefix needs nothing more here; a
//! multi-vCPU engine must make these accesses atomic against other vCPUs (the compiled tier's
//! job; the interpreter's memory is one vCPU's). Memory is written before any register so a
//! faulting store leaves the registers as they were.
//!
//! CMPXCHG compares the accumulator with the destination (flags as `CMP acc, dest`). Equal:
//! the destination gets the source. Not equal: the accumulator gets the destination; a memory
//! destination is written back with its own value (the SDM's unconditional write cycle), a
//! register destination is not touched at all (not even zero-extended, as QEMU and hardware),
//! and the accumulator is written only on failure (so RAX's upper half survives a successful
//! 32-bit CMPXCHG). CMPXCHG8B/16B do the same with EDX:EAX / RDX:RAX against m64/m128 and
//! ECX:EBX / RCX:RBX as the new value, and change only ZF. CMPXCHG16B on an address that is
//! not 16-byte aligned raises #GP(0) before any access.

use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use tandem_tcg::{Builder, Cond, Width};

use super::bits::accumulator;
use super::flag_ops::set_cc;
use super::operand::{
    effective_address, op_width, read_op, read_reg, require_aligned, write_op, write_reg,
};
use super::partial::{to_flag, update_flags, write_reg_if};
use super::translate::{Dc, Flow, Untranslated};
use crate::flags::{bit, CcKind};

type Outcome = Result<Flow, Untranslated>;

/// XADD: dest = dest + src, src = old dest; flags as ADD.
pub fn xadd<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Outcome, B::Trap> {
    let w = op_width(i, 0);
    let (Some(d), Some(s)) = (read_op(b, dc, i, 0)?, read_op(b, dc, i, 1)?) else {
        return Ok(Err(Untranslated));
    };
    let sum = b.add(d, s);
    let sum = b.zext(sum, w);
    let src_reg = i.op_register(1);
    if i.op_kind(0) == OpKind::Memory {
        let _ = write_op(b, dc, i, 0, sum)?;
        write_reg(b, src_reg, d);
    } else {
        // SRC := DEST then DEST := TEMP: with the same register twice, the sum wins.
        write_reg(b, src_reg, d);
        let _ = write_op(b, dc, i, 0, sum)?;
    }
    set_cc(b, CcKind::Add, w, sum, d, s);
    Ok(Ok(Flow::Next))
}

/// CMPXCHG r/m, r.
pub fn cmpxchg<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Outcome, B::Trap> {
    let w = op_width(i, 0);
    let acc = accumulator(w);
    let (Some(a), Some(d), Some(s)) = (
        read_reg(b, acc),
        read_op(b, dc, i, 0)?,
        read_op(b, dc, i, 1)?,
    ) else {
        return Ok(Err(Untranslated));
    };
    let eq = b.icmp(Cond::Eq, a, d);
    let ne = b.icmp(Cond::Ne, a, d);
    match i.op_kind(0) {
        OpKind::Memory => {
            let v = b.select(eq, s, d);
            let _ = write_op(b, dc, i, 0, v)?;
        }
        OpKind::Register => {
            write_reg_if(b, i.op_register(0), eq, s);
        }
        _ => return Ok(Err(Untranslated)),
    }
    write_reg_if(b, acc, ne, d);
    let diff = b.sub(a, d);
    let diff = b.zext(diff, w);
    set_cc(b, CcKind::Sub, w, diff, a, d);
    Ok(Ok(Flow::Next))
}

/// CMPXCHG8B m64 and CMPXCHG16B m128.
pub fn cmpxchg_wide<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Outcome, B::Trap> {
    if i.op_kind(0) != OpKind::Memory {
        return Ok(Err(Untranslated));
    }
    let wide = i.mnemonic() == Mnemonic::Cmpxchg16b;
    let (half, regs) = if wide {
        (
            Width::W64,
            [Register::RAX, Register::RDX, Register::RBX, Register::RCX],
        )
    } else {
        (
            Width::W32,
            [Register::EAX, Register::EDX, Register::EBX, Register::ECX],
        )
    };
    let addr = effective_address(b, dc, i);
    if wide {
        require_aligned(b, addr, 16)?;
    }
    let step = b.imm(half.bytes() as u64);
    let addr_hi = b.add(addr, step);
    let lo = b.load(addr, half)?;
    let hi = b.load(addr_hi, half)?;
    let [Some(a), Some(d), Some(nb), Some(nc)] = regs.map(|r| read_reg(b, r)) else {
        return Ok(Err(Untranslated));
    };
    let eq_lo = b.icmp(Cond::Eq, lo, a);
    let eq_hi = b.icmp(Cond::Eq, hi, d);
    let eq = b.and(eq_lo, eq_hi);
    // The write cycle happens either way; on failure it stores the old value back.
    let new_lo = b.select(eq, nb, lo);
    let new_hi = b.select(eq, nc, hi);
    b.store(addr, half, new_lo)?;
    b.store(addr_hi, half, new_hi)?;
    let one = b.imm(1);
    let ne = b.xor(eq, one);
    write_reg_if(b, regs[0], ne, lo);
    write_reg_if(b, regs[1], ne, hi);
    let zf = to_flag(b, eq, bit::ZF);
    update_flags(b, bit::ZF, zf)?;
    Ok(Ok(Flow::Next))
}
