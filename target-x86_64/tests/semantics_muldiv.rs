//! MUL, IMUL (one-, two- and three-operand forms), DIV and IDIV through tcg's interpreter:
//! high halves, CF/OF, and #DE on zero divisors and quotient overflow with the registers and
//! RIP left at the faulting instruction.

mod common;

use common::*;
use iced_x86::code_asm::*;
use tandem_target_x86_64::cpu_state::reg;
use tandem_target_x86_64::flags::bit;

const CF_OF: u64 = bit::CF | bit::OF;

fn regs(build: impl FnOnce(&mut CodeAssembler), init: &[(usize, u64)]) -> (FlatEnv, End) {
    run(
        |a| {
            build(a);
            a.hlt().unwrap();
        },
        |c| {
            for &(r, v) in init {
                c.gpr[r] = v;
            }
        },
    )
}

#[test]
fn mul_64_high_half() {
    // (2^64 - 1) * 2 = 2^65 - 2: RDX = 1, RAX = 0xffff_ffff_ffff_fffe; high half non-zero.
    let (env, _) = regs(
        |a| a.mul(rbx).unwrap(),
        &[(reg::RAX, u64::MAX), (reg::RBX, 2)],
    );
    assert_eq!(gpr(&env, reg::RAX), u64::MAX - 1);
    assert_eq!(gpr(&env, reg::RDX), 1);
    assert_eq!(arith_flags(&env) & CF_OF, CF_OF);
}

#[test]
fn mul_8_and_32_bit_forms() {
    // AL * BL = 0x10 * 0x10 = 0x100 into AX (AH = 1: CF = OF = 1); RAX's upper bytes stay.
    let (env, _) = regs(
        |a| a.mul(bl).unwrap(),
        &[(reg::RAX, 0xaaaa_0000_0000_0010), (reg::RBX, 0x10)],
    );
    assert_eq!(gpr(&env, reg::RAX), 0xaaaa_0000_0000_0100);
    assert_eq!(arith_flags(&env) & CF_OF, CF_OF);
    // 0x1_0000 * 0x1_0000 = 2^32: EDX = 1, EAX = 0, both zero-extended.
    let (env, _) = regs(
        |a| a.mul(ecx).unwrap(),
        &[
            (reg::RAX, 0xffff_0000_0001_0000),
            (reg::RCX, 0x1_0000),
            (reg::RDX, u64::MAX),
        ],
    );
    assert_eq!(gpr(&env, reg::RAX), 0);
    assert_eq!(gpr(&env, reg::RDX), 1);
    // 3 * 4 = 12 in 16 bits: DX = 0, CF = OF = 0.
    let (env, _) = regs(|a| a.mul(cx).unwrap(), &[(reg::RAX, 3), (reg::RCX, 4)]);
    assert_eq!(gpr(&env, reg::RAX), 12);
    assert_eq!(arith_flags(&env) & CF_OF, 0);
}

#[test]
fn imul_forms() {
    // IMUL BL: -1 * 2 = -2 = 0xfffe in AX; the high half is the sign extension: CF = OF = 0.
    let (env, _) = regs(|a| a.imul(bl).unwrap(), &[(reg::RAX, 0xff), (reg::RBX, 2)]);
    assert_eq!(gpr(&env, reg::RAX), 0xfffe);
    assert_eq!(arith_flags(&env) & CF_OF, 0);
    // IMUL RCX: -4 * 3 = -12: RDX = -1, RAX = -12.
    let (env, _) = regs(
        |a| a.imul(rcx).unwrap(),
        &[(reg::RAX, (-4i64) as u64), (reg::RCX, 3)],
    );
    assert_eq!(gpr(&env, reg::RAX), (-12i64) as u64);
    assert_eq!(gpr(&env, reg::RDX), u64::MAX);
    assert_eq!(arith_flags(&env) & CF_OF, 0);
    // IMUL R8, R9: 2^62 * 2 = 2^63 does not fit signed: CF = OF = 1, R8 = 1 << 63.
    let (env, _) = regs(|a| a.imul_2(r8, r9).unwrap(), &[(8, 1 << 62), (9, 2)]);
    assert_eq!(gpr(&env, 8), 1 << 63);
    assert_eq!(arith_flags(&env) & CF_OF, CF_OF);
    // IMUL EAX, ECX, -3: 5 * -3 = -15 = 0xffff_fff1, zero-extended; fits: CF = OF = 0.
    let (env, _) = regs(
        |a| a.imul_3(eax, ecx, -3).unwrap(),
        &[(reg::RAX, u64::MAX), (reg::RCX, 5)],
    );
    assert_eq!(gpr(&env, reg::RAX), 0xffff_fff1);
    assert_eq!(arith_flags(&env) & CF_OF, 0);
    // IMUL AX, CX, 0x4000 (imm16): 2 * 0x4000 = 0x8000 overflows 16 signed bits.
    let (env, _) = regs(|a| a.imul_3(ax, cx, 0x4000).unwrap(), &[(reg::RCX, 2)]);
    assert_eq!(gpr(&env, reg::RAX), 0x8000);
    assert_eq!(arith_flags(&env) & CF_OF, CF_OF);
}

#[test]
fn div_quotient_and_remainder() {
    // 100 / 7 = 14 remainder 2.
    let (env, end) = regs(
        |a| a.div(rcx).unwrap(),
        &[(reg::RAX, 100), (reg::RDX, 0), (reg::RCX, 7)],
    );
    assert_eq!(end, End::Halted);
    assert_eq!((gpr(&env, reg::RAX), gpr(&env, reg::RDX)), (14, 2));
    // 8-bit: AX = 1000 / 10 = 100 in AL, remainder 0 in AH.
    let (env, _) = regs(|a| a.div(cl).unwrap(), &[(reg::RAX, 1000), (reg::RCX, 10)]);
    assert_eq!(gpr(&env, reg::RAX), 100);
    // 128-bit dividend: (2^64 + 4) / 2 = 2^63 + 2.
    let (env, _) = regs(
        |a| a.div(rcx).unwrap(),
        &[(reg::RAX, 4), (reg::RDX, 1), (reg::RCX, 2)],
    );
    assert_eq!(gpr(&env, reg::RAX), (1 << 63) + 2);
    assert_eq!(gpr(&env, reg::RDX), 0);
}

/// Runs `mov ebx, 1; <div>; mov ebx, 2` and checks #DE at the DIV with RAX/RDX untouched.
fn expect_de(build: impl FnOnce(&mut CodeAssembler), init: &[(usize, u64)]) {
    let (env, end) = regs(
        |a| {
            a.mov(ebx, 1).unwrap(); // 5 bytes
            build(a);
            a.mov(ebx, 2).unwrap();
        },
        init,
    );
    assert_eq!(end, End::Exception(0, None));
    assert_eq!(env.ctx.cpu.rip, CODE + 5, "RIP is the DIV's own");
    assert_eq!(gpr(&env, reg::RBX), 1);
    for &(r, v) in init {
        assert_eq!(gpr(&env, r), v, "register {r} untouched");
    }
}

#[test]
fn divide_errors() {
    // Divide by zero.
    expect_de(
        |a| a.div(rcx).unwrap(),
        &[(reg::RAX, 5), (reg::RDX, 0), (reg::RCX, 0)],
    );
    // Quotient overflow: 2^64 / 1 does not fit in RAX.
    expect_de(
        |a| a.div(rcx).unwrap(),
        &[(reg::RAX, 0), (reg::RDX, 1), (reg::RCX, 1)],
    );
    // 8-bit overflow: 0x100 / 1 = 256 > 0xff.
    expect_de(|a| a.div(cl).unwrap(), &[(reg::RAX, 0x100), (reg::RCX, 1)]);
    // IDIV i64::MIN / -1: 2^63 does not fit.
    expect_de(
        |a| a.idiv(rcx).unwrap(),
        &[
            (reg::RAX, 1 << 63),
            (reg::RDX, u64::MAX),
            (reg::RCX, u64::MAX),
        ],
    );
    // IDIV BL: -128 / -1 = 128 does not fit in AL.
    expect_de(
        |a| a.idiv(cl).unwrap(),
        &[(reg::RAX, 0xff80), (reg::RCX, 0xff)],
    );
    // IDIV by zero (32-bit).
    expect_de(|a| a.idiv(ecx).unwrap(), &[(reg::RAX, 7), (reg::RCX, 0)]);
}

#[test]
fn idiv_truncates_toward_zero() {
    // -7 / 2 = -3 remainder -1 (the remainder has the dividend's sign).
    let (env, _) = regs(
        |a| {
            a.cqo().unwrap();
            a.idiv(rcx).unwrap();
        },
        &[(reg::RAX, (-7i64) as u64), (reg::RCX, 2)],
    );
    assert_eq!(gpr(&env, reg::RAX), (-3i64) as u64);
    assert_eq!(gpr(&env, reg::RDX), u64::MAX);
    // 32-bit: -100 / 7 = -14 rem -2, zero-extended into RAX/RDX.
    let (env, _) = regs(
        |a| a.idiv(ecx).unwrap(),
        &[
            (reg::RAX, 0xffff_ff9c),
            (reg::RDX, 0xffff_ffff),
            (reg::RCX, 7),
        ],
    );
    assert_eq!(gpr(&env, reg::RAX), 0xffff_fff2);
    assert_eq!(gpr(&env, reg::RDX), 0xffff_fffe);
    // 16-bit: DX:AX = 1000 / -3 = -333 (0xfeb3) rem 1; RAX/RDX upper bits kept.
    let (env, _) = regs(
        |a| a.idiv(cx).unwrap(),
        &[
            (reg::RAX, 0x5555_0000_0000_03e8),
            (reg::RDX, 0),
            (reg::RCX, 0xfffd),
        ],
    );
    assert_eq!(gpr(&env, reg::RAX), 0x5555_0000_0000_feb3);
    assert_eq!(gpr(&env, reg::RDX), 1);
}
