//! `mmx`: MMX on the mm registers (which are the x87 registers: every MMX instruction sets TOP
//! to 0 and tags all registers valid, EMMS empties them; the starting TOP is not always 0, so
//! that MMi is checked to be physical register i) — arithmetic, compares, logic, shifts,
//! packs and unpacks, MOVD/MOVQ between mm registers, GPRs, XMM registers and memory, EMMS,
//! the SSE-era extensions (PSHUFW PINSRW PEXTRW PMOVMSKB PMULHUW PAVG PMIN/PMAX PSADBW MOVNTQ
//! MASKMOVQ PADDQ PMULUDQ), the SSSE3 mm forms (PSHUFB PALIGNR PHADD PSIGN PABS PMULHRSW
//! PMADDUBSW), and a few x87 loads and stores to cross between the two modes.

use iced_x86::code_asm::CodeAssembler;
use iced_x86::Code::{self, *};

use super::forms::emit_weighted;
use crate::difftest::builders::Built;
use crate::difftest::operands::Draw;

/// Arithmetic, compares and logic.
const ARITH: &[Code] = &[
    Paddb_mm_mmm64,
    Paddw_mm_mmm64,
    Paddd_mm_mmm64,
    Paddq_mm_mmm64,
    Paddsb_mm_mmm64,
    Paddsw_mm_mmm64,
    Paddusb_mm_mmm64,
    Paddusw_mm_mmm64,
    Psubb_mm_mmm64,
    Psubw_mm_mmm64,
    Psubd_mm_mmm64,
    Psubq_mm_mmm64,
    Psubsb_mm_mmm64,
    Psubsw_mm_mmm64,
    Psubusb_mm_mmm64,
    Psubusw_mm_mmm64,
    Pmullw_mm_mmm64,
    Pmulhw_mm_mmm64,
    Pmulhuw_mm_mmm64,
    Pmuludq_mm_mmm64,
    Pmaddwd_mm_mmm64,
    Psadbw_mm_mmm64,
    Pavgb_mm_mmm64,
    Pavgw_mm_mmm64,
    Pminub_mm_mmm64,
    Pmaxub_mm_mmm64,
    Pminsw_mm_mmm64,
    Pmaxsw_mm_mmm64,
    Pcmpeqb_mm_mmm64,
    Pcmpeqw_mm_mmm64,
    Pcmpeqd_mm_mmm64,
    Pcmpgtb_mm_mmm64,
    Pcmpgtw_mm_mmm64,
    Pcmpgtd_mm_mmm64,
    Pand_mm_mmm64,
    Pandn_mm_mmm64,
    Por_mm_mmm64,
    Pxor_mm_mmm64,
];

/// Shifts, packs, unpacks, shuffles.
const SHUFFLE: &[Code] = &[
    Psllw_mm_mmm64,
    Pslld_mm_mmm64,
    Psllq_mm_mmm64,
    Psrlw_mm_mmm64,
    Psrld_mm_mmm64,
    Psrlq_mm_mmm64,
    Psraw_mm_mmm64,
    Psrad_mm_mmm64,
    Psllw_mm_imm8,
    Pslld_mm_imm8,
    Psllq_mm_imm8,
    Psrlw_mm_imm8,
    Psrld_mm_imm8,
    Psrlq_mm_imm8,
    Psraw_mm_imm8,
    Psrad_mm_imm8,
    Packsswb_mm_mmm64,
    Packssdw_mm_mmm64,
    Packuswb_mm_mmm64,
    Punpcklbw_mm_mmm32,
    Punpcklwd_mm_mmm32,
    Punpckldq_mm_mmm32,
    Punpckhbw_mm_mmm64,
    Punpckhwd_mm_mmm64,
    Punpckhdq_mm_mmm64,
    Pshufw_mm_mmm64_imm8,
];

/// SSSE3 on mm registers.
const SSSE3: &[Code] = &[
    Pshufb_mm_mmm64,
    Palignr_mm_mmm64_imm8,
    Phaddw_mm_mmm64,
    Phaddd_mm_mmm64,
    Phaddsw_mm_mmm64,
    Phsubw_mm_mmm64,
    Phsubd_mm_mmm64,
    Phsubsw_mm_mmm64,
    Psignb_mm_mmm64,
    Psignw_mm_mmm64,
    Psignd_mm_mmm64,
    Pabsb_mm_mmm64,
    Pabsw_mm_mmm64,
    Pabsd_mm_mmm64,
    Pmulhrsw_mm_mmm64,
    Pmaddubsw_mm_mmm64,
];

/// Moves in and out, lanes, masks, EMMS.
const MOVE: &[Code] = &[
    Movd_mm_rm32,
    Movq_mm_rm64,
    Movd_rm32_mm,
    Movq_rm64_mm,
    Movq_mm_mmm64,
    Movq_mmm64_mm,
    Movq2dq_xmm_mm,
    Movdq2q_mm_xmm,
    Pinsrw_mm_r32m16_imm8,
    Pinsrw_mm_r64m16_imm8,
    Pextrw_r32_mm_imm8,
    Pextrw_r64_mm_imm8,
    Pmovmskb_r32_mm,
    Pmovmskb_r64_mm,
    Movntq_m64_mm,
    Maskmovq_rDI_mm_mm,
    Emms,
];

/// x87 instructions that meet MMX state: loads onto a full stack overflow, stores read what
/// MMX wrote (exponent all ones).
const X87: &[Code] = &[
    Fld_m64fp, Fld_m80fp, Fstp_m80fp, Fstp_m64fp, Fldz, Fld1, Fxam,
];

/// One instruction of the class.
pub fn build(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    emit_weighted(
        d,
        a,
        &[(7, ARITH), (4, SHUFFLE), (3, SSSE3), (5, MOVE), (1, X87)],
    )
}
