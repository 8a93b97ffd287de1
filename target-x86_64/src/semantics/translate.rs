//! From one decoded instruction to its semantics: the dispatch on instruction family.
//!
//! [`translate`] runs (interpreter) or emits (compiler) one instruction. It leaves RIP alone
//! for [`Flow::Next`]: the block executor advances it, so RIP is the instruction's own address
//! whenever something inside it faults (precise exceptions). An instruction with no semantics
//! yet is [`Untranslated`]: the engine raises #UD in the guest and counts it (`-d unimp`).

use iced_x86::{Instruction, Mnemonic};
use tandem_tcg::Builder;

use super::{arith, atomic, bits, control, data_move, misc, muldiv, shift, shift_double, string};

/// Per-block (and per-instruction) translation facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dc {
    /// Code size: 16, 32 or 64.
    pub bitness: u32,
    /// Arithmetic flags (RFLAGS bit positions) whose value after this instruction nothing
    /// observes: a later instruction of the block overwrites them before any instruction
    /// reads them or can fault (see [`crate::flags_liveness`]). Instructions that must merge
    /// flags they write into the old RFLAGS (ROL/ROR's CF and OF, BT's CF) skip that costly
    /// merge for dead flags. 0 when unknown.
    pub dead_flags: u64,
}

impl Dc {
    /// Facts for code of `bitness` with no liveness information.
    pub const fn new(bitness: u32) -> Self {
        Self {
            bitness,
            dead_flags: 0,
        }
    }
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
        // First: MOV to/from control, debug and segment registers, PUSH/POP of segment
        // registers and far transfers share mnemonics with ordinary instructions.
        _ if crate::system::handles_instruction(i) => Ok(Ok(Flow::System)),
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
        M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror | M::Rcl | M::Rcr => {
            shift::shift(b, dc, i)
        }
        M::Shld | M::Shrd => shift_double::double_shift(b, dc, i),
        M::Mul | M::Imul => muldiv::multiply(b, dc, i),
        M::Div | M::Idiv => muldiv::divide(b, dc, i),
        M::Bt | M::Bts | M::Btr | M::Btc => bits::bit_test(b, dc, i),
        M::Bsf | M::Bsr | M::Lzcnt | M::Tzcnt | M::Popcnt => bits::scan(b, dc, i),
        M::Bswap | M::Movbe => bits::byte_order(b, dc, i),
        M::Xadd => atomic::xadd(b, dc, i),
        M::Cmpxchg => atomic::cmpxchg(b, dc, i),
        M::Cmpxchg8b | M::Cmpxchg16b => atomic::cmpxchg_wide(b, dc, i),
        // MOVSD and CMPSD are also SSE mnemonics: only the string forms are handled here.
        M::Movsb
        | M::Movsw
        | M::Movsd
        | M::Movsq
        | M::Stosb
        | M::Stosw
        | M::Stosd
        | M::Stosq
        | M::Lodsb
        | M::Lodsw
        | M::Lodsd
        | M::Lodsq
        | M::Cmpsb
        | M::Cmpsw
        | M::Cmpsd
        | M::Cmpsq
        | M::Scasb
        | M::Scasw
        | M::Scasd
        | M::Scasq
            if string::is_string(i) =>
        {
            string::string(b, dc, i)
        }
        M::Lahf | M::Sahf | M::Pushf | M::Pushfd | M::Pushfq | M::Popf | M::Popfd | M::Popfq => {
            misc::flags_transfer(b, dc, i)
        }
        M::Enter | M::Leave => misc::frame(b, dc, i),
        M::Loop | M::Loope | M::Loopne | M::Jcxz | M::Jecxz | M::Jrcxz => {
            misc::counted_branch(b, dc, i)
        }
        M::Xlatb | M::Ud2 | M::Pause => misc::odd(b, dc, i),
        m if crate::system::handles(m) => Ok(Ok(Flow::System)),
        _ if i.is_jcc_short_or_near() => control::branch(b, dc, i),
        m if data_move::is_cmovcc(m) || data_move::is_setcc(m) => data_move::conditional(b, dc, i),
        _ if crate::fpu::handles(i) => crate::fpu::translate(b, dc, i),
        _ => Ok(Err(Untranslated)),
    }
}
