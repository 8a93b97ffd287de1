//! Operands: general registers (with the 8/16/32-bit write rules), immediates, and memory
//! operands (effective address, segment base, address size).

use iced_x86::{Instruction, OpKind, Register};
use tandem_tcg::{Builder, Cond, Width};

use super::translate::Dc;
use crate::context::{gpr_offset, seg_base_offset};
use crate::cpu_state::sreg;

/// Where a general register lives: (context offset, width).
pub fn gpr_location(reg: Register) -> Option<(usize, Width)> {
    if !reg.is_gpr() {
        return None;
    }
    let width = Width::from_bytes(reg.size())?;
    let index = reg.full_register() as usize - Register::RAX as usize;
    // AH, CH, DH, BH are the second byte of RAX..RBX.
    let high = matches!(
        reg,
        Register::AH | Register::CH | Register::DH | Register::BH
    );
    Some((gpr_offset(index) + usize::from(high), width))
}

/// Reads a general register, zero-extended.
pub fn read_reg<B: Builder>(b: &mut B, reg: Register) -> Option<B::Value> {
    let (off, w) = gpr_location(reg)?;
    Some(b.load_state(off, w))
}

/// Writes a general register: 32-bit writes zero the upper half, 8/16-bit writes merge.
pub fn write_reg<B: Builder>(b: &mut B, reg: Register, v: B::Value) -> Option<()> {
    let (off, w) = gpr_location(reg)?;
    if w == Width::W32 {
        let z = b.zext(v, Width::W32);
        b.store_state(off, Width::W64, z);
    } else {
        b.store_state(off, w, v);
    }
    Some(())
}

/// Adds the base of segment `seg` to `offset` as the current mode does: in 64-bit mode only FS
/// and GS have bases; elsewhere every segment's base applies and linear addresses are 32-bit.
pub fn linear<B: Builder>(b: &mut B, dc: &Dc, seg: Register, offset: B::Value) -> B::Value {
    let Some(i) = crate::system::operand::sreg_index(seg) else {
        return offset;
    };
    if dc.bitness == 64 && i != sreg::FS && i != sreg::GS {
        return offset;
    }
    let base = b.load_state(seg_base_offset(i), Width::W64);
    let sum = b.add(offset, base);
    if dc.bitness == 64 {
        sum
    } else {
        b.zext(sum, Width::W32)
    }
}

/// The linear address of instruction `i`'s memory operand.
pub fn effective_address<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> B::Value {
    let offset = operand_offset(b, dc, i);
    linear(b, dc, i.memory_segment(), offset)
}

/// The offset (before the segment base) of `i`'s memory operand, at its address size: what
/// LEA computes.
pub fn operand_offset<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> B::Value {
    if i.is_ip_rel_memory_operand() {
        return b.imm(i.ip_rel_memory_address());
    }
    let base = i.memory_base();
    let index = i.memory_index();
    let addr_bytes = if base != Register::None {
        base.size()
    } else if index != Register::None {
        index.size()
    } else {
        (dc.bitness / 8) as usize
    };
    let mut addr = b.imm(i.memory_displacement64());
    if let Some(v) = read_reg(b, base) {
        addr = b.add(addr, v);
    }
    if let Some(v) = read_reg(b, index) {
        let scale = b.imm(u64::from(i.memory_index_scale().trailing_zeros()));
        let scaled = b.shl(v, scale);
        addr = b.add(addr, scaled);
    }
    if let Some(w) = Width::from_bytes(addr_bytes).filter(|w| *w != Width::W64) {
        addr = b.zext(addr, w);
    }
    addr
}

/// Raises #GP(0) unless `addr` is a multiple of `align` (a power of two): the 16-byte
/// operands of CMPXCHG16B and legacy SSE.
pub fn require_aligned<B: Builder>(b: &mut B, addr: B::Value, align: u64) -> Result<(), B::Trap> {
    let m = b.imm(align - 1);
    let low = b.and(addr, m);
    let zero = b.imm(0);
    let bad = b.icmp(Cond::Ne, low, zero);
    b.if_then(bad, |b| {
        let code = b.imm(0);
        Err(b.raise(crate::exception::vector::GP, Some(code)))
    })
}

/// Width of operand `n`.
pub fn op_width(i: &Instruction, n: u32) -> Width {
    let bytes = match i.op_kind(n) {
        OpKind::Register => i.op_register(n).size(),
        OpKind::Memory => i.memory_size().size(),
        OpKind::Immediate8 => 1,
        OpKind::Immediate16 | OpKind::Immediate8to16 => 2,
        OpKind::Immediate32 | OpKind::Immediate8to32 => 4,
        _ => 8,
    };
    Width::from_bytes(bytes).unwrap_or(Width::W64)
}

/// Reads operand `n` (register, immediate or memory), zero-extended to 64 bits.
pub fn read_op<B: Builder>(
    b: &mut B,
    dc: &Dc,
    i: &Instruction,
    n: u32,
) -> Result<Option<B::Value>, B::Trap> {
    Ok(match i.op_kind(n) {
        OpKind::Register => read_reg(b, i.op_register(n)),
        OpKind::Memory => {
            let addr = effective_address(b, dc, i);
            Some(b.load(addr, op_width(i, n))?)
        }
        OpKind::Immediate8
        | OpKind::Immediate16
        | OpKind::Immediate32
        | OpKind::Immediate64
        | OpKind::Immediate8to16
        | OpKind::Immediate8to32
        | OpKind::Immediate8to64
        | OpKind::Immediate32to64 => {
            let w = op_width(i, n);
            Some(b.imm(w.zext(i.immediate(n))))
        }
        _ => None,
    })
}

/// Writes operand `n` (register or memory).
pub fn write_op<B: Builder>(
    b: &mut B,
    dc: &Dc,
    i: &Instruction,
    n: u32,
    v: B::Value,
) -> Result<Option<()>, B::Trap> {
    Ok(match i.op_kind(n) {
        OpKind::Register => write_reg(b, i.op_register(n), v),
        OpKind::Memory => {
            let addr = effective_address(b, dc, i);
            b.store(addr, op_width(i, n), v)?;
            Some(())
        }
        _ => None,
    })
}
