//! Host code for one guest x87/MMX/SSE instruction: the guest's own instruction, its memory
//! operand pointed at the context's staging area, wrapped in loads and stores of the guest
//! registers it uses.
//!
//! The stub is called as `extern "C" fn(ctx: *mut X86Context)`. It
//! 1. saves the host's MXCSR (and any callee-saved register the instruction needs);
//! 2. loads the guest's state: the whole FXSAVE image (`fxrstor64`) when x87 or MMX registers
//!    are involved, else MXCSR and just the XMM registers named; then the general registers
//!    the instruction uses (RSP, which the host cannot lend, is renamed to a spare register),
//!    and the guest's arithmetic flags when it reads or writes flags;
//! 3. runs the instruction, whose memory operand is now `[base + FP_SCRATCH]`;
//! 4. stores back what it wrote (flags, general registers, XMM registers or the whole image)
//!    and restores the host (`fninit` leaves the x87 stack empty, as the ABI wants).
//!
//! Nothing in a stub can fault: its only memory is the context, exceptions are masked by the
//! caller ([`super::run`]), and only instructions of the features CPUID offers get here.

use iced_x86::{Code, Encoder, IcedError, Instruction, MemoryOperand, OpKind, Register};

use super::plan::{gprs_used, Plan};
use crate::context::{gpr_offset, FP_FLAGS, FP_SCRATCH, FX};

/// Why no stub could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StubError {
    /// The instruction uses every spare register (cannot happen for x87/MMX/SSE).
    NoSpareRegister,
    /// iced could not encode it.
    Encode(String),
}

impl From<IcedError> for StubError {
    fn from(e: IcedError) -> Self {
        StubError::Encode(e.to_string())
    }
}

/// Registers the stub may take as its context pointer or as RSP's stand-in, best first.
const SPARE: [Register; 8] = [
    Register::R11,
    Register::R10,
    Register::R9,
    Register::R8,
    Register::R12,
    Register::R13,
    Register::R14,
    Register::R15,
];

/// Registers the host's callers expect preserved (System V).
fn callee_saved(r: Register) -> bool {
    matches!(
        r,
        Register::RBX
            | Register::RBP
            | Register::R12
            | Register::R13
            | Register::R14
            | Register::R15
    )
}

/// `full` (r8..r15) at `size` bytes.
fn sized(full: Register, size: usize) -> Register {
    let n = full.number() as u32;
    match size {
        8 => full,
        4 => Register::EAX + n,
        2 => Register::AX + n,
        _ => Register::R8L + (n - 8),
    }
}

fn mem(base: Register, off: usize) -> MemoryOperand {
    MemoryOperand::with_base_displ(base, off as i64)
}

/// The guest instruction with its memory operand moved to the staging area and RSP renamed.
fn rewrite(i: &Instruction, base: Register, rsp_stand_in: Option<Register>) -> Instruction {
    let mut g = *i;
    if (0..g.op_count()).any(|n| g.op_kind(n) == OpKind::Memory) {
        g.set_memory_base(base);
        g.set_memory_index(Register::None);
        g.set_memory_index_scale(1);
        g.set_memory_displacement64(FP_SCRATCH as u64);
        g.set_memory_displ_size(8);
        g.set_segment_prefix(Register::None);
    }
    if let Some(r) = rsp_stand_in {
        for n in 0..g.op_count() {
            if g.op_kind(n) == OpKind::Register {
                let reg = g.op_register(n);
                if reg.is_gpr() && reg.full_register() == Register::RSP {
                    g.set_op_register(n, sized(r, reg.size()));
                }
            }
        }
    }
    g
}

/// Machine code of the stub for `i` under `plan`.
pub fn build(i: &Instruction, plan: &Plan) -> Result<Vec<u8>, StubError> {
    // The registers the instruction itself names, before the memory operand gets a base.
    let mut bare = *i;
    if (0..bare.op_count()).any(|n| bare.op_kind(n) == OpKind::Memory) {
        bare.set_memory_base(Register::None);
        bare.set_memory_index(Register::None);
    }
    let gprs = gprs_used(&bare);
    let taken = |r: Register| gprs.iter().any(|(g, _)| *g == r);
    let mut spare = SPARE.iter().copied().filter(|r| !taken(*r));
    let base = spare.next().ok_or(StubError::NoSpareRegister)?;
    let rsp_stand_in = if taken(Register::RSP) {
        Some(spare.next().ok_or(StubError::NoSpareRegister)?)
    } else {
        None
    };
    let host = |g: Register| {
        if g == Register::RSP {
            rsp_stand_in.unwrap_or(g)
        } else {
            g
        }
    };
    let guest = rewrite(i, base, rsp_stand_in);

    let mut saved: Vec<Register> = gprs.iter().map(|(g, _)| host(*g)).collect();
    saved.push(base);
    saved.retain(|r| callee_saved(*r));
    saved.dedup();

    let mut code: Vec<Instruction> = Vec::new();
    for r in &saved {
        code.push(Instruction::with1(Code::Push_r64, *r)?);
    }
    code.push(Instruction::with2(Code::Mov_r64_rm64, base, Register::RDI)?);
    code.push(Instruction::with2(Code::Sub_rm64_imm8, Register::RSP, 8)?);
    code.push(Instruction::with1(
        Code::Stmxcsr_m32,
        mem(Register::RSP, 0),
    )?);
    if plan.whole_image {
        code.push(Instruction::with1(Code::Fxrstor64_m512byte, mem(base, FX))?);
    } else {
        code.push(Instruction::with1(Code::Ldmxcsr_m32, mem(base, FX + 24))?);
        for n in 0..16 {
            if plan.xmm_used & (1 << n) != 0 {
                code.push(Instruction::with2(
                    Code::Movaps_xmm_xmmm128,
                    Register::XMM0 + n,
                    mem(base, FX + 160 + 16 * n as usize),
                )?);
            }
        }
    }
    for (g, _) in &gprs {
        let off = gpr_offset(g.number());
        code.push(Instruction::with2(
            Code::Mov_r64_rm64,
            host(*g),
            mem(base, off),
        )?);
    }
    if plan.mem.is_some_and(|m| m.implicit_rdi) {
        code.push(Instruction::with2(
            Code::Lea_r64_m,
            Register::RDI,
            mem(base, FP_SCRATCH),
        )?);
    }
    if plan.reads_flags || plan.writes_flags {
        code.push(Instruction::with1(Code::Push_rm64, mem(base, FP_FLAGS))?);
        code.push(Instruction::with(Code::Popfq));
    }
    code.push(guest);
    if plan.writes_flags {
        code.push(Instruction::with(Code::Pushfq));
        code.push(Instruction::with1(Code::Pop_rm64, mem(base, FP_FLAGS))?);
    }
    let implicit_rdi = plan.mem.is_some_and(|m| m.implicit_rdi);
    for (g, written) in &gprs {
        if *written && !(implicit_rdi && *g == Register::RDI) {
            let off = gpr_offset(g.number());
            code.push(Instruction::with2(
                Code::Mov_rm64_r64,
                mem(base, off),
                host(*g),
            )?);
        }
    }
    if plan.whole_image {
        code.push(Instruction::with1(Code::Fxsave64_m512byte, mem(base, FX))?);
        code.push(Instruction::with(Code::Fninit));
    } else {
        for n in 0..16 {
            if plan.xmm_written & (1 << n) != 0 {
                code.push(Instruction::with2(
                    Code::Movaps_xmmm128_xmm,
                    mem(base, FX + 160 + 16 * n as usize),
                    Register::XMM0 + n,
                )?);
            }
        }
        code.push(Instruction::with1(Code::Stmxcsr_m32, mem(base, FX + 24))?);
    }
    code.push(Instruction::with1(
        Code::Ldmxcsr_m32,
        mem(Register::RSP, 0),
    )?);
    code.push(Instruction::with2(Code::Add_rm64_imm8, Register::RSP, 8)?);
    for r in saved.iter().rev() {
        code.push(Instruction::with1(Code::Pop_r64, *r)?);
    }
    code.push(Instruction::with(Code::Retnq));

    let mut enc = Encoder::new(64);
    for ins in &code {
        enc.encode(ins, 0)?;
    }
    Ok(enc.take_buffer())
}
