//! `sse_move`: SSE data movement — aligned and unaligned full moves in both directions,
//! scalar moves (register forms merge, memory loads zero the rest), MOVD/MOVQ with GPRs and
//! memory, the half moves (MOVHLPS MOVLHPS MOVHPS MOVLPS ...), the SSE3 duplicates and LDDQU,
//! shuffles and unpacks, INSERTPS/EXTRACTPS, the non-temporal stores and MOVNTDQA,
//! MASKMOVDQU at [RDI], and LDMXCSR/STMXCSR (LDMXCSR of a value a `mov` stored just before:
//! a valid one that changes the rounding mode and DAZ/FTZ, or now and then one with a
//! reserved bit set, which is a #GP).

use iced_x86::code_asm::CodeAssembler;
use iced_x86::Code::{self, *};

use super::forms::{control_word, emit_weighted};
use super::state::mxcsr;
use crate::difftest::builders::Built;
use crate::difftest::faults::MXCSR_RESERVED;
use crate::difftest::operands::Draw;

/// Full-register moves, loads and stores.
const FULL: &[Code] = &[
    Movaps_xmm_xmmm128,
    Movaps_xmmm128_xmm,
    Movapd_xmm_xmmm128,
    Movapd_xmmm128_xmm,
    Movups_xmm_xmmm128,
    Movups_xmmm128_xmm,
    Movupd_xmm_xmmm128,
    Movupd_xmmm128_xmm,
    Movdqa_xmm_xmmm128,
    Movdqa_xmmm128_xmm,
    Movdqu_xmm_xmmm128,
    Movdqu_xmmm128_xmm,
    Lddqu_xmm_m128,
    Movntps_m128_xmm,
    Movntpd_m128_xmm,
    Movntdq_m128_xmm,
    Movntdqa_xmm_m128,
    Maskmovdqu_rDI_xmm_xmm,
];

/// Scalar and partial moves, with GPRs too.
const PARTIAL: &[Code] = &[
    Movss_xmm_xmmm32,
    Movss_xmmm32_xmm,
    Movsd_xmm_xmmm64,
    Movsd_xmmm64_xmm,
    Movq_xmm_xmmm64,
    Movq_xmmm64_xmm,
    Movd_xmm_rm32,
    Movq_xmm_rm64,
    Movd_rm32_xmm,
    Movq_rm64_xmm,
    Movhlps_xmm_xmm,
    Movlhps_xmm_xmm,
    Movlps_xmm_m64,
    Movlps_m64_xmm,
    Movhps_xmm_m64,
    Movhps_m64_xmm,
    Movlpd_xmm_m64,
    Movlpd_m64_xmm,
    Movhpd_xmm_m64,
    Movhpd_m64_xmm,
    Movnti_m32_r32,
    Movnti_m64_r64,
    Insertps_xmm_xmmm32_imm8,
    Extractps_rm32_xmm_imm8,
    Extractps_r64m32_xmm_imm8,
];

/// Duplicates, shuffles, unpacks.
const SHUFFLE: &[Code] = &[
    Movddup_xmm_xmmm64,
    Movsldup_xmm_xmmm128,
    Movshdup_xmm_xmmm128,
    Shufps_xmm_xmmm128_imm8,
    Shufpd_xmm_xmmm128_imm8,
    Unpcklps_xmm_xmmm128,
    Unpcklpd_xmm_xmmm128,
    Unpckhps_xmm_xmmm128,
    Unpckhpd_xmm_xmmm128,
];

/// `mov dword [m], value; ldmxcsr [m]`, or `stmxcsr [m]`.
fn mxcsr_group(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    let mut value = mxcsr(d.rng);
    if d.rng.chance(1, 12) {
        let reserved: Vec<u32> = (0..32).filter(|b| MXCSR_RESERVED >> b & 1 == 1).collect();
        value |= 1 << d.rng.pick(&reserved)?;
    }
    control_word(d, a, 32, Stmxcsr_m32, Ldmxcsr_m32, value)
}

/// One group of the class.
pub fn build(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    if d.rng.chance(1, 20) {
        return mxcsr_group(d, a);
    }
    emit_weighted(d, a, &[(7, FULL), (8, PARTIAL), (4, SHUFFLE)])
}
