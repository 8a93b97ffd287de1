//! `fxsave`: FXSAVE/FXRSTOR (and their REX.W forms) round trips through two 16-byte-aligned
//! 512-byte slots of the data region, which start as valid random images ([`fill`]); stores
//! that patch an image's fields (control and status words, tags, MXCSR, register bytes);
//! register-only x87, MMX and SSE operations that change the state between a save and a
//! restore (each x87 one followed by FXAM, so that FXSAVE never stores an undefined condition
//! code); and the faults: FXRSTOR of an image whose MXCSR has a reserved bit set, or at an
//! address that is not 16-byte aligned, is a #GP.
//!
//! Nothing but FXRSTOR reads a slot: the bytes FXSAVE leaves undefined there (see
//! `undefined`) reach only fields that are masked or ignored.

use iced_x86::code_asm::CodeAssembler;
use iced_x86::Code::{self, *};
use iced_x86::{Instruction, MemoryOperand};

use super::forms::{build as build_form, mem_at, Mem};
use super::state::{fcw, image, mxcsr};
use crate::difftest::builders::Built;
use crate::difftest::operands::Draw;
use crate::difftest::rng::Rng;

/// Offsets of the two image slots in the data region.
pub const SLOTS: [u64; 2] = [0, 1536];

/// Puts a valid random image in each slot of `data` (the data region's bytes).
pub fn fill(rng: &mut Rng, data: &mut [u8]) {
    for s in SLOTS {
        let at = s as usize;
        if let Some(slot) = data.get_mut(at..at + 512) {
            slot.copy_from_slice(&image(rng));
        }
    }
}

/// A slot's address as a memory operand, `extra` bytes in.
fn slot(d: &mut Draw, extra: u64) -> MemoryOperand {
    let s = *d.rng.pick(&SLOTS).unwrap_or(&0);
    mem_at(d, s + extra)
}

/// FXSAVE or FXSAVE64 to a slot.
fn save(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    let code = if d.rng.chance(1, 2) {
        Fxsave_m512byte
    } else {
        Fxsave64_m512byte
    };
    let m = slot(d, 0);
    Some(a.add_instruction(build_form(d, code, Mem::At(m))?))
}

/// FXRSTOR or FXRSTOR64 from a slot; one time in thirty from a misaligned address, one in
/// thirty after setting a reserved MXCSR bit in the image.
fn restore(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    let code = if d.rng.chance(1, 2) {
        Fxrstor_m512byte
    } else {
        Fxrstor64_m512byte
    };
    let m = match d.rng.below(30) {
        0 => slot(d, 8),
        1 => {
            let bit = 18 + d.rng.below(14) as u32;
            let m = slot(d, 0);
            let value = mxcsr(d.rng) | 1 << bit;
            let mut at = m;
            at.displacement += 24;
            let mov = Instruction::with2(Mov_rm32_imm32, at, value).ok()?;
            if let Err(e) = a.add_instruction(mov) {
                return Some(Err(e));
            }
            m
        }
        _ => slot(d, 0),
    };
    Some(a.add_instruction(build_form(d, code, Mem::At(m))?))
}

/// A store of a valid value into one field of a slot's image.
fn patch(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    let (offset, code, value): (u64, Code, u64) = match d.rng.below(6) {
        0 => (0, Mov_rm16_imm16, fcw(d.rng).into()),
        // FSW: any TOP, condition codes and sticky flags; never ES or B.
        1 => (2, Mov_rm16_imm16, d.rng.next_u64() & 0x7f7f),
        2 => (4, Mov_rm8_imm8, d.rng.below(256)),
        3 => (24, Mov_rm32_imm32, mxcsr(d.rng).into()),
        // The significand or the sign and exponent of a register.
        4 => {
            let r = 32 + 16 * d.rng.below(8);
            if d.rng.chance(1, 2) {
                (r, Mov_rm32_imm32, d.rng.interesting())
            } else {
                (r + 8, Mov_rm16_imm16, d.rng.interesting())
            }
        }
        _ => (
            160 + 4 * d.rng.below(64),
            Mov_rm32_imm32,
            d.rng.interesting(),
        ),
    };
    let m = slot(d, offset);
    let insn = match code {
        Mov_rm8_imm8 => Instruction::with2(code, m, value as u8 as u32),
        Mov_rm16_imm16 => Instruction::with2(code, m, value as u16 as u32),
        _ => Instruction::with2(code, m, value as u32),
    };
    Some(insn.and_then(|i| a.add_instruction(i)))
}

/// Register-only operations that change the state.
const CHANGE_SSE: &[Code] = &[
    Addps_xmm_xmmm128,
    Mulpd_xmm_xmmm128,
    Pshufd_xmm_xmmm128_imm8,
    Movaps_xmm_xmmm128,
    Cvtps2pd_xmm_xmmm64,
    Paddq_mm_mmm64,
    Movq_mm_mmm64,
    Emms,
];
/// x87 register operations (FXAM follows each).
const CHANGE_X87: &[Code] = &[
    Fld1,
    Fldz,
    Fldpi,
    Fxch_st0_sti,
    Fincstp,
    Fdecstp,
    Faddp_sti_st0,
    Fmul_st0_sti,
    Ffree_sti,
    Fninit,
];

/// A register-only change of the state.
fn change(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    if d.rng.chance(1, 2) {
        let code = *d.rng.pick(CHANGE_SSE)?;
        return Some(a.add_instruction(build_form(d, code, Mem::Never)?));
    }
    let code = *d.rng.pick(CHANGE_X87)?;
    let insn = build_form(d, code, Mem::Never)?;
    Some(
        a.add_instruction(insn)
            .and_then(|()| a.add_instruction(Instruction::with(Fxam))),
    )
}

/// One group of the class.
pub fn build(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    match d.rng.below(10) {
        0..=2 => save(d, a),
        3..=5 => restore(d, a),
        6 | 7 => patch(d, a),
        _ => change(d, a),
    }
}
