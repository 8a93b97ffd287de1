//! The x86 semantics run by tcg's interpreter over a flat 1 MiB memory (no paging, no devices):
//! hand-checked results for each family, flags at their boundaries, precise faults.

mod common;

use common::*;
use iced_x86::code_asm::*;
use tandem_target_x86_64::cpu_state::reg;
use tandem_target_x86_64::flags::bit;

#[test]
fn add_wraps_with_carry_and_zero() {
    let (env, end) = run(
        |a| {
            a.add(rax, rbx).unwrap();
            a.hlt().unwrap();
        },
        |c| {
            c.gpr[reg::RAX] = u64::MAX;
            c.gpr[reg::RBX] = 1;
        },
    );
    assert_eq!(end, End::Halted);
    assert_eq!(gpr(&env, reg::RAX), 0);
    assert_eq!(arith_flags(&env), bit::CF | bit::ZF | bit::PF | bit::AF);
    assert_eq!(env.ctx.cpu.rip, CODE + 4, "RIP is past the HLT");
}

#[test]
fn counted_loop_sums() {
    let (env, end) = run(
        |a| {
            let mut l = a.create_label();
            a.mov(ecx, 10).unwrap();
            a.xor(eax, eax).unwrap();
            a.set_label(&mut l).unwrap();
            a.add(eax, ecx).unwrap();
            a.dec(ecx).unwrap();
            a.jnz(l).unwrap();
            a.hlt().unwrap();
        },
        |_| {},
    );
    assert_eq!(end, End::Halted);
    assert_eq!(gpr(&env, reg::RAX), 55);
    assert_ne!(env.ctx.cpu.rflags & bit::ZF, 0);
}

#[test]
fn call_ret_push_pop_use_the_stack() {
    let (env, end) = run(
        |a| {
            let mut f = a.create_label();
            a.mov(rax, 0x1122_3344_5566_7788u64).unwrap();
            a.push(rax).unwrap();
            a.call(f).unwrap();
            a.pop(rbx).unwrap();
            a.hlt().unwrap();
            a.set_label(&mut f).unwrap();
            a.mov(rcx, qword_ptr(rsp + 8)).unwrap();
            a.ret().unwrap();
        },
        |_| {},
    );
    assert_eq!(end, End::Halted);
    assert_eq!(gpr(&env, reg::RBX), 0x1122_3344_5566_7788);
    assert_eq!(gpr(&env, reg::RCX), 0x1122_3344_5566_7788);
    assert_eq!(gpr(&env, reg::RSP), STACK_TOP);
}

#[test]
fn memory_operands_scale_index_and_extend() {
    let (env, end) = run(
        |a| {
            a.mov(dword_ptr(rsi + rcx * 4 + 8), eax).unwrap();
            a.movzx(edx, byte_ptr(rsi + rcx * 4 + 11)).unwrap();
            a.movsx(rdi, byte_ptr(rsi + rcx * 4 + 11)).unwrap();
            a.movsxd(r8, dword_ptr(rsi + rcx * 4 + 8)).unwrap();
            a.lea(r9d, ptr(rsi + rcx * 4 + 8)).unwrap();
            a.hlt().unwrap();
        },
        |c| {
            c.gpr[reg::RAX] = 0x8123_4567;
            c.gpr[reg::RSI] = 0x2_0000;
            c.gpr[reg::RCX] = 3;
        },
    );
    assert_eq!(end, End::Halted);
    assert_eq!(&env.mem[0x2_0014..0x2_0018], &0x8123_4567u32.to_le_bytes());
    assert_eq!(gpr(&env, reg::RDX), 0x81);
    assert_eq!(gpr(&env, reg::RDI), 0xffff_ffff_ffff_ff81);
    assert_eq!(gpr(&env, 8), 0xffff_ffff_8123_4567);
    assert_eq!(gpr(&env, 9), 0x2_0014);
}

#[test]
fn register_write_widths() {
    let (env, _) = run(
        |a| {
            a.mov(eax, 0x1234_5678).unwrap(); // zero-extends
            a.mov(ah, 0xab).unwrap(); // second byte only
            a.mov(bx, 0xcdef).unwrap(); // low word only
            a.hlt().unwrap();
        },
        |c| {
            c.gpr[reg::RAX] = u64::MAX;
            c.gpr[reg::RBX] = u64::MAX;
        },
    );
    assert_eq!(gpr(&env, reg::RAX), 0x1234_ab78);
    assert_eq!(gpr(&env, reg::RBX), 0xffff_ffff_ffff_cdef);
}

#[test]
fn adc_sbb_chain_128_bit() {
    let (env, _) = run(
        |a| {
            // (rdx:rax) += (rcx:rbx); then (r9:r8) = (rdx:rax) - (rcx:rbx)
            a.add(rax, rbx).unwrap();
            a.adc(rdx, rcx).unwrap();
            a.mov(r8, rax).unwrap();
            a.mov(r9, rdx).unwrap();
            a.sub(r8, rbx).unwrap();
            a.sbb(r9, rcx).unwrap();
            a.hlt().unwrap();
        },
        |c| {
            c.gpr[reg::RAX] = u64::MAX;
            c.gpr[reg::RDX] = 1;
            c.gpr[reg::RBX] = 2;
            c.gpr[reg::RCX] = 3;
        },
    );
    assert_eq!(gpr(&env, reg::RAX), 1);
    assert_eq!(gpr(&env, reg::RDX), 5);
    assert_eq!(gpr(&env, 8), u64::MAX);
    assert_eq!(gpr(&env, 9), 1);
}

#[test]
fn signed_and_unsigned_conditions() {
    let (env, _) = run(
        |a| {
            a.cmp(eax, ebx).unwrap(); // -1 vs 1
            a.setl(cl).unwrap(); // signed less: 1
            a.setb(dl).unwrap(); // unsigned below: 0
            a.seta(sil).unwrap(); // unsigned above: 1
            a.cmovg(r8d, ebx).unwrap(); // not taken: r8d keeps 7 but is zero-extended
            a.cmovae(r9, rbx).unwrap(); // taken
            a.hlt().unwrap();
        },
        |c| {
            c.gpr[reg::RAX] = 0xffff_ffff;
            c.gpr[reg::RBX] = 1;
            c.gpr[8] = 0xdead_0000_0000_0007;
        },
    );
    assert_eq!(gpr(&env, reg::RCX) & 0xff, 1);
    assert_eq!(gpr(&env, reg::RDX) & 0xff, 0);
    assert_eq!(gpr(&env, reg::RSI) & 0xff, 1);
    assert_eq!(gpr(&env, 8), 7);
    assert_eq!(gpr(&env, 9), 1);
}

#[test]
fn unary_ops_and_sign_extension() {
    let (env, _) = run(
        |a| {
            a.neg(rax).unwrap();
            a.not(rbx).unwrap();
            a.inc(cl).unwrap(); // 0x7f -> 0x80: OF
            a.cqo().unwrap();
            a.hlt().unwrap();
        },
        |c| {
            c.gpr[reg::RAX] = 5;
            c.gpr[reg::RBX] = 0xf0;
            c.gpr[reg::RCX] = 0x7f;
        },
    );
    assert_eq!(gpr(&env, reg::RAX), 5u64.wrapping_neg());
    assert_eq!(gpr(&env, reg::RBX), !0xf0);
    assert_eq!(gpr(&env, reg::RCX), 0x80);
    assert_eq!(gpr(&env, reg::RDX), u64::MAX, "cqo of a negative rax");
    // NEG's CF (5 != 0) survives INC, which keeps CF.
    assert_eq!(
        arith_flags(&env) & (bit::OF | bit::CF | bit::SF),
        bit::OF | bit::CF | bit::SF
    );
}

#[test]
fn flag_instructions() {
    let (env, _) = run(
        |a| {
            a.stc().unwrap();
            a.cmc().unwrap();
            a.cmc().unwrap();
            a.std().unwrap();
            a.hlt().unwrap();
        },
        |_| {},
    );
    assert_eq!(env.ctx.cpu.rflags & (bit::CF | bit::DF), bit::CF | bit::DF);
}

#[test]
fn a_faulting_load_is_precise() {
    let (env, end) = run(
        |a| {
            a.mov(ebx, 1).unwrap();
            a.mov(rax, qword_ptr(0x20_0000)).unwrap();
            a.mov(ebx, 2).unwrap();
            a.hlt().unwrap();
        },
        |_| {},
    );
    assert_eq!(end, End::Exception(14, Some(0)));
    assert_eq!(gpr(&env, reg::RBX), 1);
    assert_eq!(
        env.ctx.cpu.rip,
        CODE + 5,
        "RIP is the faulting instruction's"
    );
}

#[test]
fn a_faulting_push_leaves_rsp_alone() {
    let (env, end) = run(
        |a| {
            a.push(rax).unwrap();
            a.hlt().unwrap();
        },
        |c| c.gpr[reg::RSP] = 0x20_0000,
    );
    assert_eq!(end, End::Exception(14, Some(2)));
    assert_eq!(gpr(&env, reg::RSP), 0x20_0000);
}

#[test]
fn untranslated_instructions_are_reported() {
    let (env, end) = run(
        |a| {
            a.cpuid().unwrap();
            a.hlt().unwrap();
        },
        |_| {},
    );
    assert_eq!(end, End::Undefined);
    assert_eq!(env.ctx.cpu.rip, CODE);
}
