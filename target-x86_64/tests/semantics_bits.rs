//! Bit operations and exchange instructions through tcg's interpreter: BT/BTS/BTR/BTC (the
//! bit-string addressing), BSF/BSR, LZCNT/TZCNT/POPCNT, BSWAP, MOVBE, XADD, CMPXCHG,
//! CMPXCHG8B and CMPXCHG16B, with expected values worked out by hand from the SDM.

mod common;

use common::*;
use iced_x86::code_asm::*;
use tandem_target_x86_64::cpu_state::reg;
use tandem_target_x86_64::flags::bit;

const BUF: u64 = 0x2000;

fn go(build: impl FnOnce(&mut CodeAssembler), init: &[(usize, u64)], fl: u64) -> (FlatEnv, End) {
    run(
        |a| {
            build(a);
            a.hlt().unwrap();
        },
        |c| {
            for &(r, v) in init {
                c.gpr[r] = v;
            }
            c.rflags = 2 | fl;
        },
    )
}

fn q(env: &FlatEnv, at: u64) -> u64 {
    let a = at as usize;
    u64::from_le_bytes(env.mem[a..a + 8].try_into().unwrap())
}

#[test]
fn bt_register_offsets_wrap_and_keep_zf() {
    // BT RAX, RCX with RCX = 65: bit 65 mod 64 = 1 of 0b10 is set: CF = 1; ZF preset stays.
    let (env, _) = go(
        |a| a.bt(rax, rcx).unwrap(),
        &[(reg::RAX, 2), (reg::RCX, 65)],
        bit::ZF,
    );
    assert_eq!(arith_flags(&env) & (bit::CF | bit::ZF), bit::CF | bit::ZF);
    // BTC EAX, 31: bit 31 of 0 was clear (CF = 0), now set; upper half zero-extended.
    let (env, _) = go(
        |a| a.btc(eax, 31).unwrap(),
        &[(reg::RAX, 0xffff_0000_0000_0000)],
        bit::CF,
    );
    assert_eq!(gpr(&env, reg::RAX), 0x8000_0000);
    assert_eq!(arith_flags(&env) & bit::CF, 0);
}

#[test]
fn bt_memory_bit_string() {
    // BTS dword [BUF], ECX=100: the dword at BUF + (100 >> 5) * 4 = BUF + 12, bit 100 mod 32
    // = 4: byte BUF+12 becomes 0x10; CF = old bit = 0; a second BTS sees CF = 1.
    let (env, _) = go(
        |a| {
            a.bts(dword_ptr(BUF), ecx).unwrap();
            a.setc(dl).unwrap();
            a.bts(dword_ptr(BUF), ecx).unwrap();
        },
        &[(reg::RCX, 100)],
        0,
    );
    assert_eq!(env.mem[BUF as usize + 12], 0x10);
    assert_eq!(gpr(&env, reg::RDX) & 0xff, 0);
    assert_eq!(arith_flags(&env) & bit::CF, bit::CF);
    // BTR qword [BUF], RCX = -1: the qword at BUF + (-1 >> 6) * 8 = BUF - 8, bit 63.
    let (env, _) = go(
        |a| {
            a.mov(rax, 0x8000_0000_0000_0001u64).unwrap();
            a.mov(qword_ptr(BUF - 8), rax).unwrap();
            a.btr(qword_ptr(BUF), rcx).unwrap();
        },
        &[(reg::RCX, u64::MAX)],
        0,
    );
    assert_eq!(q(&env, BUF - 8), 1);
    assert_eq!(arith_flags(&env) & bit::CF, bit::CF);
}

#[test]
fn bsf_bsr_and_a_zero_source() {
    // Zero source: ZF = 1 and the destination keeps all 64 bits, even with a 32-bit form.
    let old = 0xdead_beef_0000_1111;
    let (env, _) = go(
        |a| a.bsf(eax, ebx).unwrap(),
        &[(reg::RAX, old), (reg::RBX, 0)],
        0,
    );
    assert_eq!(gpr(&env, reg::RAX), old);
    assert_eq!(arith_flags(&env) & bit::ZF, bit::ZF);
    // BSF 0x80 = 7, BSR (1 << 63 | 1) = 63, ZF = 0.
    let (env, _) = go(
        |a| {
            a.bsf(rax, rbx).unwrap();
            a.bsr(rdx, rcx).unwrap();
        },
        &[(reg::RBX, 0x80), (reg::RCX, (1 << 63) | 1)],
        bit::ZF,
    );
    assert_eq!(gpr(&env, reg::RAX), 7);
    assert_eq!(gpr(&env, reg::RDX), 63);
    assert_eq!(arith_flags(&env) & bit::ZF, 0);
}

#[test]
fn lzcnt_tzcnt_popcnt() {
    // LZCNT of 0 (32-bit) = 32: CF = 1, ZF = 0.
    let (env, _) = go(|a| a.lzcnt(eax, ebx).unwrap(), &[(reg::RBX, 0)], 0);
    assert_eq!(gpr(&env, reg::RAX), 32);
    assert_eq!(arith_flags(&env) & (bit::CF | bit::ZF), bit::CF);
    // LZCNT of 0x8000_0000 = 0: ZF = 1, CF = 0.
    let (env, _) = go(
        |a| a.lzcnt(eax, ebx).unwrap(),
        &[(reg::RBX, 0x8000_0000)],
        0,
    );
    assert_eq!(gpr(&env, reg::RAX), 0);
    assert_eq!(arith_flags(&env) & (bit::CF | bit::ZF), bit::ZF);
    // TZCNT of 0 (16-bit) = 16, CF = 1; TZCNT of 8 = 3.
    let (env, _) = go(|a| a.tzcnt(ax, bx).unwrap(), &[(reg::RBX, 0)], 0);
    assert_eq!(gpr(&env, reg::RAX), 16);
    assert_eq!(arith_flags(&env) & bit::CF, bit::CF);
    let (env, _) = go(|a| a.tzcnt(rax, rbx).unwrap(), &[(reg::RBX, 8)], 0);
    assert_eq!(gpr(&env, reg::RAX), 3);
    // POPCNT 0xff = 8 (odd parity of a carry preset cleared): every flag 0.
    let (env, _) = go(
        |a| a.popcnt(rax, rbx).unwrap(),
        &[(reg::RBX, 0xff)],
        bit::CF | bit::PF | bit::SF,
    );
    assert_eq!(gpr(&env, reg::RAX), 8);
    assert_eq!(arith_flags(&env), 0);
    // POPCNT 0 = 0: ZF only.
    let (env, _) = go(|a| a.popcnt(rax, rbx).unwrap(), &[(reg::RBX, 0)], 0);
    assert_eq!(arith_flags(&env), bit::ZF);
}

#[test]
fn bswap_and_movbe() {
    let (env, _) = go(
        |a| {
            a.bswap(eax).unwrap();
            a.bswap(rbx).unwrap();
            a.movbe(dword_ptr(BUF), ecx).unwrap();
            a.movbe(dx, word_ptr(BUF)).unwrap();
        },
        &[
            (reg::RAX, 0xffff_ffff_1234_5678),
            (reg::RBX, 0x0102_0304_0506_0708),
            (reg::RCX, 0xaabb_ccdd),
            (reg::RDX, 0xffff_ffff_ffff_ffff),
        ],
        0,
    );
    assert_eq!(gpr(&env, reg::RAX), 0x7856_3412);
    assert_eq!(gpr(&env, reg::RBX), 0x0807_0605_0403_0201);
    // Memory holds dd cc bb aa reversed: aa bb cc dd.
    assert_eq!(
        &env.mem[BUF as usize..BUF as usize + 4],
        &[0xaa, 0xbb, 0xcc, 0xdd]
    );
    // MOVBE DX, [BUF]: bytes aa bb read big-endian = 0xaabb, merged into RDX.
    assert_eq!(gpr(&env, reg::RDX), 0xffff_ffff_ffff_aabb);
}

#[test]
fn xadd_register_and_memory() {
    // RAX = 5 + 7, RBX = old RAX; flags of the add: 12 = 0b1100, PF = 1.
    let (env, _) = go(
        |a| a.xadd(rax, rbx).unwrap(),
        &[(reg::RAX, 5), (reg::RBX, 7)],
        0,
    );
    assert_eq!((gpr(&env, reg::RAX), gpr(&env, reg::RBX)), (12, 5));
    assert_eq!(arith_flags(&env), bit::PF);
    // [BUF] = 0xffff_ffff + 1 wraps to 0 (CF, ZF, PF, AF), ECX = old 0xffff_ffff.
    let (env, _) = go(
        |a| {
            a.mov(dword_ptr(BUF), -1).unwrap();
            a.xadd(dword_ptr(BUF), ecx).unwrap();
        },
        &[(reg::RCX, 1)],
        0,
    );
    assert_eq!(&env.mem[BUF as usize..BUF as usize + 4], &[0; 4]);
    assert_eq!(gpr(&env, reg::RCX), 0xffff_ffff);
    assert_eq!(arith_flags(&env), bit::CF | bit::ZF | bit::PF | bit::AF);
}

#[test]
fn cmpxchg_success_and_failure() {
    // Success: [BUF] == EAX = 5: [BUF] = ECX = 9, ZF = 1, RAX keeps its upper half.
    let (env, _) = go(
        |a| {
            a.mov(dword_ptr(BUF), 5).unwrap();
            a.cmpxchg(dword_ptr(BUF), ecx).unwrap();
        },
        &[(reg::RAX, 0x7777_0000_0000_0005), (reg::RCX, 9)],
        0,
    );
    assert_eq!(env.mem[BUF as usize], 9);
    assert_eq!(gpr(&env, reg::RAX), 0x7777_0000_0000_0005);
    assert_eq!(arith_flags(&env) & bit::ZF, bit::ZF);
    // Failure: [BUF] = 6 != 5: EAX = 6 (zero-extended), memory keeps 6, ZF = 0; flags as
    // CMP 5, 6: CF = 1, SF = 1, AF = 1 (borrow from bit 4), PF of 0xff = 1.
    let (env, _) = go(
        |a| {
            a.mov(dword_ptr(BUF), 6).unwrap();
            a.cmpxchg(dword_ptr(BUF), ecx).unwrap();
        },
        &[(reg::RAX, 0x7777_0000_0000_0005), (reg::RCX, 9)],
        0,
    );
    assert_eq!(env.mem[BUF as usize], 6);
    assert_eq!(gpr(&env, reg::RAX), 6);
    assert_eq!(arith_flags(&env), bit::CF | bit::SF | bit::AF | bit::PF);
    // Register destination, failure: RBX is not touched at all (upper half kept).
    let (env, _) = go(
        |a| a.cmpxchg(ebx, ecx).unwrap(),
        &[
            (reg::RAX, 1),
            (reg::RBX, 0x5555_0000_0000_0002),
            (reg::RCX, 3),
        ],
        0,
    );
    assert_eq!(gpr(&env, reg::RBX), 0x5555_0000_0000_0002);
    assert_eq!(gpr(&env, reg::RAX), 2);
    // 8-bit success: BL == AL: BL = CL.
    let (env, _) = go(
        |a| a.cmpxchg(bl, cl).unwrap(),
        &[(reg::RAX, 0x42), (reg::RBX, 0x1142), (reg::RCX, 0x99)],
        0,
    );
    assert_eq!(gpr(&env, reg::RBX), 0x1199);
}

#[test]
fn cmpxchg8b_and_16b() {
    // 8B success: EDX:EAX = [BUF] -> [BUF] = ECX:EBX, ZF = 1, other flags kept (CF preset).
    let (env, _) = go(
        |a| {
            a.mov(dword_ptr(BUF), 1).unwrap();
            a.mov(dword_ptr(BUF + 4), 2).unwrap();
            a.cmpxchg8b(qword_ptr(BUF)).unwrap();
        },
        &[(reg::RAX, 1), (reg::RDX, 2), (reg::RBX, 3), (reg::RCX, 4)],
        bit::CF,
    );
    assert_eq!(q(&env, BUF), 0x4_0000_0003);
    assert_eq!(arith_flags(&env), bit::CF | bit::ZF);
    // 16B failure: RDX:RAX = [BUF+8]:[BUF] = 0:7, memory unchanged, ZF = 0.
    let (env, _) = go(
        |a| {
            a.mov(qword_ptr(BUF), 7).unwrap();
            a.cmpxchg16b(xmmword_ptr(BUF)).unwrap();
        },
        &[(reg::RAX, 1), (reg::RDX, 2), (reg::RBX, 3), (reg::RCX, 4)],
        bit::ZF,
    );
    assert_eq!((gpr(&env, reg::RAX), gpr(&env, reg::RDX)), (7, 0));
    assert_eq!((q(&env, BUF), q(&env, BUF + 8)), (7, 0));
    assert_eq!(arith_flags(&env) & bit::ZF, 0);
    // 16B success.
    let (env, _) = go(
        |a| a.cmpxchg16b(xmmword_ptr(BUF)).unwrap(),
        &[(reg::RAX, 0), (reg::RDX, 0), (reg::RBX, 3), (reg::RCX, 4)],
        0,
    );
    assert_eq!((q(&env, BUF), q(&env, BUF + 8)), (3, 4));
    assert_eq!(arith_flags(&env) & bit::ZF, bit::ZF);
}

#[test]
fn cmpxchg16b_misaligned_is_gp0() {
    // BUF + 8 is not 16-byte aligned: #GP(0) at the instruction, memory untouched.
    let (env, end) = go(
        |a| a.cmpxchg16b(xmmword_ptr(BUF + 8)).unwrap(),
        &[(reg::RBX, 3), (reg::RCX, 4)],
        0,
    );
    assert_eq!(end, End::Exception(13, Some(0)));
    assert_eq!(env.ctx.cpu.rip, CODE);
    assert_eq!(q(&env, BUF + 8), 0);
}
