//! String instructions through tcg's interpreter: REP MOVSB forwards and backwards, REPE
//! CMPSB stopping at the first difference, REPNE SCASB, REP STOSQ with and without a count,
//! LODS; one iteration per execution, so the executor re-runs the instruction until done.

mod common;

use common::*;
use iced_x86::code_asm::*;
use tandem_target_x86_64::cpu_state::reg;
use tandem_target_x86_64::flags::bit;

const SRC: u64 = 0x2000;
const DST: u64 = 0x3000;

fn go(
    build: impl FnOnce(&mut CodeAssembler),
    init: &[(usize, u64)],
    mem: &[(u64, &[u8])],
) -> (FlatEnv, End) {
    let owned: Vec<(u64, Vec<u8>)> = mem.iter().map(|(a, d)| (*a, d.to_vec())).collect();
    let mut code = CodeAssembler::new(64).unwrap();
    build(&mut code);
    // Memory contents are stored by the program itself, byte by byte, before `build` runs.
    run(
        move |a| {
            for (at, data) in &owned {
                for (k, byte) in data.iter().enumerate() {
                    a.mov(byte_ptr(at + k as u64), u32::from(*byte)).unwrap();
                }
            }
            for insn in code.instructions() {
                a.add_instruction(*insn).unwrap();
            }
            a.hlt().unwrap();
        },
        |c| {
            for &(r, v) in init {
                c.gpr[r] = v;
            }
        },
    )
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|k| (k as u8).wrapping_mul(7).wrapping_add(1))
        .collect()
}

#[test]
fn rep_movsb_forwards() {
    let data = pattern(100);
    let (env, end) = go(
        |a| {
            a.rep().movsb().unwrap();
        },
        &[(reg::RSI, SRC), (reg::RDI, DST), (reg::RCX, 100)],
        &[(SRC, &data)],
    );
    assert_eq!(end, End::Halted);
    assert_eq!(&env.mem[DST as usize..DST as usize + 100], &data[..]);
    assert_eq!(env.mem[DST as usize + 100], 0, "exactly 100 bytes");
    assert_eq!(gpr(&env, reg::RCX), 0);
    assert_eq!(gpr(&env, reg::RSI), SRC + 100);
    assert_eq!(gpr(&env, reg::RDI), DST + 100);
}

#[test]
fn rep_movsb_backwards_with_df() {
    // DF = 1: start at the last byte; both pointers end one below the first byte.
    let data = pattern(100);
    let (env, end) = go(
        |a| {
            a.std().unwrap();
            a.rep().movsb().unwrap();
        },
        &[(reg::RSI, SRC + 99), (reg::RDI, DST + 99), (reg::RCX, 100)],
        &[(SRC, &data)],
    );
    assert_eq!(end, End::Halted);
    assert_eq!(&env.mem[DST as usize..DST as usize + 100], &data[..]);
    assert_eq!(env.mem[DST as usize - 1], 0);
    assert_eq!(gpr(&env, reg::RSI), SRC - 1);
    assert_eq!(gpr(&env, reg::RDI), DST - 1);
    assert_eq!(gpr(&env, reg::RCX), 0);
}

#[test]
fn repe_cmpsb_stops_at_the_first_difference() {
    // Equal for 5 bytes, then 0x10 vs 0x20 at index 5: six comparisons, RCX = 10 - 6 = 4,
    // both pointers past index 5. Flags of 0x10 - 0x20 = 0xf0: CF = 1 (borrow), SF = 1,
    // ZF = 0, PF = 1 (four ones), OF = 0 ((0x10 ^ 0x20) & (0x10 ^ 0xf0) & 0x80 = 0), AF = 0
    // (0x10 ^ 0x20 ^ 0xf0 = 0xc0: no borrow out of bit 3).
    let a_buf = [1, 2, 3, 4, 5, 0x10, 7, 8, 9, 10];
    let b_buf = [1, 2, 3, 4, 5, 0x20, 7, 8, 9, 10];
    let (env, end) = go(
        |a| {
            a.repe().cmpsb().unwrap();
        },
        &[(reg::RSI, SRC), (reg::RDI, DST), (reg::RCX, 10)],
        &[(SRC, &a_buf), (DST, &b_buf)],
    );
    assert_eq!(end, End::Halted);
    assert_eq!(gpr(&env, reg::RCX), 4);
    assert_eq!(gpr(&env, reg::RSI), SRC + 6);
    assert_eq!(gpr(&env, reg::RDI), DST + 6);
    assert_eq!(arith_flags(&env), bit::CF | bit::SF | bit::PF);
}

#[test]
fn repe_cmpsb_runs_out_on_equal_buffers() {
    // All 4 equal: RCX reaches 0 with ZF = 1.
    let buf = [9, 8, 7, 6];
    let (env, _) = go(
        |a| {
            a.repe().cmpsb().unwrap();
        },
        &[(reg::RSI, SRC), (reg::RDI, DST), (reg::RCX, 4)],
        &[(SRC, &buf), (DST, &buf)],
    );
    assert_eq!(gpr(&env, reg::RCX), 0);
    assert_eq!(arith_flags(&env) & bit::ZF, bit::ZF);
    assert_eq!(gpr(&env, reg::RSI), SRC + 4);
}

#[test]
fn repne_scasb_finds_the_terminator() {
    // strlen("hello"): RCX = -1 - 6 = -7 after scanning 6 bytes (the NUL included);
    // RDI = DST + 6; ZF = 1.
    let (env, _) = go(
        |a| {
            a.repne().scasb().unwrap();
        },
        &[(reg::RAX, 0), (reg::RDI, DST), (reg::RCX, u64::MAX)],
        &[(DST, b"hello\0")],
    );
    assert_eq!(gpr(&env, reg::RCX), (-7i64) as u64);
    assert_eq!(!gpr(&env, reg::RCX) - 1, 5);
    assert_eq!(gpr(&env, reg::RDI), DST + 6);
    assert_eq!(arith_flags(&env) & bit::ZF, bit::ZF);
}

#[test]
fn rep_stosq_with_and_without_a_count() {
    // RCX = 0: nothing stored, RDI unchanged, execution continues after the instruction.
    let (env, end) = go(
        |a| {
            a.rep().stosq().unwrap();
            a.mov(ebx, 1).unwrap();
        },
        &[(reg::RAX, u64::MAX), (reg::RDI, DST), (reg::RCX, 0)],
        &[],
    );
    assert_eq!(end, End::Halted);
    assert_eq!(gpr(&env, reg::RDI), DST);
    assert_eq!(gpr(&env, reg::RBX), 1);
    assert_eq!(env.mem[DST as usize], 0);
    // RCX = 3: 24 bytes of RAX.
    let (env, _) = go(
        |a| {
            a.rep().stosq().unwrap();
        },
        &[
            (reg::RAX, 0x0102_0304_0506_0708),
            (reg::RDI, DST),
            (reg::RCX, 3),
        ],
        &[],
    );
    assert_eq!(gpr(&env, reg::RDI), DST + 24);
    assert_eq!(env.mem[DST as usize + 16], 0x08);
    assert_eq!(env.mem[DST as usize + 24], 0);
}

#[test]
fn lods_and_stos_without_prefix() {
    // LODSW loads 0x2211 into AX (RAX upper kept), RSI += 2; STOSD stores EAX at RDI.
    let (env, _) = go(
        |a| {
            a.lodsw().unwrap();
            a.stosd().unwrap();
        },
        &[
            (reg::RAX, 0xaaaa_bbbb_cccc_dddd),
            (reg::RSI, SRC),
            (reg::RDI, DST),
            (reg::RCX, 5),
        ],
        &[(SRC, &[0x11, 0x22])],
    );
    assert_eq!(gpr(&env, reg::RAX), 0xaaaa_bbbb_cccc_2211);
    assert_eq!(gpr(&env, reg::RSI), SRC + 2);
    assert_eq!(gpr(&env, reg::RDI), DST + 4);
    assert_eq!(gpr(&env, reg::RCX), 5, "no prefix: RCX untouched");
    assert_eq!(
        &env.mem[DST as usize..DST as usize + 4],
        &[0x11, 0x22, 0xcc, 0xcc]
    );
}

#[test]
fn a_fault_mid_string_keeps_progress_and_rip() {
    // REP MOVSB across the end of memory: the element at the edge faults with RIP at the
    // instruction and RCX/RSI/RDI counting the bytes already copied.
    let (env, end) = go(
        |a| {
            a.rep().movsb().unwrap();
        },
        &[(reg::RSI, SRC), (reg::RDI, (MEM as u64) - 2), (reg::RCX, 5)],
        &[],
    );
    assert_eq!(end, End::Exception(14, Some(2)));
    assert_eq!(env.ctx.cpu.rip, CODE);
    assert_eq!(gpr(&env, reg::RCX), 3);
    assert_eq!(gpr(&env, reg::RDI), MEM as u64);
}
