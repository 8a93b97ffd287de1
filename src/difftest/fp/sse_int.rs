//! `sse_int`: packed-integer SSE2/SSSE3/SSE4.1 on XMM registers — add and subtract (wrapping
//! and saturating), multiplies, PMADDWD PSADBW PAVG, min/max, compares (PCMPEQQ and PCMPGTQ
//! included), shifts by register and by immediate (counts at and past the element width),
//! byte shifts, PSHUFB PALIGNR, horizontal adds, PSIGN PABS PMULHRSW, packs and unpacks,
//! shuffles, sign and zero extensions, PTEST (EFLAGS), inserts and extracts with GPRs and
//! memory, the mask moves to GPRs, PHMINPOSUW and MPSADBW.

use iced_x86::code_asm::CodeAssembler;
use iced_x86::Code::{self, *};

use super::forms::emit_weighted;
use crate::difftest::builders::Built;
use crate::difftest::operands::Draw;

/// Adds, subtracts, multiplies, averages, min/max, logic.
const ARITH: &[Code] = &[
    Paddb_xmm_xmmm128,
    Paddw_xmm_xmmm128,
    Paddd_xmm_xmmm128,
    Paddq_xmm_xmmm128,
    Paddsb_xmm_xmmm128,
    Paddsw_xmm_xmmm128,
    Paddusb_xmm_xmmm128,
    Paddusw_xmm_xmmm128,
    Psubb_xmm_xmmm128,
    Psubw_xmm_xmmm128,
    Psubd_xmm_xmmm128,
    Psubq_xmm_xmmm128,
    Psubsb_xmm_xmmm128,
    Psubsw_xmm_xmmm128,
    Psubusb_xmm_xmmm128,
    Psubusw_xmm_xmmm128,
    Pmullw_xmm_xmmm128,
    Pmulhw_xmm_xmmm128,
    Pmulhuw_xmm_xmmm128,
    Pmuludq_xmm_xmmm128,
    Pmuldq_xmm_xmmm128,
    Pmulld_xmm_xmmm128,
    Pmaddwd_xmm_xmmm128,
    Pmaddubsw_xmm_xmmm128,
    Pmulhrsw_xmm_xmmm128,
    Psadbw_xmm_xmmm128,
    Pavgb_xmm_xmmm128,
    Pavgw_xmm_xmmm128,
    Pminub_xmm_xmmm128,
    Pminuw_xmm_xmmm128,
    Pminud_xmm_xmmm128,
    Pminsb_xmm_xmmm128,
    Pminsw_xmm_xmmm128,
    Pminsd_xmm_xmmm128,
    Pmaxub_xmm_xmmm128,
    Pmaxuw_xmm_xmmm128,
    Pmaxud_xmm_xmmm128,
    Pmaxsb_xmm_xmmm128,
    Pmaxsw_xmm_xmmm128,
    Pmaxsd_xmm_xmmm128,
    Pand_xmm_xmmm128,
    Pandn_xmm_xmmm128,
    Por_xmm_xmmm128,
    Pxor_xmm_xmmm128,
    Phaddw_xmm_xmmm128,
    Phaddd_xmm_xmmm128,
    Phaddsw_xmm_xmmm128,
    Phsubw_xmm_xmmm128,
    Phsubd_xmm_xmmm128,
    Phsubsw_xmm_xmmm128,
    Psignb_xmm_xmmm128,
    Psignw_xmm_xmmm128,
    Psignd_xmm_xmmm128,
    Pabsb_xmm_xmmm128,
    Pabsw_xmm_xmmm128,
    Pabsd_xmm_xmmm128,
    Phminposuw_xmm_xmmm128,
    Mpsadbw_xmm_xmmm128_imm8,
];

/// Compares into masks, and PTEST into EFLAGS.
const COMPARE: &[Code] = &[
    Pcmpeqb_xmm_xmmm128,
    Pcmpeqw_xmm_xmmm128,
    Pcmpeqd_xmm_xmmm128,
    Pcmpeqq_xmm_xmmm128,
    Pcmpgtb_xmm_xmmm128,
    Pcmpgtw_xmm_xmmm128,
    Pcmpgtd_xmm_xmmm128,
    Pcmpgtq_xmm_xmmm128,
    Ptest_xmm_xmmm128,
];

/// Shifts by an XMM count, by an immediate, and by bytes.
const SHIFT: &[Code] = &[
    Psllw_xmm_xmmm128,
    Pslld_xmm_xmmm128,
    Psllq_xmm_xmmm128,
    Psrlw_xmm_xmmm128,
    Psrld_xmm_xmmm128,
    Psrlq_xmm_xmmm128,
    Psraw_xmm_xmmm128,
    Psrad_xmm_xmmm128,
    Psllw_xmm_imm8,
    Pslld_xmm_imm8,
    Psllq_xmm_imm8,
    Psrlw_xmm_imm8,
    Psrld_xmm_imm8,
    Psrlq_xmm_imm8,
    Psraw_xmm_imm8,
    Psrad_xmm_imm8,
    Pslldq_xmm_imm8,
    Psrldq_xmm_imm8,
];

/// Shuffles, packs, unpacks, blends, extensions.
const SHUFFLE: &[Code] = &[
    Pshufb_xmm_xmmm128,
    Palignr_xmm_xmmm128_imm8,
    Pshufd_xmm_xmmm128_imm8,
    Pshufhw_xmm_xmmm128_imm8,
    Pshuflw_xmm_xmmm128_imm8,
    Packsswb_xmm_xmmm128,
    Packssdw_xmm_xmmm128,
    Packuswb_xmm_xmmm128,
    Packusdw_xmm_xmmm128,
    Punpcklbw_xmm_xmmm128,
    Punpcklwd_xmm_xmmm128,
    Punpckldq_xmm_xmmm128,
    Punpcklqdq_xmm_xmmm128,
    Punpckhbw_xmm_xmmm128,
    Punpckhwd_xmm_xmmm128,
    Punpckhdq_xmm_xmmm128,
    Punpckhqdq_xmm_xmmm128,
    Pblendw_xmm_xmmm128_imm8,
    Pblendvb_xmm_xmmm128,
    Pmovsxbw_xmm_xmmm64,
    Pmovsxbd_xmm_xmmm32,
    Pmovsxbq_xmm_xmmm16,
    Pmovsxwd_xmm_xmmm64,
    Pmovsxwq_xmm_xmmm32,
    Pmovsxdq_xmm_xmmm64,
    Pmovzxbw_xmm_xmmm64,
    Pmovzxbd_xmm_xmmm32,
    Pmovzxbq_xmm_xmmm16,
    Pmovzxwd_xmm_xmmm64,
    Pmovzxwq_xmm_xmmm32,
    Pmovzxdq_xmm_xmmm64,
];

/// Between XMM lanes and GPRs or memory.
const LANES: &[Code] = &[
    Pinsrb_xmm_r32m8_imm8,
    Pinsrb_xmm_r64m8_imm8,
    Pinsrw_xmm_r32m16_imm8,
    Pinsrw_xmm_r64m16_imm8,
    Pinsrd_xmm_rm32_imm8,
    Pinsrq_xmm_rm64_imm8,
    Pextrb_r32m8_xmm_imm8,
    Pextrb_r64m8_xmm_imm8,
    Pextrw_r32_xmm_imm8,
    Pextrw_r64_xmm_imm8,
    Pextrw_r32m16_xmm_imm8,
    Pextrw_r64m16_xmm_imm8,
    Pextrd_rm32_xmm_imm8,
    Pextrq_rm64_xmm_imm8,
    Pmovmskb_r32_xmm,
    Pmovmskb_r64_xmm,
    Movmskps_r32_xmm,
    Movmskps_r64_xmm,
    Movmskpd_r32_xmm,
    Movmskpd_r64_xmm,
];

/// One instruction of the class.
pub fn build(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    emit_weighted(
        d,
        a,
        &[
            (4, ARITH),
            (1, COMPARE),
            (2, SHIFT),
            (2, SHUFFLE),
            (1, LANES),
        ],
    )
}
