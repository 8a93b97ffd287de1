//! System instructions, executed by the engine outside generated code (Intel SDM Vol. 2 for
//! each instruction, Vol. 3A chapters 2-6 for the state they touch): port I/O, CPUID, RDTSC,
//! descriptor-table loads and stores, control and debug registers, MSRs, CLI/STI, IRET,
//! INT n/INT3/INTO, SYSCALL/SYSRET/SWAPGS, far transfers, segment-register loads, and the
//! x87/SSE state instructions (FXSAVE, FNSTENV, LDMXCSR, ...).
//!
//! Each instruction runs on the whole context with the machine's [`SystemBus`] and linear
//! memory. On success RIP is past the instruction (or at the transfer target); on a fault RIP
//! and every register are left as they were and the [`Fault`] is returned for the engine to
//! deliver with [`crate::interrupt::deliver`]. One family per submodule.
//!
//! Known warts: no segment-limit or canonical checks on ordinary data operands (the page walk
//! behind [`LinearMemory`] is the only check); no task switches (task gates, far jumps to a TSS,
//! IRET with NT); no call gates; no virtual-8086 mode; INS/OUTS are not implemented (#UD).

mod access_rights;
mod control_regs;
mod cpuid_tsc;
pub mod descriptor;
mod descriptor_tables;
mod far_transfer;
mod fast_syscall;
mod fpu_state;
mod interrupt_flag;
mod iret;
mod msr_access;
pub(crate) mod operand;
mod port_io;
mod segment_load;
mod software_int;

use iced_x86::{Code, Instruction, Mnemonic, OpKind};

use crate::context::X86Context;
use crate::exception::Fault;
use crate::memory::{LinearMemory, SystemBus};

pub use fpu_state::MXCSR_MASK;
pub use msr_access::{read_msr, write_msr};

/// True for the mnemonics [`execute`] implements on its own (every form of the mnemonic is a
/// system instruction). MOV to/from control, debug and segment registers, POP/PUSH of segment
/// registers and far JMP/CALL share their mnemonic with ordinary instructions: see
/// [`handles_instruction`].
pub fn handles(m: Mnemonic) -> bool {
    use Mnemonic as M;
    crate::fpu::state_instruction(m)
        || matches!(
            m,
            M::In
                | M::Out
                | M::Cpuid
                | M::Rdtsc
                | M::Rdtscp
                | M::Rdpid
                | M::Lgdt
                | M::Lidt
                | M::Sgdt
                | M::Sidt
                | M::Lldt
                | M::Ltr
                | M::Sldt
                | M::Str
                | M::Clts
                | M::Lmsw
                | M::Smsw
                | M::Invlpg
                | M::Wbinvd
                | M::Invd
                | M::Rdmsr
                | M::Wrmsr
                | M::Cli
                | M::Sti
                | M::Iret
                | M::Iretd
                | M::Iretq
                | M::Int
                | M::Int3
                | M::Into
                | M::Syscall
                | M::Sysret
                | M::Sysretq
                | M::Swapgs
                | M::Retf
                | M::Lss
                | M::Lds
                | M::Les
                | M::Lfs
                | M::Lgs
                | M::Lar
                | M::Lsl
                | M::Verr
                | M::Verw
                | M::Xgetbv
                | M::Xsetbv
        )
}

/// True if [`execute`] implements this instruction: every mnemonic of [`handles`], plus MOV
/// to/from CRn/DRn/segment registers, PUSH/POP of segment registers and far JMP/CALL. The
/// translator must ask this before dispatching MOV, PUSH, POP, JMP and CALL to the ordinary
/// semantics.
pub fn handles_instruction(i: &Instruction) -> bool {
    if handles(i.mnemonic()) {
        return true;
    }
    match i.mnemonic() {
        Mnemonic::Mov => (0..2).any(|n| {
            i.op_kind(n) == OpKind::Register && {
                let r = i.op_register(n);
                r.is_cr() || r.is_dr() || r.is_segment_register()
            }
        }),
        Mnemonic::Push | Mnemonic::Pop => {
            i.op_kind(0) == OpKind::Register && i.op_register(0).is_segment_register()
        }
        Mnemonic::Jmp | Mnemonic::Call => is_far_branch(i),
        _ => false,
    }
}

/// A far JMP or CALL (pointer immediate or memory pointer).
fn is_far_branch(i: &Instruction) -> bool {
    matches!(
        i.code(),
        Code::Jmp_ptr1616
            | Code::Jmp_ptr1632
            | Code::Jmp_m1616
            | Code::Jmp_m1632
            | Code::Jmp_m1664
            | Code::Call_ptr1616
            | Code::Call_ptr1632
            | Code::Call_m1616
            | Code::Call_m1632
            | Code::Call_m1664
    )
}

/// What happened after a system instruction, i.e. what the engine must do before going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemOutcome {
    /// Continue at the (updated) RIP; nothing translation-relevant changed.
    Continue,
    /// The mode, privilege, IF, segments or RIP changed: end the block and look up the next
    /// one from the new state (CPL, CS, mode flags are part of the block key).
    EndBlock,
    /// Paging changed (CR0.PG/WP, CR3, CR4 paging bits, EFER.NXE): flush the whole softmmu TLB
    /// (and translations keyed by it), then as [`SystemOutcome::EndBlock`].
    FlushTlb,
    /// MOV to CR3: flush the translations of non-global pages (global ones, CR4.PGE, stay, as
    /// on hardware), then as [`SystemOutcome::EndBlock`].
    FlushNonGlobal,
    /// INVLPG of this linear address: flush at least that page's TLB entries, then end the
    /// block.
    InvalidatePage(u64),
    /// The CPU halts until an interrupt (RIP past the instruction).
    Halt,
}

/// Executes system instruction `i` (RIP is its own address on entry; updated on success, left
/// alone on a fault).
pub fn execute(
    ctx: &mut X86Context,
    i: &Instruction,
    mem: &mut dyn LinearMemory,
    bus: &mut dyn SystemBus,
) -> Result<SystemOutcome, Fault> {
    use Mnemonic as M;
    let outcome = match i.mnemonic() {
        M::In | M::Out => port_io::execute(ctx, i, mem, bus)?,
        M::Cpuid | M::Rdtsc | M::Rdtscp | M::Rdpid => cpuid_tsc::execute(ctx, i, bus)?,
        M::Lgdt | M::Lidt | M::Sgdt | M::Sidt | M::Lldt | M::Ltr | M::Sldt | M::Str => {
            descriptor_tables::execute(ctx, i, mem)?
        }
        M::Clts | M::Lmsw | M::Smsw | M::Invlpg | M::Wbinvd | M::Invd | M::Xgetbv | M::Xsetbv => {
            control_regs::execute_misc(ctx, i, mem, bus)?
        }
        M::Rdmsr | M::Wrmsr => msr_access::execute(ctx, i, bus)?,
        M::Cli | M::Sti => interrupt_flag::execute(ctx, i)?,
        M::Iret | M::Iretd | M::Iretq => iret::execute(ctx, i, mem)?,
        M::Int | M::Int3 | M::Into => software_int::execute(ctx, i, mem)?,
        M::Syscall | M::Sysret | M::Sysretq | M::Swapgs => fast_syscall::execute(ctx, i)?,
        M::Lar | M::Lsl | M::Verr | M::Verw => access_rights::execute(ctx, i, mem)?,
        M::Mov
            if (0..2).any(|n| {
                i.op_kind(n) == OpKind::Register
                    && (i.op_register(n).is_cr() || i.op_register(n).is_dr())
            }) =>
        {
            control_regs::execute_mov(ctx, i)?
        }
        M::Mov | M::Push | M::Pop | M::Lss | M::Lds | M::Les | M::Lfs | M::Lgs => {
            segment_load::execute(ctx, i, mem)?
        }
        M::Jmp | M::Call | M::Retf => far_transfer::execute(ctx, i, mem)?,
        m if crate::fpu::state_instruction(m) => fpu_state::execute(ctx, i, mem)?,
        _ => return Err(Fault::ud_for(i)),
    };
    Ok(outcome)
}

impl Fault {
    /// #UD for an instruction with no implementation.
    pub fn ud_for(_i: &Instruction) -> Self {
        Fault::ud()
    }
}
