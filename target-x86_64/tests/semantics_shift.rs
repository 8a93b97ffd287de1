//! Shifts and rotates through tcg's interpreter: SHL/SAL, SHR, SAR, ROL, ROR, RCL, RCR, SHLD,
//! SHRD at counts 0, 1, width - 1 and beyond the width (masked), with the flags worked out by
//! hand from the SDM's pseudocode (each expected value says how).

mod common;

use common::*;
use iced_x86::code_asm::*;
use tandem_target_x86_64::cpu_state::reg;
use tandem_target_x86_64::flags::bit;

const CF: u64 = bit::CF;
const OF: u64 = bit::OF;
const ZF: u64 = bit::ZF;
const SF: u64 = bit::SF;
const PF: u64 = bit::PF;
/// The flags every expectation below pins down (AF is undefined after shifts).
const DEFINED: u64 = CF | OF | ZF | SF | PF;

/// Runs `build` with RAX/RBX/RCX and RFLAGS preset; returns (RAX, RBX, defined flags).
fn go(
    build: impl FnOnce(&mut CodeAssembler),
    a0: u64,
    b0: u64,
    c0: u64,
    fl: u64,
) -> (u64, u64, u64) {
    let (env, end) = run(
        |a| {
            build(a);
            a.hlt().unwrap();
        },
        |c| {
            c.gpr[reg::RAX] = a0;
            c.gpr[reg::RBX] = b0;
            c.gpr[reg::RCX] = c0;
            c.rflags = 2 | fl;
        },
    );
    assert_eq!(end, End::Halted);
    (
        gpr(&env, reg::RAX),
        gpr(&env, reg::RBX),
        arith_flags(&env) & DEFINED,
    )
}

#[test]
fn shl_by_one_sets_cf_and_of() {
    // 0x81 << 1 = 0x102: AL = 0x02, CF = old bit 7 = 1, OF = MSB(0x02) ^ CF = 1; 0x02 has
    // one bit set: PF = 0.
    let (v, _, f) = go(|a| a.shl(al, 1).unwrap(), 0x81, 0, 0, 0);
    assert_eq!(v, 0x02);
    assert_eq!(f, CF | OF);
}

#[test]
fn a_zero_count_changes_no_flag() {
    // CL = 64 is masked to 0 for a 64-bit shift: RAX and CF|ZF|SF stay.
    let (v, _, f) = go(|a| a.shl(rax, cl).unwrap(), 0x1234, 0, 64, CF | ZF | SF);
    assert_eq!(v, 0x1234);
    assert_eq!(f, CF | ZF | SF);
    // CL = 32 is masked to 0 for a 32-bit rotate: flags stay, but the 32-bit register is
    // written, which clears its upper half.
    let (v, _, f) = go(
        |a| a.rol(eax, cl).unwrap(),
        0xffff_ffff_0000_0001,
        0,
        32,
        OF,
    );
    assert_eq!(v, 1);
    assert_eq!(f, OF);
}

#[test]
fn shl_by_width_minus_one() {
    // 1 << 63: the last bit out is old bit 1 = 0 (CF = 0); SF = 1; low byte 0: PF = 1.
    // OF is undefined for counts > 1; this model documents CF ^ MSB(result) = 1.
    let (v, _, f) = go(|a| a.shl(rax, 63).unwrap(), 1, 0, 0, CF);
    assert_eq!(v, 1 << 63);
    assert_eq!(f, SF | PF | OF);
}

#[test]
fn immediate_counts_are_masked() {
    // 33 & 31 = 1: 0x8000_0001 << 1 = 0x2, CF = 1, OF = 0 ^ 1 = 1.
    let (v, _, f) = go(|a| a.shl(eax, 33).unwrap(), 0x8000_0001, 0, 0, 0);
    assert_eq!(v, 2);
    assert_eq!(f, CF | OF);
}

#[test]
fn shr_beyond_an_8_bit_width() {
    // CL = 9 (5-bit mask keeps 9): 0xff >> 9 = 0, last bit out = bit 8 of 0xff = 0:
    // ZF = 1, PF = 1 (zero has even parity), CF = 0.
    let (v, _, f) = go(|a| a.shr(al, cl).unwrap(), 0xff, 0, 9, CF);
    assert_eq!(v, 0);
    assert_eq!(f & (CF | ZF | PF | SF), ZF | PF);
}

#[test]
fn shr_by_one_sets_of_to_the_old_sign() {
    // 0x80 >> 1 = 0x40: CF = 0, OF = old MSB = 1.
    let (v, _, f) = go(|a| a.shr(al, 1).unwrap(), 0x80, 0, 0, 0);
    assert_eq!(v, 0x40);
    assert_eq!(f, OF);
}

#[test]
fn sar_keeps_the_sign() {
    // 0x80 sar 7 = 0xff: CF = bit 6 = 0, SF = 1, PF = 1 (eight ones), OF = 0.
    let (v, _, f) = go(|a| a.sar(al, 7).unwrap(), 0x80, 0, 0, OF);
    assert_eq!(v, 0xff);
    assert_eq!(f, SF | PF);
    // 0x81 sar 1 = 0xc0: CF = 1, OF = 0 for SAR by 1; 0xc0 has two ones: PF = 1.
    let (v, _, f) = go(|a| a.sar(al, 1).unwrap(), 0x81, 0, 0, 0);
    assert_eq!(v, 0xc0);
    assert_eq!(f, CF | SF | PF);
    // 64-bit, count 63 via CL: all sign bits.
    let (v, _, _) = go(|a| a.sar(rax, cl).unwrap(), 1 << 63, 0, 63, 0);
    assert_eq!(v, u64::MAX);
}

#[test]
fn shl_memory_operand() {
    // word [0x2000] = 0x4001 << 2 = 0x0004: CF = last bit out = bit 14 = 1.
    let (env, end) = run(
        |a| {
            a.mov(word_ptr(0x2000), 0x4001).unwrap();
            a.shl(word_ptr(0x2000), 2).unwrap();
            a.hlt().unwrap();
        },
        |_| {},
    );
    assert_eq!(end, End::Halted);
    assert_eq!(&env.mem[0x2000..0x2002], &[0x04, 0x00]);
    assert_eq!(arith_flags(&env) & CF, CF);
}

#[test]
fn rol_and_ror_touch_only_cf_and_of() {
    // ROL 0x81 by 1 = 0x03: CF = LSB = 1, OF = MSB(0x03) ^ CF = 1; ZF|SF|PF preset survive.
    let (v, _, f) = go(|a| a.rol(al, 1).unwrap(), 0x81, 0, 0, ZF | SF | PF);
    assert_eq!(v, 0x03);
    assert_eq!(f, CF | OF | ZF | SF | PF);
    // ROR 0x01 by 1 = 0x80: CF = MSB = 1, OF = MSB ^ bit 6 = 1.
    let (v, _, f) = go(|a| a.ror(al, 1).unwrap(), 0x01, 0, 0, 0);
    assert_eq!(v, 0x80);
    assert_eq!(f, CF | OF);
    // ROL by 8 on 8 bits: no movement, but the masked count is not 0: CF = LSB = 1.
    let (v, _, f) = go(|a| a.rol(al, 8).unwrap(), 0x81, 0, 0, 0);
    assert_eq!(v, 0x81);
    assert_eq!(f & CF, CF);
    // 64-bit ROR by 4.
    let (v, _, _) = go(|a| a.ror(rax, 4).unwrap(), 0x1234_5678_9abc_def1, 0, 0, 0);
    assert_eq!(v, 0x1123_4567_89ab_cdef);
}

#[test]
fn rcl_and_rcr_rotate_through_carry() {
    // RCL 0x80 by 1 with CF = 1: 0x01, CF = old MSB = 1, OF = MSB(res) ^ CF = 1.
    let (v, _, f) = go(|a| a.rcl(al, 1).unwrap(), 0x80, 0, 0, CF);
    assert_eq!(v, 0x01);
    assert_eq!(f & (CF | OF), CF | OF);
    // RCR 0x01 by 1 with CF = 1: 0x80, CF = 1, OF = old MSB ^ old CF = 0 ^ 1 = 1.
    let (v, _, f) = go(|a| a.rcr(al, 1).unwrap(), 0x01, 0, 0, CF);
    assert_eq!(v, 0x80);
    assert_eq!(f & (CF | OF), CF | OF);
    // RCL by 9 on 8 bits: 9 mod 9 = 0, nothing rotates, CF stays 0.
    let (v, _, f) = go(|a| a.rcl(al, cl).unwrap(), 0x55, 0, 9, 0);
    assert_eq!(v, 0x55);
    assert_eq!(f & CF, 0);
    // RCL AX by 16 with CF = 1, AX = 1: the 17-bit rotate left by 16 is a rotate right by
    // 1: bit 0 -> CF, CF -> bit 15: AX = 0x8000, CF = 1.
    let (v, _, f) = go(|a| a.rcl(ax, 16).unwrap(), 1, 0, 0, CF);
    assert_eq!(v, 0x8000);
    assert_eq!(f & CF, CF);
}

#[test]
fn rcl_rcr_64_bit_edges() {
    // RCL RAX by 1 with CF = 1, RAX = 1 << 63: RAX = 1, CF = 1.
    let (v, _, f) = go(|a| a.rcl(rax, 1).unwrap(), 1 << 63, 0, 0, CF);
    assert_eq!(v, 1);
    assert_eq!(f & CF, CF);
    // RCR RAX by 63 with CF = 0, RAX = 1: in 65 bits that is a rotate left by 2: RAX = 4,
    // CF = old bit 62 = 0.
    let (v, _, f) = go(|a| a.rcr(rax, 63).unwrap(), 1, 0, 0, 0);
    assert_eq!(v, 4);
    assert_eq!(f & CF, 0);
}

#[test]
fn shld_and_shrd() {
    // SHLD EAX, EBX, 4: 0x1234_5678 << 4 | 0x9abc_def0 >> 28 = 0x2345_6789; CF = bit 28 of
    // EAX = 1.
    let (v, _, f) = go(
        |a| a.shld(eax, ebx, 4).unwrap(),
        0x1234_5678,
        0x9abc_def0,
        0,
        0,
    );
    assert_eq!(v, 0x2345_6789);
    assert_eq!(f & CF, CF);
    // SHRD AX, BX, 4: low 16 bits of 0xabcd_1234 >> 4 = 0xd123; CF = bit 3 of 0x1234 = 0;
    // SF = 1.
    let (v, _, f) = go(|a| a.shrd(ax, bx, 4).unwrap(), 0x1234, 0xabcd, 0, CF);
    assert_eq!(v, 0xd123);
    assert_eq!(f & (CF | SF | ZF), SF);
    // SHRD RAX, RBX, 1 with both 1: 1 << 63; CF = 1, OF = sign change 0 -> 1 = 1.
    let (v, _, f) = go(|a| a.shrd(rax, rbx, 1).unwrap(), 1, 1, 0, 0);
    assert_eq!(v, 1 << 63);
    assert_eq!(f & (CF | OF | SF), CF | OF | SF);
    // SHLD by CL = 0: nothing, flags kept.
    let (v, _, f) = go(|a| a.shld(rax, rbx, cl).unwrap(), 5, 7, 0, ZF);
    assert_eq!(v, 5);
    assert_eq!(f, ZF);
}
