//! CPUID, RDTSC, RDTSCP and RDPID (Intel SDM Vol. 2 for each; CR4.TSD per Vol. 3A 2.5).
//!
//! The CPUID answer comes from the machine's table through [`SystemBus::cpuid`]; the time from
//! [`SystemBus::tsc`]. Warts: WRMSR to IA32_TSC is stored in `CpuState::tsc` but the bus's
//! clock is what RDTSC reads (the engine applies any offset).

use iced_x86::{Instruction, Mnemonic, OpKind};

use super::operand::write_gpr;
use super::SystemOutcome;
use crate::context::X86Context;
use crate::cpu_state::reg;
use crate::exception::Fault;
use crate::memory::SystemBus;

/// CR4.TSD: RDTSC(P) is privileged.
const CR4_TSD: u64 = 1 << 2;

fn set32(ctx: &mut X86Context, r: usize, v: u32) {
    // 32-bit results zero-extend into the 64-bit registers, as a 32-bit register write does.
    ctx.cpu.gpr[r] = u64::from(v);
}

/// CPUID, RDTSC, RDTSCP, RDPID.
pub(super) fn execute(
    ctx: &mut X86Context,
    i: &Instruction,
    bus: &mut dyn SystemBus,
) -> Result<SystemOutcome, Fault> {
    match i.mnemonic() {
        Mnemonic::Cpuid => {
            let leaf = ctx.cpu.gpr[reg::RAX] as u32;
            let sub = ctx.cpu.gpr[reg::RCX] as u32;
            let [a, b, c, d] = bus.cpuid(leaf, sub);
            set32(ctx, reg::RAX, a);
            set32(ctx, reg::RBX, b);
            set32(ctx, reg::RCX, c);
            set32(ctx, reg::RDX, d);
        }
        Mnemonic::Rdtsc | Mnemonic::Rdtscp => {
            if ctx.cpu.cr4 & CR4_TSD != 0 && ctx.cpu.cpl() != 0 {
                return Err(Fault::gp(0));
            }
            let t = bus.tsc();
            set32(ctx, reg::RAX, t as u32);
            set32(ctx, reg::RDX, (t >> 32) as u32);
            if i.mnemonic() == Mnemonic::Rdtscp {
                set32(ctx, reg::RCX, ctx.cpu.tsc_aux as u32);
            }
        }
        Mnemonic::Rdpid => {
            if i.op_kind(0) != OpKind::Register {
                return Err(Fault::ud());
            }
            // RDPID r64 writes the zero-extended 32-bit TSC_AUX.
            write_gpr(ctx, i.op_register(0), ctx.cpu.tsc_aux & 0xffff_ffff)?;
        }
        _ => return Err(Fault::ud()),
    }
    ctx.cpu.rip = i.next_ip();
    Ok(SystemOutcome::Continue)
}
