//! `x87`: the x87 FPU — loads and stores of single, double and extended reals and of 16/32/64-
//! bit integers (FIST rounding by FCW.RC, FISTTP truncating), FBSTP, arithmetic with memory
//! and register operands and the popping forms, FCHS FABS FSQRT FRNDINT FSCALE FXTRACT FPREM
//! FPREM1, the compares (FCOM FUCOM FICOM FCOMI FUCOMI and their popping forms, FTST FXAM),
//! FXCH, the constants, FINCSTP FDECSTP FFREE, FCMOVcc, FNINIT FNCLEX, FNSTSW (AX and memory,
//! after a compare so its condition codes are defined), FNSTCW and FLDCW of a control word a
//! `mov` stored just before (precision and rounding changed, exceptions still masked).
//!
//! The stack starts anywhere and nothing balances it: overflow and underflow (masked #IS:
//! QNaN indefinite, C1) are defined and compared. FBLD (undefined for invalid BCD digits) and
//! the transcendentals (each implementation's own last bits) are not generated.

use iced_x86::code_asm::CodeAssembler;
use iced_x86::Code::{self, *};

use super::forms::{control_word, emit, emit_one_of, emit_weighted};
use super::state::fcw;
use crate::difftest::builders::Built;
use crate::difftest::operands::Draw;

/// Pushes: memory loads of every format, register copies, constants.
const LOAD: &[Code] = &[
    Fld_m32fp,
    Fld_m64fp,
    Fld_m80fp,
    Fld_sti,
    Fild_m16int,
    Fild_m32int,
    Fild_m64int,
    Fld1,
    Fldl2t,
    Fldl2e,
    Fldpi,
    Fldlg2,
    Fldln2,
    Fldz,
];

/// Stores, popping or not, of every format.
const STORE: &[Code] = &[
    Fst_m32fp,
    Fst_m64fp,
    Fstp_m32fp,
    Fstp_m64fp,
    Fstp_m80fp,
    Fst_sti,
    Fstp_sti,
    Fist_m16int,
    Fist_m32int,
    Fistp_m16int,
    Fistp_m32int,
    Fistp_m64int,
    Fisttp_m16int,
    Fisttp_m32int,
    Fisttp_m64int,
    Fbstp_m80bcd,
];

/// Arithmetic on ST(0) with memory, ST(i) either way, and the popping forms.
const ARITH: &[Code] = &[
    Fadd_m32fp,
    Fadd_m64fp,
    Fadd_st0_sti,
    Fadd_sti_st0,
    Faddp_sti_st0,
    Fsub_m32fp,
    Fsub_m64fp,
    Fsub_st0_sti,
    Fsub_sti_st0,
    Fsubp_sti_st0,
    Fsubr_m32fp,
    Fsubr_m64fp,
    Fsubr_st0_sti,
    Fsubr_sti_st0,
    Fsubrp_sti_st0,
    Fmul_m32fp,
    Fmul_m64fp,
    Fmul_st0_sti,
    Fmul_sti_st0,
    Fmulp_sti_st0,
    Fdiv_m32fp,
    Fdiv_m64fp,
    Fdiv_st0_sti,
    Fdiv_sti_st0,
    Fdivp_sti_st0,
    Fdivr_m32fp,
    Fdivr_m64fp,
    Fdivr_st0_sti,
    Fdivr_sti_st0,
    Fdivrp_sti_st0,
    Fiadd_m16int,
    Fiadd_m32int,
    Fisub_m16int,
    Fisub_m32int,
    Fisubr_m32int,
    Fimul_m16int,
    Fimul_m32int,
    Fidiv_m32int,
    Fidivr_m16int,
];

/// One-operand operations on ST(0) (and ST(1)).
const UNARY: &[Code] = &[Fchs, Fabs, Fsqrt, Frndint, Fscale, Fxtract, Fprem, Fprem1];

/// Compares into the condition codes or EFLAGS.
const COMPARE: &[Code] = &[
    Fcom_m32fp,
    Fcom_m64fp,
    Fcom_st0_sti,
    Fcomp_m32fp,
    Fcomp_m64fp,
    Fcomp_st0_sti,
    Fcompp,
    Fucom_st0_sti,
    Fucomp_st0_sti,
    Fucompp,
    Ficom_m16int,
    Ficom_m32int,
    Ficomp_m16int,
    Ficomp_m32int,
    Fcomi_st0_sti,
    Fcomip_st0_sti,
    Fucomi_st0_sti,
    Fucomip_st0_sti,
    Ftst,
    Fxam,
];

/// Stack and control operations, conditional moves.
const MISC: &[Code] = &[
    Fxch_st0_sti,
    Fincstp,
    Fdecstp,
    Ffree_sti,
    Fnop,
    Fninit,
    Fnclex,
    Fcmovb_st0_sti,
    Fcmove_st0_sti,
    Fcmovbe_st0_sti,
    Fcmovu_st0_sti,
    Fcmovnb_st0_sti,
    Fcmovne_st0_sti,
    Fcmovnbe_st0_sti,
    Fcmovnu_st0_sti,
];

/// The compares that define all four condition codes (so FNSTSW may follow).
const DEFINING: &[Code] = &[
    Fcom_st0_sti,
    Fcomp_st0_sti,
    Fucom_st0_sti,
    Ficom_m32int,
    Fcom_m64fp,
    Ftst,
    Fxam,
    Fprem,
    Fprem1,
];

/// A compare, then FNSTSW to AX (and SAHF half the time) or to memory.
fn status(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    if let Some(Err(e)) = emit_one_of(d, a, DEFINING) {
        return Some(Err(e));
    }
    if d.rng.chance(1, 3) {
        return emit(d, a, Fnstsw_m2byte);
    }
    if let Some(Err(e)) = emit(d, a, Fnstsw_AX) {
        return Some(Err(e));
    }
    if d.rng.chance(1, 2) {
        return Some(a.sahf());
    }
    Some(Ok(()))
}

/// `mov word [m], fcw; fldcw [m]`, or `fnstcw [m]`.
fn control(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    let value = u32::from(fcw(d.rng));
    control_word(d, a, 16, Fnstcw_m2byte, Fldcw_m2byte, value)
}

/// One group of the class.
pub fn build(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    match d.rng.below(40) {
        0 | 1 => status(d, a),
        2 => control(d, a),
        _ => emit_weighted(
            d,
            a,
            &[
                (9, LOAD),
                (6, STORE),
                (11, ARITH),
                (4, UNARY),
                (4, COMPARE),
                (3, MISC),
            ],
        ),
    }
}
