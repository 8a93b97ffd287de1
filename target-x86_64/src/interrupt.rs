//! Exception and interrupt delivery (Intel SDM Vol. 3A chapter 6: 6.4-6.5 sources and
//! classes, 6.10-6.12 the IDT and protected-mode delivery, 6.14 64-bit mode delivery, 6.15
//! "Interrupt 8 — Double Fault" with Table 6-5, and 20.1.4 real-address-mode interrupts).
//!
//! [`deliver`] runs the IDT lookup, gate and code-segment checks, the stack switch and the
//! frame pushes for one [`Event`]. Nothing in the register state changes until the whole frame
//! is written, so a fault during delivery sees the state of the event's start; that fault is
//! then delivered in its place, or escalates to #DF by the SDM's table, and a fault while
//! delivering #DF is a triple fault ([`DeliveryError::TripleFault`]: the engine shuts the
//! machine down as KVM_EXIT_SHUTDOWN does).
//!
//! Known warts: no task gates or task switches (32-bit Linux's #DF task gate is reported as
//! [`DeliveryError::Unsupported`]); no virtual-8086 mode; no RF in the pushed image of faults;
//! no stack-segment limit checks on the pushes (the page walk is the only check).

mod long_mode;
mod protected;

pub use long_mode::null_ss;

use thiserror::Error;

use crate::context::X86Context;
use crate::cpu_state::bits;
use crate::exception::{vector, Fault};
use crate::memory::LinearMemory;

/// Where an event comes from; it decides the return address, the gate-DPL check, the EXT bit
/// of error codes and the error code pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An exception raised by an instruction or access: RIP is the faulting instruction's
    /// (the engine sets it so), `error_code` is pushed when present, `cr2` goes to CR2.
    Exception {
        /// Error code, for vectors that push one.
        error_code: Option<u32>,
        /// #PF linear address.
        cr2: Option<u64>,
    },
    /// An external (maskable) interrupt, taken between instructions at RIP.
    External,
    /// INT n, INT3 or INTO: the gate's DPL must allow the CPL, and the return address is the
    /// next instruction.
    Software {
        /// The address after the INT instruction.
        next_rip: u64,
    },
    /// A non-maskable interrupt; further NMIs are masked until IRET.
    Nmi,
}

/// One event to deliver through the IDT (or the real-mode IVT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Vector (IDT index).
    pub vector: u8,
    /// Its source.
    pub kind: EventKind,
}

impl From<Fault> for Event {
    fn from(f: Fault) -> Self {
        Self {
            vector: f.vector,
            kind: EventKind::Exception {
                error_code: f.error_code,
                cr2: f.cr2,
            },
        }
    }
}

/// Delivery could not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DeliveryError {
    /// A fault while delivering #DF: the CPU shuts down (the engine resets or stops the
    /// machine).
    #[error("triple fault (delivering vector {vector})")]
    TripleFault {
        /// The vector whose delivery failed last (8, or an earlier one with no #DF path).
        vector: u8,
    },
    /// The guest needs something this model does not implement.
    #[error("unsupported in interrupt delivery: {0}")]
    Unsupported(&'static str),
}

/// Why one delivery attempt stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A guest fault during delivery (to deliver next, or to escalate).
    Fault(Fault),
    /// Something unmodelled.
    Unsupported(&'static str),
}

impl From<Fault> for Step {
    fn from(f: Fault) -> Self {
        Step::Fault(f)
    }
}

/// True if a maskable interrupt may be taken now: RFLAGS.IF set and no STI/MOV SS shadow.
/// The engine clears `events.interrupt_shadow` after the instruction following STI retires.
pub fn interrupts_allowed(ctx: &X86Context) -> bool {
    ctx.cpu.rflags & bits::RFLAGS_IF != 0 && ctx.cpu.events.interrupt_shadow == 0
}

/// True if an NMI may be taken now: not inside an NMI handler and no interrupt shadow.
pub fn nmi_allowed(ctx: &X86Context) -> bool {
    !ctx.cpu.events.nmi_masked && ctx.cpu.events.interrupt_shadow == 0
}

/// Delivers `event`: on success the CPU is at the handler with the frame pushed; faults during
/// delivery are delivered in turn (with #DF and triple-fault escalation).
pub fn deliver(
    ctx: &mut X86Context,
    mem: &mut dyn LinearMemory,
    event: Event,
) -> Result<(), DeliveryError> {
    let mut event = event;
    // Each failed attempt either replaces a benign event by a fault, or moves towards #DF and
    // then triple fault, so a handful of rounds always ends; the bound guards the reasoning.
    for _ in 0..8 {
        if let EventKind::Exception { cr2: Some(a), .. } = event.kind {
            // CR2 is written when the #PF is recognised, even if its delivery then fails.
            ctx.cpu.cr2 = a;
        }
        match deliver_once(ctx, mem, &event) {
            Ok(()) => return Ok(()),
            Err(Step::Unsupported(what)) => return Err(DeliveryError::Unsupported(what)),
            Err(Step::Fault(f)) => event = escalate(&event, f)?,
        }
    }
    Err(DeliveryError::TripleFault {
        vector: event.vector,
    })
}

/// Delivers `event` once, with no escalation: the fault is returned as is. INT n uses this,
/// since a fault of INT n is the instruction's own fault (delivered normally, never #DF).
pub(crate) fn deliver_once(
    ctx: &mut X86Context,
    mem: &mut dyn LinearMemory,
    event: &Event,
) -> Result<(), Step> {
    ctx.sync_flags();
    if ctx.cpu.cr0 & bits::CR0_PE == 0 {
        protected::real_mode(ctx, mem, event)?;
    } else if ctx.cpu.efer & bits::EFER_LMA != 0 {
        long_mode::deliver(ctx, mem, event)?;
    } else if ctx.cpu.rflags & (1 << 17) != 0 {
        return Err(Step::Unsupported("virtual-8086 mode"));
    } else {
        protected::deliver(ctx, mem, event)?;
    }
    let ev = &mut ctx.cpu.events;
    ev.interrupt_shadow = 0;
    if event.kind == EventKind::Nmi {
        ev.nmi_masked = true;
    }
    ctx.cpu.halted = false;
    Ok(())
}

fn is_contributory(v: u8) -> bool {
    matches!(
        v,
        vector::DE | vector::TS | vector::NP | vector::SS | vector::GP
    )
}

/// What to deliver after `fault` hit while delivering `first` (SDM Table 6-5).
fn escalate(first: &Event, fault: Fault) -> Result<Event, DeliveryError> {
    if let EventKind::Exception { .. } = first.kind {
        if first.vector == vector::DF {
            return Err(DeliveryError::TripleFault {
                vector: first.vector,
            });
        }
        let second = fault.vector;
        let double = (is_contributory(first.vector) && is_contributory(second))
            || (first.vector == vector::PF && (second == vector::PF || is_contributory(second)));
        if double {
            return Ok(Fault::with_code(vector::DF, 0).into());
        }
    }
    Ok(fault.into())
}

/// The EXT bit (bit 0 of a selector error code): set for events from outside the program.
pub(crate) fn ext_bit(event: &Event) -> u32 {
    match event.kind {
        EventKind::Software { .. } => 0,
        _ => 1,
    }
}

/// `f` with the EXT bit added to its selector error code (#PF codes are not selector codes).
pub(crate) fn with_ext(f: Fault, ext: u32) -> Fault {
    match f.error_code {
        Some(code) if f.vector != vector::PF => Fault {
            error_code: Some(code | ext),
            ..f
        },
        _ => f,
    }
}

/// The error code for a failed IDT access of `vector`: the IDT bit (1) and EXT.
pub(crate) fn idt_code(vector: u8, ext: u32) -> u32 {
    (u32::from(vector) << 3) | 2 | ext
}

/// The return address pushed for `event`.
pub(crate) fn return_rip(ctx: &X86Context, event: &Event) -> u64 {
    match event.kind {
        EventKind::Software { next_rip } => next_rip,
        _ => ctx.cpu.rip,
    }
}

/// The error code pushed for `event`, if any.
pub(crate) fn pushed_error_code(event: &Event) -> Option<u32> {
    match event.kind {
        EventKind::Exception { error_code, .. } => error_code,
        _ => None,
    }
}

/// RFLAGS bits every delivery clears: TF, NT, RF, VM.
pub(crate) const CLEARED_FLAGS: u64 = (1 << 8) | (1 << 14) | (1 << 16) | (1 << 17);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_fault_table() {
        let gp = Fault::gp(0);
        let pf = Fault::page_fault(0x1000, 2);
        let first_pf: Event = pf.into();
        let first_gp: Event = gp.into();
        let ud: Event = Fault::ud().into();
        assert_eq!(escalate(&first_pf, pf).unwrap().vector, vector::DF);
        assert_eq!(escalate(&first_pf, gp).unwrap().vector, vector::DF);
        assert_eq!(escalate(&first_gp, gp).unwrap().vector, vector::DF);
        // Contributory then #PF is handled serially: the #PF is delivered.
        assert_eq!(escalate(&first_gp, pf).unwrap().vector, vector::PF);
        // Benign first: the second is delivered.
        assert_eq!(escalate(&ud, gp).unwrap().vector, vector::GP);
        let df: Event = Fault::with_code(vector::DF, 0).into();
        assert_eq!(
            escalate(&df, gp),
            Err(DeliveryError::TripleFault { vector: 8 })
        );
    }
}
