//! Concrete operand access for system instructions: general registers, effective addresses and
//! the stack, computed on the context directly (the same rules as `semantics::operand`, which
//! is written over the builder and so cannot be called here). Intel SDM Vol. 1 3.7 (operand
//! addressing) and Vol. 3A 3.4 (segment bases; only FS and GS in 64-bit mode).
//!
//! Warts: segment limits and the stack-segment expand-down rules are not checked; the page
//! walk behind [`LinearMemory`] is the only check on an address.

use iced_x86::{Instruction, OpKind, Register};

use crate::context::X86Context;
use crate::cpu_state::{bits, sreg, CpuMode};
use crate::exception::Fault;
use crate::memory::LinearMemory;

/// Code size of the current mode: 16, 32 or 64.
pub fn bitness(ctx: &X86Context) -> u32 {
    match ctx.cpu.mode() {
        CpuMode::Long64 => 64,
        CpuMode::Protected32 | CpuMode::Compat32 => 32,
        CpuMode::Real | CpuMode::Protected16 | CpuMode::Compat16 => 16,
    }
}

/// True in IA-32e mode (64-bit or compatibility code).
pub fn long_mode(ctx: &X86Context) -> bool {
    ctx.cpu.efer & bits::EFER_LMA != 0 && ctx.cpu.cr0 & bits::CR0_PE != 0
}

/// True in protected mode (any mode but real; there is no virtual-8086 support).
pub fn protected(ctx: &X86Context) -> bool {
    ctx.cpu.cr0 & bits::CR0_PE != 0
}

/// Segment-register index (encoding order) of an iced segment register.
pub fn sreg_index(r: Register) -> Option<usize> {
    Some(match r {
        Register::ES => sreg::ES,
        Register::CS => sreg::CS,
        Register::SS => sreg::SS,
        Register::DS => sreg::DS,
        Register::FS => sreg::FS,
        Register::GS => sreg::GS,
        _ => return None,
    })
}

fn gpr_slot(reg: Register) -> Option<(usize, usize, u32)> {
    if !reg.is_gpr() {
        return None;
    }
    let index = reg.full_register() as usize - Register::RAX as usize;
    // AH, CH, DH, BH are bits 15:8 of RAX..RBX.
    let shift = if matches!(
        reg,
        Register::AH | Register::CH | Register::DH | Register::BH
    ) {
        8
    } else {
        0
    };
    Some((index, reg.size(), shift))
}

fn mask(bytes: usize) -> u64 {
    match bytes {
        1 => 0xff,
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    }
}

/// Reads a general register, zero-extended; #UD for anything else.
pub fn read_gpr(ctx: &X86Context, reg: Register) -> Result<u64, Fault> {
    let (index, size, shift) = gpr_slot(reg).ok_or(Fault::ud())?;
    Ok((ctx.cpu.gpr[index] >> shift) & mask(size))
}

/// Writes a general register with the x86 rules: 32-bit writes zero bits 63:32, 8/16-bit writes
/// merge.
pub fn write_gpr(ctx: &mut X86Context, reg: Register, v: u64) -> Result<(), Fault> {
    let (index, size, shift) = gpr_slot(reg).ok_or(Fault::ud())?;
    let slot = &mut ctx.cpu.gpr[index];
    *slot = if size == 4 {
        v & 0xffff_ffff
    } else {
        let m = mask(size) << shift;
        (*slot & !m) | ((v << shift) & m)
    };
    Ok(())
}

/// Truncates a linear address to the current mode: 32 bits outside IA-32e mode.
pub fn linear_for_mode(ctx: &X86Context, addr: u64) -> u64 {
    if bitness(ctx) == 64 {
        addr
    } else {
        addr & 0xffff_ffff
    }
}

/// The linear address of `i`'s memory operand: base + index * scale + displacement at the
/// address size, plus the segment base (only FS/GS in 64-bit mode).
pub fn ea(ctx: &X86Context, i: &Instruction) -> u64 {
    let bits = bitness(ctx);
    let offset = if i.is_ip_rel_memory_operand() {
        i.ip_rel_memory_address()
    } else {
        let base = i.memory_base();
        let index = i.memory_index();
        let addr_bytes = if base != Register::None {
            base.size()
        } else if index != Register::None {
            index.size()
        } else {
            (bits / 8) as usize
        };
        let mut addr = i.memory_displacement64();
        if let Ok(v) = read_gpr(ctx, base) {
            addr = addr.wrapping_add(v);
        }
        if let Ok(v) = read_gpr(ctx, index) {
            addr = addr.wrapping_add(v.wrapping_mul(u64::from(i.memory_index_scale())));
        }
        addr & mask(addr_bytes)
    };
    let seg = sreg_index(i.memory_segment());
    match seg {
        Some(s) if bits != 64 || s == sreg::FS || s == sreg::GS => {
            linear_for_mode(ctx, offset.wrapping_add(ctx.cpu.seg[s].base))
        }
        _ => offset,
    }
}

/// Reads `bytes` (1, 2, 4 or 8) of guest data at `addr` with the current privilege.
pub fn read_data(mem: &mut dyn LinearMemory, addr: u64, bytes: usize) -> Result<u64, Fault> {
    let mut b = [0u8; 8];
    let n = bytes.min(8);
    mem.read_linear(addr, &mut b[..n], false)?;
    Ok(u64::from_le_bytes(b))
}

/// Writes the low `bytes` of `v` at `addr` with the current privilege.
pub fn write_data(
    mem: &mut dyn LinearMemory,
    addr: u64,
    bytes: usize,
    v: u64,
) -> Result<(), Fault> {
    mem.write_linear(addr, &v.to_le_bytes()[..bytes.min(8)], false)
}

/// Reads operand `n` as a register or memory operand of `bytes`.
pub fn read_rm(
    ctx: &X86Context,
    mem: &mut dyn LinearMemory,
    i: &Instruction,
    n: u32,
    bytes: usize,
) -> Result<u64, Fault> {
    match i.op_kind(n) {
        OpKind::Register => read_gpr(ctx, i.op_register(n)),
        OpKind::Memory => read_data(mem, ea(ctx, i), bytes),
        _ => Err(Fault::ud()),
    }
}

/// Writes operand `n`: a register gets the whole value (zero-extended by the register's
/// size rules), memory gets `mem_bytes`.
pub fn write_rm(
    ctx: &mut X86Context,
    mem: &mut dyn LinearMemory,
    i: &Instruction,
    n: u32,
    mem_bytes: usize,
    v: u64,
) -> Result<(), Fault> {
    match i.op_kind(n) {
        OpKind::Register => write_gpr(ctx, i.op_register(n), v),
        OpKind::Memory => write_data(mem, ea(ctx, i), mem_bytes, v),
        _ => Err(Fault::ud()),
    }
}

/// A stack pointer being moved by a multi-part push or pop: nothing reaches the context until
/// [`Stack::commit`], so a fault half-way leaves RSP as it was.
#[derive(Debug, Clone, Copy)]
pub struct Stack {
    /// The stack pointer (only the bits under `mask` move).
    pub sp: u64,
    /// SS base (0 in 64-bit mode).
    pub base: u64,
    /// 0xffff, 0xffff_ffff or u64::MAX by the stack size.
    pub mask: u64,
    /// Accesses are implicit supervisor accesses (interrupt delivery).
    pub supervisor: bool,
    long: bool,
}

impl Stack {
    /// The current stack (SS:RSP) of `ctx`.
    pub fn current(ctx: &X86Context) -> Self {
        let long = bitness(ctx) == 64;
        let ss = &ctx.cpu.seg[sreg::SS];
        let mask = if long {
            u64::MAX
        } else if ss.db {
            0xffff_ffff
        } else {
            0xffff
        };
        Self {
            sp: ctx.cpu.gpr[crate::cpu_state::reg::RSP],
            base: if long { 0 } else { ss.base },
            mask,
            supervisor: false,
            long,
        }
    }

    /// A stack at an explicit place (a stack switch): `long` for IA-32e 64-bit stacks.
    pub fn at(sp: u64, base: u64, mask: u64, long: bool) -> Self {
        Self {
            sp,
            base,
            mask,
            supervisor: true,
            long,
        }
    }

    fn addr(&self) -> u64 {
        let a = self.base.wrapping_add(self.sp & self.mask);
        if self.long {
            a
        } else {
            a & 0xffff_ffff
        }
    }

    fn with_sp(&self, sp: u64) -> u64 {
        (self.sp & !self.mask) | (sp & self.mask)
    }

    /// Pushes the low `bytes` of `v`.
    pub fn push(&mut self, mem: &mut dyn LinearMemory, bytes: usize, v: u64) -> Result<(), Fault> {
        self.sp = self.with_sp(self.sp.wrapping_sub(bytes as u64));
        let b = v.to_le_bytes();
        mem.write_linear(self.addr(), &b[..bytes.min(8)], self.supervisor)
    }

    /// Pops `bytes`, zero-extended.
    pub fn pop(&mut self, mem: &mut dyn LinearMemory, bytes: usize) -> Result<u64, Fault> {
        let v = if self.supervisor {
            let mut b = [0u8; 8];
            mem.read_linear(self.addr(), &mut b[..bytes.min(8)], true)?;
            u64::from_le_bytes(b)
        } else {
            read_data(mem, self.addr(), bytes)?
        };
        self.sp = self.with_sp(self.sp.wrapping_add(bytes as u64));
        Ok(v)
    }

    /// Releases `bytes` without reading them (RET imm16).
    pub fn release(&mut self, bytes: u64) {
        self.sp = self.with_sp(self.sp.wrapping_add(bytes));
    }

    /// Writes the moved stack pointer back into RSP.
    pub fn commit(&self, ctx: &mut X86Context) {
        ctx.cpu.gpr[crate::cpu_state::reg::RSP] = self.sp;
    }
}

/// True if `v` is a canonical 48-bit linear address.
pub fn canonical(v: u64) -> bool {
    let top = (v as i64) >> 47;
    top == 0 || top == -1
}
