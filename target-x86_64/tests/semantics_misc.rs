//! LAHF/SAHF, PUSHF/POPF (CPL 0 and CPL 3), ENTER/LEAVE, LOOP/LOOPE/LOOPNE/JRCXZ, XLAT, UD2,
//! PAUSE and the multi-byte NOP through tcg's interpreter, expected values by hand from the SDM.

mod common;

use common::*;
use iced_x86::code_asm::*;
use tandem_target_x86_64::cpu_state::{bits, reg, sreg};
use tandem_target_x86_64::flags::bit;

const IF: u64 = bit::IF;
const DF: u64 = bit::DF;
const IOPL3: u64 = 3 << 12;
const RF: u64 = 1 << 16;
const VM: u64 = 1 << 17;

#[test]
fn lahf_and_sahf() {
    // LAHF: AH = SF | ZF | bit 1 | CF = 0x80 | 0x40 | 0x02 | 0x01 = 0xc3 (OF is not in AH).
    // SAHF with AH = 0x15 (AF | PF | CF): those three set, SF/ZF cleared, OF kept.
    let (env, end) = run(
        |a| {
            a.lahf().unwrap();
            a.mov(bl, ah).unwrap();
            a.mov(ah, 0x15).unwrap();
            a.sahf().unwrap();
            a.hlt().unwrap();
        },
        |c| c.rflags = 2 | bit::SF | bit::ZF | bit::CF | bit::OF,
    );
    assert_eq!(end, End::Halted);
    assert_eq!(gpr(&env, reg::RBX) & 0xff, 0xc3);
    assert_eq!(arith_flags(&env), bit::AF | bit::PF | bit::CF | bit::OF);
}

#[test]
fn pushf_popf_at_cpl0() {
    // POPFQ at CPL 0 takes every modifiable flag (IOPL and IF included), clears RF and keeps
    // VM: 0x3_3ed5 -> 0x3ed5 | 2 (RF and VM dropped, the fixed bit set).
    let value =
        VM | RF | IOPL3 | IF | DF | bit::OF | bit::SF | bit::ZF | bit::AF | bit::PF | bit::CF;
    let (env, end) = run(
        |a| {
            a.push(rax).unwrap();
            a.popfq().unwrap();
            a.pushfq().unwrap();
            a.pop(rbx).unwrap();
            a.hlt().unwrap();
        },
        |c| c.gpr[reg::RAX] = value,
    );
    assert_eq!(end, End::Halted);
    let expect = 2 | IOPL3 | IF | DF | bit::OF | bit::SF | bit::ZF | bit::AF | bit::PF | bit::CF;
    assert_eq!(env.ctx.cpu.rflags, expect);
    assert_eq!(gpr(&env, reg::RBX), expect, "PUSHFQ pushes the same image");
    assert_eq!(gpr(&env, reg::RSP), STACK_TOP);
}

#[test]
fn popf_at_cpl3_keeps_if_and_iopl() {
    // CPL 3 > IOPL 0: IF and IOPL stay 0; the arithmetic flags and DF change.
    let (env, end) = run(
        |a| {
            a.push(rax).unwrap();
            a.popfq().unwrap();
            a.hlt().unwrap();
        },
        |c| {
            c.cr0 |= bits::CR0_PE;
            c.seg[sreg::SS].dpl = 3;
            c.gpr[reg::RAX] = IOPL3 | IF | DF | bit::CF;
        },
    );
    // HLT at CPL 3 would be #GP on hardware; this executor only interprets, so it halts.
    assert_eq!(end, End::Halted);
    assert_eq!(env.ctx.cpu.rflags, 2 | DF | bit::CF);
}

#[test]
fn popfw_changes_only_the_low_16_bits() {
    // POPF (16-bit) with 0x0001 at CPL 0: CF set, the low word otherwise cleared; bit 21 (ID)
    // preset above the word stays.
    let (env, _) = run(
        |a| {
            a.push(ax).unwrap();
            a.popf().unwrap();
            a.hlt().unwrap();
        },
        |c| {
            c.gpr[reg::RAX] = 1;
            c.rflags = 2 | (1 << 21) | IF;
        },
    );
    assert_eq!(env.ctx.cpu.rflags, 2 | (1 << 21) | bit::CF);
}

#[test]
fn enter_and_leave() {
    // ENTER 16, 0: push RBP (at STACK_TOP - 8), RBP = STACK_TOP - 8, RSP = RBP - 16.
    // LEAVE: RSP = RBP + 8 = STACK_TOP, RBP = the pushed value.
    let (env, _) = run(
        |a| {
            a.enter(16u32, 0u32).unwrap();
            a.mov(rcx, rbp).unwrap();
            a.mov(rdx, rsp).unwrap();
            a.leave().unwrap();
            a.hlt().unwrap();
        },
        |c| c.gpr[reg::RBP] = 0x1111,
    );
    assert_eq!(gpr(&env, reg::RCX), STACK_TOP - 8);
    assert_eq!(gpr(&env, reg::RDX), STACK_TOP - 24);
    assert_eq!(gpr(&env, reg::RBP), 0x1111);
    assert_eq!(gpr(&env, reg::RSP), STACK_TOP);
}

#[test]
fn enter_nested_level_2() {
    // ENTER 0, 2 with RBP = 0x7_0000 and [0x7_0000 - 8] = 0xabc: slots below STACK_TOP are
    // old RBP, the copied outer pointer 0xabc, then the new frame pointer STACK_TOP - 8.
    let (env, _) = run(
        |a| {
            a.mov(rax, 0xabcu64).unwrap();
            a.mov(qword_ptr(0x7_0000 - 8), rax).unwrap();
            a.enter(0u32, 2u32).unwrap();
            a.hlt().unwrap();
        },
        |c| c.gpr[reg::RBP] = 0x7_0000,
    );
    let at = |o: u64| u64::from_le_bytes(env.mem[o as usize..o as usize + 8].try_into().unwrap());
    assert_eq!(at(STACK_TOP - 8), 0x7_0000);
    assert_eq!(at(STACK_TOP - 16), 0xabc);
    assert_eq!(at(STACK_TOP - 24), STACK_TOP - 8);
    assert_eq!(gpr(&env, reg::RBP), STACK_TOP - 8);
    assert_eq!(gpr(&env, reg::RSP), STACK_TOP - 24);
}

#[test]
fn loop_counts_down() {
    // RAX = 5 + 4 + 3 + 2 + 1 = 15; RCX ends at 0; LOOP leaves the flags alone (ZF from the
    // XOR stays set).
    let (env, _) = run(
        |a| {
            let mut l = a.create_label();
            a.xor(eax, eax).unwrap();
            a.mov(ecx, 5).unwrap();
            a.set_label(&mut l).unwrap();
            a.lea(rax, ptr(rax + rcx)).unwrap();
            a.loop_(l).unwrap();
            a.hlt().unwrap();
        },
        |_| {},
    );
    assert_eq!(gpr(&env, reg::RAX), 15);
    assert_eq!(gpr(&env, reg::RCX), 0);
    assert_eq!(arith_flags(&env) & bit::ZF, bit::ZF);
}

#[test]
fn loope_loopne_and_jrcxz() {
    // LOOPNE while [RSI] != 0: bytes 3, 2, 0 -> stops on the zero after 3 rounds, RCX = 7.
    // JRCXZ with RCX = 0 jumps over the `mov ebx, 1`.
    let (env, _) = run(
        |a| {
            let mut l = a.create_label();
            let mut skip = a.create_label();
            a.mov(byte_ptr(0x2000), 3).unwrap();
            a.mov(byte_ptr(0x2001), 2).unwrap();
            a.mov(esi, 0x2000).unwrap();
            a.mov(ecx, 10).unwrap();
            a.set_label(&mut l).unwrap();
            a.lodsb().unwrap();
            a.test(al, al).unwrap();
            a.loopne(l).unwrap();
            a.mov(rdx, rcx).unwrap();
            a.xor(ecx, ecx).unwrap();
            a.jrcxz(skip).unwrap();
            a.mov(ebx, 1).unwrap();
            a.set_label(&mut skip).unwrap();
            a.hlt().unwrap();
        },
        |_| {},
    );
    assert_eq!(gpr(&env, reg::RDX), 7);
    assert_eq!(gpr(&env, reg::RBX), 0);
}

#[test]
fn xlat_reads_the_table() {
    let (env, _) = run(
        |a| {
            a.mov(byte_ptr(0x2003), 0x5a).unwrap();
            a.xlatb().unwrap();
            a.hlt().unwrap();
        },
        |c| {
            c.gpr[reg::RBX] = 0x2000;
            c.gpr[reg::RAX] = 0x1103;
        },
    );
    assert_eq!(gpr(&env, reg::RAX), 0x115a);
}

#[test]
fn ud2_raises_ud_at_itself() {
    let (env, end) = run(
        |a| {
            a.pause().unwrap(); // 2 bytes
            a.nop_1(dword_ptr(rax)).unwrap(); // 0f 1f 00: 3 bytes
            a.ud2().unwrap();
            a.hlt().unwrap();
        },
        |_| {},
    );
    assert_eq!(end, End::Exception(6, None));
    assert_eq!(env.ctx.cpu.rip, CODE + 5);
}
