//! The faults the floating-point classes raise on purpose, found in the laid-out code, and
//! why KVM cannot be asked about them on this machine.
//!
//! The generator makes an instruction raise #GP(0) now and then: a 16-byte operand that the
//! instruction needs aligned is not ([`needs_alignment`]); FXSAVE/FXRSTOR at an address that is
//! not 16-byte aligned; LDMXCSR of a value, or FXRSTOR of an image, with a reserved MXCSR bit
//! set (a `mov` just before stores it: that is how the builders write it).
//!
//! On PVM hosts the host intercepts #GP at CPL3 and hands the instruction to KVM's instruction
//! emulator, measured here: MOVAPS gets a correct #GP, but ADDPD, PSIGND or LDMXCSR (which the
//! emulator does not know) end in #UD, and a misaligned FXRSTOR is *performed* from the
//! misaligned address. So for a sequence with a deliberate #GP the KVM engine runs the code up
//! to the faulting instruction and the result is that state with the #GP(0) at it
//! ([`Runner`](super::Runner)): what the SDM says the CPU saves for a fault, everything before
//! it computed by the CPU.

use iced_x86::{Code, Instruction, Mnemonic, Register};

use super::fp::forms::needs_alignment;

/// MXCSR bits reserved on Intel and AMD alike (bit 17 is AMD's misaligned-SSE mode, MM).
pub const MXCSR_RESERVED: u32 = 0xfffc_0000 | 1 << 16;

/// The address `insn`'s memory operand refers to, with `base` giving the base register's
/// value (None for a register it does not know).
fn address(insn: &Instruction, base: &impl Fn(Register) -> Option<u64>) -> Option<u64> {
    Some(base(insn.memory_base())?.wrapping_add(insn.memory_displacement64()))
}

/// Whether `insn` raises #GP(0): `prev` is the instruction before it, `base` gives the (constant)
/// base register values.
pub fn raises_gp(
    insn: &Instruction,
    prev: Option<&Instruction>,
    base: &impl Fn(Register) -> Option<u64>,
) -> bool {
    if !(0..insn.op_count()).any(|i| insn.op_kind(i) == iced_x86::OpKind::Memory) {
        return false;
    }
    let Some(at) = address(insn, base) else {
        return false;
    };
    let m = insn.mnemonic();
    let fx = matches!(
        m,
        Mnemonic::Fxsave | Mnemonic::Fxsave64 | Mnemonic::Fxrstor | Mnemonic::Fxrstor64
    );
    let sixteen = insn.memory_size().size() == 16 && needs_alignment(m);
    if (fx || sixteen) && at % 16 != 0 {
        return true;
    }
    // The reserved-MXCSR pattern: `mov dword [x], imm` then LDMXCSR [x] or FXRSTOR [x - 24].
    let mxcsr_at = match m {
        Mnemonic::Ldmxcsr => at,
        Mnemonic::Fxrstor | Mnemonic::Fxrstor64 => at + 24,
        _ => return false,
    };
    prev.is_some_and(|p| {
        p.code() == Code::Mov_rm32_imm32
            && address(p, base) == Some(mxcsr_at)
            && p.immediate32() & MXCSR_RESERVED != 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::code_asm::*;

    fn insns(
        f: impl FnOnce(&mut CodeAssembler) -> Result<(), iced_x86::IcedError>,
    ) -> Vec<Instruction> {
        let mut a = CodeAssembler::new(64).unwrap();
        f(&mut a).unwrap();
        a.take_instructions()
    }

    #[test]
    fn deliberate_faults_are_recognised() {
        let base = |r: Register| (r == Register::RBX).then_some(0x50_0008);
        let gp = |v: &[Instruction]| {
            raises_gp(
                &v[v.len() - 1],
                v.len().checked_sub(2).map(|i| &v[i]),
                &base,
            )
        };
        assert!(gp(&insns(|a| a.addpd(xmm1, ptr(rbx)))));
        assert!(!gp(&insns(|a| a.addpd(xmm1, ptr(rbx) + 8))));
        assert!(!gp(&insns(|a| a.movups(xmm1, ptr(rbx)))));
        assert!(!gp(&insns(|a| a.addsd(xmm1, ptr(rbx)))));
        assert!(gp(&insns(|a| a.fxrstor(ptr(rbx)))));
        assert!(!gp(&insns(|a| a.addpd(xmm1, xmm2))));
        let ld = insns(|a| {
            a.mov(dword_ptr(rbx) + 8, 0x1f80 | 1 << 20)?;
            a.ldmxcsr(ptr(rbx) + 8)
        });
        assert!(gp(&ld));
        let ok = insns(|a| {
            a.mov(dword_ptr(rbx) + 8, 0x1f80)?;
            a.ldmxcsr(ptr(rbx) + 8)
        });
        assert!(!gp(&ok));
        let rstor = insns(|a| {
            a.mov(dword_ptr(rbx) + 32, 0x1f80 | 1 << 31)?;
            a.fxrstor64(ptr(rbx) + 8)
        });
        assert!(gp(&rstor));
    }
}
