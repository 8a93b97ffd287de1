//! `sse42`: the SSE4.2 string compares PCMPESTRI/PCMPESTRM/PCMPISTRI/PCMPISTRM with every
//! meaningful imm8 (data format, aggregation, polarity, index/mask selection) and explicit
//! lengths in EAX/EDX (RAX/RDX with REX.W) set just before — in range, negative, past 8/16,
//! huge — or left random; PCMPGTQ; CRC32 into 32- and 64-bit registers from 8/16/32/64-bit
//! sources; POPCNT.

use iced_x86::code_asm::CodeAssembler;
use iced_x86::Code::{self, *};
use iced_x86::{Instruction, Register};

use super::forms::{emit, emit_one_of};
use crate::difftest::builders::Built;
use crate::difftest::operands::Draw;

/// The explicit-length compares (the `64` codes take 64-bit lengths).
const EXPLICIT: &[Code] = &[
    Pcmpestri_xmm_xmmm128_imm8,
    Pcmpestrm_xmm_xmmm128_imm8,
    Pcmpestri64_xmm_xmmm128_imm8,
    Pcmpestrm64_xmm_xmmm128_imm8,
];

/// The implicit-length compares.
const IMPLICIT: &[Code] = &[Pcmpistri_xmm_xmmm128_imm8, Pcmpistrm_xmm_xmmm128_imm8];

/// CRC32 in all widths, POPCNT, and PCMPGTQ.
const OTHER: &[Code] = &[
    Crc32_r32_rm8,
    Crc32_r32_rm16,
    Crc32_r32_rm32,
    Crc32_r64_rm8,
    Crc32_r64_rm64,
    Popcnt_r16_rm16,
    Popcnt_r32_rm32,
    Popcnt_r64_rm64,
    Pcmpgtq_xmm_xmmm128,
];

/// A string length: mostly in or near range (either sign), sometimes far out of it.
fn length(d: &mut Draw, wide: bool) -> u64 {
    match d.rng.below(8) {
        0..=3 => d.rng.below(18),
        4 | 5 => (d.rng.below(18) as i64).wrapping_neg() as u64,
        6 if wide => d.rng.interesting(),
        _ => u64::from(d.rng.interesting() as u32 as i32 as u32),
    }
}

/// `mov eax/rax, len; mov edx/rdx, len` (each now and then left out), then the compare.
fn explicit(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    let code = *d.rng.pick(EXPLICIT)?;
    let wide = matches!(
        code,
        Pcmpestri64_xmm_xmmm128_imm8 | Pcmpestrm64_xmm_xmmm128_imm8
    );
    for (r32, r64) in [
        (Register::EAX, Register::RAX),
        (Register::EDX, Register::RDX),
    ] {
        if d.rng.chance(1, 8) {
            continue;
        }
        let len = length(d, wide);
        let mov = if wide {
            Instruction::with2(Mov_r64_imm64, r64, len)
        } else {
            Instruction::with2(Mov_r32_imm32, r32, len as u32)
        };
        if let Err(e) = mov.and_then(|m| a.add_instruction(m)) {
            return Some(Err(e));
        }
    }
    emit(d, a, code)
}

/// One group of the class.
pub fn build(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    match d.rng.below(10) {
        0..=3 => explicit(d, a),
        4..=6 => emit_one_of(d, a, IMPLICIT),
        _ => emit_one_of(d, a, OTHER),
    }
}
