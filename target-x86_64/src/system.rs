//! System instructions, executed by the engine outside generated code: port I/O, CPUID,
//! RDTSC, descriptor-table loads and stores, control and debug registers, MSRs, CLI/STI,
//! IRET, INT n/INT3/INTO, SWAPGS, ... Each runs on the whole context with the machine's
//! [`SystemBus`](crate::memory::SystemBus) and linear memory, and returns the fault to deliver.
//!
//! (Being written.)

use iced_x86::{Instruction, Mnemonic};

use crate::context::X86Context;
use crate::exception::Fault;
use crate::memory::{LinearMemory, SystemBus};

/// True for the mnemonics [`execute`] implements.
pub fn handles(m: Mnemonic) -> bool {
    let _ = m;
    false
}

/// What happened after a system instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemOutcome {
    /// Continue at the (updated) RIP.
    Continue,
    /// The CPU halts until an interrupt (RIP past the HLT).
    Halt,
}

/// Executes system instruction `i` (RIP is its own address on entry; updated on success).
pub fn execute(
    ctx: &mut X86Context,
    i: &Instruction,
    mem: &mut dyn LinearMemory,
    bus: &mut dyn SystemBus,
) -> Result<SystemOutcome, Fault> {
    let _ = (ctx, mem, bus);
    Err(Fault::ud_for(i))
}

impl Fault {
    /// #UD for an instruction with no implementation.
    pub fn ud_for(_i: &Instruction) -> Self {
        Fault::ud()
    }
}
