//! `sse_convert`: the SSE/SSE2 conversions in every direction — integer (32- and 64-bit GPRs
//! or memory) to single and double, single and double to integer with the current rounding
//! mode and truncating (out-of-range values give the integer indefinite), single to double and
//! back, packed dwords to and from floats, and the MMX-register forms (which switch the x87
//! to MMX mode).

use iced_x86::code_asm::CodeAssembler;
use iced_x86::Code::{self, *};

use super::forms::emit_weighted;
use crate::difftest::builders::Built;
use crate::difftest::operands::Draw;

/// Integer GPR or memory to float.
const FROM_INT: &[Code] = &[
    Cvtsi2ss_xmm_rm32,
    Cvtsi2ss_xmm_rm64,
    Cvtsi2sd_xmm_rm32,
    Cvtsi2sd_xmm_rm64,
];

/// Float to integer GPR, rounding (MXCSR.RC) or truncating.
const TO_INT: &[Code] = &[
    Cvtss2si_r32_xmmm32,
    Cvtss2si_r64_xmmm32,
    Cvttss2si_r32_xmmm32,
    Cvttss2si_r64_xmmm32,
    Cvtsd2si_r32_xmmm64,
    Cvtsd2si_r64_xmmm64,
    Cvttsd2si_r32_xmmm64,
    Cvttsd2si_r64_xmmm64,
];

/// Between vector formats.
const PACKED: &[Code] = &[
    Cvtps2pd_xmm_xmmm64,
    Cvtpd2ps_xmm_xmmm128,
    Cvtss2sd_xmm_xmmm32,
    Cvtsd2ss_xmm_xmmm64,
    Cvtdq2ps_xmm_xmmm128,
    Cvtps2dq_xmm_xmmm128,
    Cvttps2dq_xmm_xmmm128,
    Cvtdq2pd_xmm_xmmm64,
    Cvtpd2dq_xmm_xmmm128,
    Cvttpd2dq_xmm_xmmm128,
];

/// With an MMX register on one side.
const MMX: &[Code] = &[
    Cvtpi2ps_xmm_mmm64,
    Cvtpi2pd_xmm_mmm64,
    Cvtps2pi_mm_xmmm64,
    Cvttps2pi_mm_xmmm64,
    Cvtpd2pi_mm_xmmm128,
    Cvttpd2pi_mm_xmmm128,
];

/// One instruction of the class.
pub fn build(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    emit_weighted(d, a, &[(2, FROM_INT), (3, TO_INT), (4, PACKED), (1, MMX)])
}
