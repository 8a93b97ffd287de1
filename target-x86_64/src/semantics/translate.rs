//! From one decoded instruction to its semantics: the dispatch on instruction family.
//!
//! [`translate`] runs (interpreter) or emits (compiler) one instruction. It leaves RIP alone
//! for [`Flow::Next`]: the block executor advances it, so RIP is the instruction's own address
//! whenever something inside it faults (precise exceptions). An instruction with no semantics
//! yet is [`Untranslated`]: the engine raises #UD in the guest and counts it (`-d unimp`).

use iced_x86::{Instruction, Mnemonic};
use tandem_tcg::Builder;

use super::{arith, control, data_move};

/// Per-block translation facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dc {
    /// Code size: 16, 32 or 64.
    pub bitness: u32,
}

/// What comes after the instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// The next instruction in sequence.
    Next,
    /// RIP was written: the block ends.
    Jump,
    /// HLT: the vCPU waits for an interrupt; RIP already points past the HLT.
    Halt,
    /// A system instruction the engine executes itself with [`crate::system::execute`]
    /// (port I/O, CPUID, descriptor tables, control registers, MSRs, IRET, INT n, ...): it
    /// ends the block, and RIP is still the instruction's own.
    System,
}

/// The instruction has no semantics (yet): #UD for the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Untranslated;

/// Runs or emits instruction `i`.
pub fn translate<B: Builder>(
    b: &mut B,
    dc: &Dc,
    i: &Instruction,
) -> Result<Result<Flow, Untranslated>, B::Trap> {
    use Mnemonic as M;
    match i.mnemonic() {
        M::Add | M::Adc | M::Sub | M::Sbb | M::Cmp | M::And | M::Or | M::Xor | M::Test => {
            arith::binary(b, dc, i)
        }
        M::Inc | M::Dec | M::Neg | M::Not => arith::unary(b, dc, i),
        M::Mov | M::Movzx | M::Movsx | M::Movsxd | M::Lea | M::Xchg => data_move::moves(b, dc, i),
        M::Push | M::Pop => data_move::stack(b, dc, i),
        M::Cbw | M::Cwde | M::Cdqe | M::Cwd | M::Cdq | M::Cqo => {
            Ok(data_move::sign_extend_acc(b, i))
        }
        M::Nop => Ok(Ok(Flow::Next)),
        M::Jmp | M::Call | M::Ret => control::branch(b, dc, i),
        M::Clc | M::Stc | M::Cmc | M::Cld | M::Std => control::flag_control(b, i),
        M::Hlt => {
            let next = b.imm(i.next_ip());
            b.store_state(crate::context::RIP, tandem_tcg::Width::W64, next);
            Ok(Ok(Flow::Halt))
        }
        m if crate::system::handles(m) => Ok(Ok(Flow::System)),
        _ if i.is_jcc_short_or_near() => control::branch(b, dc, i),
        m if data_move::is_cmovcc(m) || data_move::is_setcc(m) => data_move::conditional(b, dc, i),
        _ => Ok(Err(Untranslated)),
    }
}
