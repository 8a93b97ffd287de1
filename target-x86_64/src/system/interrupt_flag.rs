//! CLI and STI (Intel SDM Vol. 2 "CLI"/"STI"; Vol. 3A 6.8.1 masking maskable interrupts, and
//! the one-instruction interrupt shadow after STI).
//!
//! Warts: CR4.VME/PVI virtual interrupt flags are not modelled: outside real mode CLI/STI need
//! CPL <= IOPL, else #GP(0).

use iced_x86::{Instruction, Mnemonic};

use super::operand::protected;
use super::port_io::iopl;
use super::SystemOutcome;
use crate::context::X86Context;
use crate::cpu_state::bits;
use crate::exception::Fault;

/// CLI clears RFLAGS.IF; STI sets it and, if it was clear, blocks interrupts for one more
/// instruction (`events.interrupt_shadow = 1`; the engine clears it after that instruction).
pub(super) fn execute(ctx: &mut X86Context, i: &Instruction) -> Result<SystemOutcome, Fault> {
    if protected(ctx) && ctx.cpu.cpl() > iopl(ctx) {
        return Err(Fault::gp(0));
    }
    // IF is not one of the lazily computed arithmetic flags, so no flag sync is needed.
    if i.mnemonic() == Mnemonic::Cli {
        ctx.cpu.rflags &= !bits::RFLAGS_IF;
    } else {
        if ctx.cpu.rflags & bits::RFLAGS_IF == 0 {
            ctx.cpu.events.interrupt_shadow = 1;
        }
        ctx.cpu.rflags |= bits::RFLAGS_IF;
    }
    ctx.cpu.rip = i.next_ip();
    Ok(SystemOutcome::EndBlock)
}
