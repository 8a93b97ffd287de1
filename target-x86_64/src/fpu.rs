//! x87, MMX and SSE through SSE4.2, run on the host CPU itself.
//!
//! The host is an x86_64 CPU with every feature the guest CPU model offers (the CPUID filter
//! takes the intersection), so the exact result of a guest floating-point or vector
//! instruction — NaN payloads, MXCSR rounding, DAZ/FTZ, the x87's 80-bit arithmetic and its
//! transcendental approximations — is what the host computes for the same instruction. Each
//! distinct instruction form gets a small host stub ([`stub`]) that loads the guest registers
//! it names from the context, executes the guest's own instruction with its memory operand
//! redirected to a staging area, and stores the results back; the translator stages the memory
//! operand around the call ([`emit`]) and a helper applies the guest's exception masks
//! ([`run`]). Both tiers use the same path, so the interpreter and compiled code agree by
//! construction, and the differential suite checks them against KVM (native hardware).
//!
//! This replaces DESIGN.md's plan of lowering SSE to Cranelift float/vector operations: that
//! would have to reproduce x86's NaN rules, MXCSR modes and exception flags in IR (bit-exact
//! only in the common case), and still call helpers for the rest; executing the instruction
//! is exact for all of it, at the cost of a call per instruction. The state save/restore and
//! control instructions (FXSAVE, FNSTENV, LDMXCSR, FNSTSW, ...) are ordinary Rust in
//! [`crate::system`]; fences and prefetches are in [`hints`].

pub mod emit;
pub mod hints;
pub mod plan;
pub mod run;
pub mod stub;
pub mod stub_cache;

use iced_x86::{Instruction, Mnemonic};
use tandem_tcg::Builder;

use crate::semantics::translate::{Dc, Flow, Untranslated};

/// x87/SSE state and control instructions, executed by [`crate::system`].
pub fn state_instruction(m: Mnemonic) -> bool {
    use Mnemonic as M;
    matches!(
        m,
        M::Fxsave
            | M::Fxsave64
            | M::Fxrstor
            | M::Fxrstor64
            | M::Fnsave
            | M::Fsave
            | M::Frstor
            | M::Fnstenv
            | M::Fstenv
            | M::Fldenv
            | M::Fnstcw
            | M::Fstcw
            | M::Fldcw
            | M::Fnstsw
            | M::Fstsw
            | M::Fninit
            | M::Finit
            | M::Fnclex
            | M::Fclex
            | M::Wait
            | M::Ldmxcsr
            | M::Stmxcsr
    )
}

/// True if [`translate`] takes `i` (state instructions excepted: they are system ones).
pub fn handles(i: &Instruction) -> bool {
    hints::handles(i.mnemonic()) || plan::is_host_executed(i)
}

/// Runs or emits x87/MMX/SSE instruction `i`.
pub fn translate<B: Builder>(
    b: &mut B,
    dc: &Dc,
    i: &Instruction,
) -> Result<Result<Flow, Untranslated>, B::Trap> {
    if hints::handles(i.mnemonic()) {
        hints::translate(b, dc, i)
    } else {
        emit::translate(b, dc, i)
    }
}
