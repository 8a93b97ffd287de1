//! `sse_float`: SSE/SSE2/SSE3/SSE4.1 floating-point arithmetic — ADD SUB MUL DIV MIN MAX SQRT
//! in packed and scalar, single and double forms; RCP/RSQRT (their results undefined, see
//! `undefined`); CMPxx with all eight legacy predicates; COMIS/UCOMIS setting EFLAGS; the
//! logic ops; HADD HSUB ADDSUB; DPPS DPPD; ROUND with every imm8 mode; BLEND and BLENDV.

use iced_x86::code_asm::CodeAssembler;
use iced_x86::Code::{self, *};

use super::forms::emit_weighted;
use crate::difftest::builders::Built;
use crate::difftest::operands::Draw;

/// Arithmetic, packed and scalar.
const ARITH: &[Code] = &[
    Addps_xmm_xmmm128,
    Addpd_xmm_xmmm128,
    Addss_xmm_xmmm32,
    Addsd_xmm_xmmm64,
    Subps_xmm_xmmm128,
    Subpd_xmm_xmmm128,
    Subss_xmm_xmmm32,
    Subsd_xmm_xmmm64,
    Mulps_xmm_xmmm128,
    Mulpd_xmm_xmmm128,
    Mulss_xmm_xmmm32,
    Mulsd_xmm_xmmm64,
    Divps_xmm_xmmm128,
    Divpd_xmm_xmmm128,
    Divss_xmm_xmmm32,
    Divsd_xmm_xmmm64,
    Minps_xmm_xmmm128,
    Minpd_xmm_xmmm128,
    Minss_xmm_xmmm32,
    Minsd_xmm_xmmm64,
    Maxps_xmm_xmmm128,
    Maxpd_xmm_xmmm128,
    Maxss_xmm_xmmm32,
    Maxsd_xmm_xmmm64,
    Sqrtps_xmm_xmmm128,
    Sqrtpd_xmm_xmmm128,
    Sqrtss_xmm_xmmm32,
    Sqrtsd_xmm_xmmm64,
];

/// Compares, into a mask or into EFLAGS.
const COMPARE: &[Code] = &[
    Cmpps_xmm_xmmm128_imm8,
    Cmppd_xmm_xmmm128_imm8,
    Cmpss_xmm_xmmm32_imm8,
    Cmpsd_xmm_xmmm64_imm8,
    Comiss_xmm_xmmm32,
    Comisd_xmm_xmmm64,
    Ucomiss_xmm_xmmm32,
    Ucomisd_xmm_xmmm64,
];

/// Bitwise logic on float vectors.
const LOGIC: &[Code] = &[
    Andps_xmm_xmmm128,
    Andpd_xmm_xmmm128,
    Andnps_xmm_xmmm128,
    Andnpd_xmm_xmmm128,
    Orps_xmm_xmmm128,
    Orpd_xmm_xmmm128,
    Xorps_xmm_xmmm128,
    Xorpd_xmm_xmmm128,
];

/// SSE3 horizontal and alternating ops, SSE4.1 dot products, rounding and blends.
const LATER: &[Code] = &[
    Haddps_xmm_xmmm128,
    Haddpd_xmm_xmmm128,
    Hsubps_xmm_xmmm128,
    Hsubpd_xmm_xmmm128,
    Addsubps_xmm_xmmm128,
    Addsubpd_xmm_xmmm128,
    Dpps_xmm_xmmm128_imm8,
    Dppd_xmm_xmmm128_imm8,
    Roundps_xmm_xmmm128_imm8,
    Roundpd_xmm_xmmm128_imm8,
    Roundss_xmm_xmmm32_imm8,
    Roundsd_xmm_xmmm64_imm8,
    Blendps_xmm_xmmm128_imm8,
    Blendpd_xmm_xmmm128_imm8,
    Blendvps_xmm_xmmm128,
    Blendvpd_xmm_xmmm128,
];

/// The approximations: rare, as they leave their destination undefined.
const APPROX: &[Code] = &[
    Rcpps_xmm_xmmm128,
    Rcpss_xmm_xmmm32,
    Rsqrtps_xmm_xmmm128,
    Rsqrtss_xmm_xmmm32,
];

/// One instruction of the class.
pub fn build(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    emit_weighted(
        d,
        a,
        &[
            (9, ARITH),
            (4, COMPARE),
            (2, LOGIC),
            (4, LATER),
            (1, APPROX),
        ],
    )
}
