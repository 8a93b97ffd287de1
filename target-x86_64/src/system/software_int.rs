//! INT n, INT3 and INTO (Intel SDM Vol. 2 "INT n/INTO/INT3/INT1"; Vol. 3A 6.4.2 software-
//! generated exceptions, 6.12.1.1 the gate-DPL check that only software interrupts get).
//!
//! The interrupt is delivered right here through [`crate::interrupt`], with the next
//! instruction as return address. A fault during that delivery is the INT instruction's own
//! fault: it is returned (RIP still at the INT) and delivered by the engine like any other,
//! never escalated to #DF.
//!
//! Warts: a task gate reached by INT n is reported to the guest as #GP(vector * 8 + 2) (task
//! switches are not modelled); INT1 (ICEBP) is not implemented.

use iced_x86::{Instruction, Mnemonic};

use super::operand::bitness;
use super::SystemOutcome;
use crate::context::X86Context;
use crate::exception::{vector, Fault};
use crate::flags::bit;
use crate::interrupt::{deliver_once, Event, EventKind, Step};
use crate::memory::LinearMemory;

/// INT n, INT3, INTO.
pub(super) fn execute(
    ctx: &mut X86Context,
    i: &Instruction,
    mem: &mut dyn LinearMemory,
) -> Result<SystemOutcome, Fault> {
    let v = match i.mnemonic() {
        Mnemonic::Int => i.immediate8(),
        Mnemonic::Int3 => vector::BP,
        Mnemonic::Into => {
            if bitness(ctx) == 64 {
                return Err(Fault::ud());
            }
            ctx.sync_flags();
            if ctx.cpu.rflags & bit::OF == 0 {
                ctx.cpu.rip = i.next_ip();
                return Ok(SystemOutcome::Continue);
            }
            vector::OF
        }
        _ => return Err(Fault::ud()),
    };
    let event = Event {
        vector: v,
        kind: EventKind::Software {
            next_rip: i.next_ip(),
        },
    };
    match deliver_once(ctx, mem, &event) {
        Ok(()) => Ok(SystemOutcome::EndBlock),
        Err(Step::Fault(f)) => Err(f),
        Err(Step::Unsupported(_)) => Err(Fault::gp((u32::from(v) << 3) | 2)),
    }
}
