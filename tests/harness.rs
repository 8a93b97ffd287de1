//! The instruction harness on every engine that runs here: snippets written with
//! CodeAssembler, their final registers, flags, memory and exceptions checked.

mod common;

use common::*;
use iced_x86::code_asm::*;
use iced_x86::BlockEncoderOptions;
use tandem::harness::{run_snippet, Harness, Snippet, SnippetEnd, SnippetResult, CODE_ADDR};
use tandem::AccelKind;
use tandem_target_x86_64::cpu_state::reg;

fn asm(build: impl FnOnce(&mut CodeAssembler)) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    build(&mut a);
    a.assemble(CODE_ADDR).unwrap()
}

/// Runs `snippet` on KVM, or reports the test skipped (for what only the CPU runs: SSE,
/// timeouts, CPL0 snippets).
fn run(test: &str, snippet: &Snippet) -> Option<SnippetResult> {
    if let Err(why) = kvm_usable() {
        skipped(test, &why);
        return None;
    }
    Some(run_snippet(AccelKind::Kvm, snippet).unwrap())
}

fn on_tier(tier: tandem_accel::Tier, snippet: &Snippet) -> SnippetResult {
    let config = tandem_accel::TcgConfig {
        tier,
        ..Default::default()
    };
    Harness::with_tcg(AccelKind::Tcg, config)
        .unwrap()
        .run(snippet)
        .unwrap()
}

fn assert_same(what: &str, a: &SnippetResult, b: &SnippetResult) {
    assert_eq!(a.end, b.end, "{what}: end");
    assert_eq!(a.state.gpr, b.state.gpr, "{what}: registers");
    assert_eq!(a.state.rip, b.state.rip, "{what}: rip");
    assert_eq!(a.state.rflags, b.state.rflags, "{what}: rflags");
    assert_eq!(a.memory, b.memory, "{what}: memory");
}

/// Runs `snippet` on the JIT's two tiers and, where /dev/kvm works, on the CPU: all must
/// agree; the result is the CPU's (or the JIT's without KVM).
fn run_all(test: &str, snippet: &Snippet) -> SnippetResult {
    let interp = on_tier(tandem_accel::Tier::Interp, snippet);
    let jit = on_tier(tandem_accel::Tier::Jit, snippet);
    assert_same(&format!("{test}: interp vs jit"), &interp, &jit);
    match kvm_usable() {
        Ok(()) => {
            let cpu = run_snippet(AccelKind::Kvm, snippet).unwrap();
            assert_same(&format!("{test}: kvm vs tcg"), &cpu, &interp);
            cpu
        }
        Err(why) => {
            skipped(&format!("{test} [kvm oracle]"), &why);
            interp
        }
    }
}

const CF: u64 = 1;
const ZF: u64 = 1 << 6;

#[test]
fn add_with_carry_out() {
    let code = asm(|a| a.add(rax, rbx).unwrap());
    let s = Snippet::new(code.clone())
        .with_gpr(reg::RAX, u64::MAX)
        .with_gpr(reg::RBX, 1);
    let r = run_all("add_with_carry_out", &s);
    assert_eq!(r.end, SnippetEnd::Completed, "{}", r.state.dump());
    assert_eq!(r.state.gpr[reg::RAX], 0);
    assert_eq!(r.state.rflags & (CF | ZF), CF | ZF);
    assert_eq!(r.state.rip, CODE_ADDR + code.len() as u64);
    assert_eq!(r.state.cpl(), 3);
}

#[test]
fn loop_of_n_iterations() {
    // rcx counts down from 1000, rax counts up.
    let code = asm(|a| {
        let mut top = a.create_label();
        a.mov(ecx, 1000u32).unwrap();
        a.xor(eax, eax).unwrap();
        a.set_label(&mut top).unwrap();
        a.inc(rax).unwrap();
        a.dec(rcx).unwrap();
        a.jnz(top).unwrap();
    });
    let r = run_all("loop_of_n_iterations", &Snippet::new(code));
    assert_eq!(r.end, SnippetEnd::Completed);
    assert_eq!((r.state.gpr[reg::RAX], r.state.gpr[reg::RCX]), (1000, 0));
    assert_ne!(r.state.rflags & ZF, 0);
}

#[test]
fn store_to_a_data_region_is_read_back() {
    const DATA: u64 = 0x50_0000;
    let code = asm(|a| {
        a.mov(rax, qword_ptr(rdi)).unwrap();
        a.add(rax, 1).unwrap();
        a.mov(qword_ptr(rdi + 8), rax).unwrap();
        a.push(rax).unwrap();
    });
    let s = Snippet::new(code)
        .with_gpr(reg::RDI, DATA)
        .with_memory(DATA, 41u64.to_le_bytes().repeat(2));
    let r = run_all("store_to_a_data_region_is_read_back", &s);
    assert_eq!(r.end, SnippetEnd::Completed);
    let (addr, bytes) = &r.memory[0];
    assert_eq!(*addr, DATA);
    assert_eq!(&bytes[8..], &42u64.to_le_bytes());
    assert_eq!(r.state.gpr[reg::RSP], tandem::harness::STACK_TOP - 8);
}

#[test]
fn division_by_zero_reports_de_at_the_div() {
    let mut div_at = 0;
    let mut a = CodeAssembler::new(64).unwrap();
    let mut l = a.create_label();
    a.mov(eax, 7u32).unwrap();
    a.set_label(&mut l).unwrap();
    a.div(rcx).unwrap();
    a.nop().unwrap();
    let res = a
        .assemble_options(
            CODE_ADDR,
            BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
        )
        .unwrap();
    if let Ok(ip) = res.label_ip(&l) {
        div_at = ip;
    }
    let code = res.inner.code_buffer;
    let r = run_all(
        "division_by_zero_reports_de_at_the_div",
        &Snippet::new(code),
    );
    assert_eq!(
        r.end,
        SnippetEnd::Exception {
            vector: 0,
            error_code: None,
            cr2: None
        }
    );
    assert_eq!(r.state.rip, div_at);
    assert_eq!(r.state.gpr[reg::RAX], 7);
    assert_eq!(r.state.cpl(), 3);
}

#[test]
fn page_fault_reports_cr2_and_error_code() {
    const UNMAPPED: u64 = 0x1000_0000;
    let code = asm(|a| {
        a.mov(rax, UNMAPPED).unwrap();
        a.mov(qword_ptr(rax), rbx).unwrap();
    });
    let r = run_all("page_fault_reports_cr2_and_error_code", &Snippet::new(code));
    // Not present (P=0), write (W=2), user (U=4).
    assert_eq!(
        r.end,
        SnippetEnd::Exception {
            vector: 14,
            error_code: Some(6),
            cr2: Some(UNMAPPED)
        }
    );
    assert_eq!(r.state.rip, CODE_ADDR + 10);
    // The harness's own page is protected from the snippet: a read is a protection fault.
    let code = asm(|a| a.mov(rax, qword_ptr(0x8000u64)).unwrap());
    let r = run_all("page_fault_on_the_harness_page", &Snippet::new(code));
    assert_eq!(
        r.end,
        SnippetEnd::Exception {
            vector: 14,
            error_code: Some(5),
            cr2: Some(0x8000)
        }
    );
}

#[test]
fn ud2_gives_ud() {
    let code = asm(|a| {
        a.nop().unwrap();
        a.ud2().unwrap();
    });
    let r = run_all("ud2_gives_ud", &Snippet::new(code));
    assert_eq!(
        r.end,
        SnippetEnd::Exception {
            vector: 6,
            error_code: None,
            cr2: None
        }
    );
    assert_eq!(r.state.rip, CODE_ADDR + 1);
}

/// The state rebuilt from an exception frame is the state the snippet had: the same snippet
/// ending normally and ending on `ud2` agree on everything but RIP.
#[test]
fn exception_state_equals_the_snippet_state() {
    let body = |a: &mut CodeAssembler| {
        for (i, r) in [
            rax, rcx, rdx, rbx, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15,
        ]
        .into_iter()
        .enumerate()
        {
            a.mov(r, 0x1111_1111_1111_1111u64 * (i as u64 + 1)).unwrap();
        }
        a.sub(rsp, 0x48).unwrap();
        a.stc().unwrap();
        a.std().unwrap();
        a.movq(xmm5, rbx).unwrap();
    };
    let plain = asm(body);
    let faulting = asm(|a| {
        body(a);
        a.ud2().unwrap();
    });
    let Some(done) = run(
        "exception_state_equals_the_snippet_state",
        &Snippet::new(plain.clone()),
    ) else {
        return;
    };
    let fault = run_snippet(AccelKind::Kvm, &Snippet::new(faulting)).unwrap();
    assert_eq!(done.end, SnippetEnd::Completed);
    assert!(matches!(fault.end, SnippetEnd::Exception { vector: 6, .. }));
    let (a, b) = (done.state, fault.state);
    assert_eq!(a.gpr, b.gpr);
    assert_eq!(a.gpr[reg::RSP], tandem::harness::STACK_TOP - 0x48);
    assert_eq!(a.rflags, b.rflags);
    assert_eq!(a.rflags & (CF | 1 << 10), CF | 1 << 10);
    assert_eq!(a.fx.xmm(5), b.fx.xmm(5));
    assert_eq!(a.seg, b.seg);
    assert_eq!((a.rip, b.rip), (CODE_ADDR + plain.len() as u64, a.rip));
}

#[test]
fn sse_addps_reads_back_xmm0() {
    let code = asm(|a| a.addps(xmm0, xmm1).unwrap());
    let mut s = Snippet::new(code);
    let lanes = |v: [f32; 4]| -> [u8; 16] {
        let mut b = [0u8; 16];
        for (i, f) in v.iter().enumerate() {
            b[4 * i..4 * i + 4].copy_from_slice(&f.to_le_bytes());
        }
        b
    };
    s.initial.fx.set_xmm(0, lanes([1.0, 2.0, 3.0, 4.0]));
    s.initial.fx.set_xmm(1, lanes([0.5, 0.25, -3.0, 1e30]));
    let Some(r) = run("sse_addps_reads_back_xmm0", &s) else {
        return;
    };
    assert_eq!(r.end, SnippetEnd::Completed);
    assert_eq!(r.state.fx.xmm(0), lanes([1.5, 2.25, 0.0, 1e30 + 4.0]));
    assert_eq!(r.state.fx.mxcsr() & 0xffc0, 0x1f80);
}

#[test]
fn popcnt_runs_natively() {
    let code = asm(|a| a.popcnt(rax, rbx).unwrap());
    let s = Snippet::new(code).with_gpr(reg::RBX, 0xf0f0_0000_0000_0001);
    let r = run_all("popcnt_runs_natively", &s);
    assert_eq!(r.end, SnippetEnd::Completed);
    assert_eq!(r.state.gpr[reg::RAX], 9);
}

#[test]
fn endless_loop_times_out() {
    let code = asm(|a| {
        let mut l = a.create_label();
        a.set_label(&mut l).unwrap();
        a.jmp(l).unwrap();
    });
    let mut s = Snippet::new(code);
    s.limits.timeout = std::time::Duration::from_millis(50);
    let Some(r) = run("endless_loop_times_out", &s) else {
        return;
    };
    assert_eq!(r.end, SnippetEnd::Timeout);
    assert_eq!(r.state.rip, CODE_ADDR);
}

#[test]
fn kernel_mode_runs_at_cpl0() {
    let code = asm(|a| {
        a.mov(rax, cr0).unwrap();
        a.hlt().unwrap();
    });
    let mut s = Snippet::new(code);
    s.mode = tandem::harness::SnippetMode::Kernel64;
    let Some(r) = run("kernel_mode_runs_at_cpl0", &s) else {
        return;
    };
    assert_eq!(r.end, SnippetEnd::Halted);
    assert_eq!(r.state.cpl(), 0);
    assert_ne!(r.state.gpr[reg::RAX] & 1, 0);
}

#[test]
fn bad_snippets_are_errors_not_panics() {
    let bad = [
        Snippet::new(vec![0x90]).with_memory(0x1000, vec![0]),
        Snippet::new(vec![0x90]).with_memory(u64::MAX - 1, vec![0; 4]),
        Snippet::new(vec![0x90]).with_memory(CODE_ADDR, vec![0]),
        Snippet {
            initial: tandem::harness::SnippetRegs {
                rflags: 0x3000,
                ..Default::default()
            },
            ..Snippet::new(vec![0x90])
        },
    ];
    for s in &bad {
        assert!(matches!(
            run_snippet(AccelKind::Kvm, s),
            Err(tandem::harness::HarnessError::BadSnippet(_))
        ));
    }
}

#[test]
fn one_harness_runs_many_snippets() {
    if let Err(why) = kvm_usable() {
        skipped("one_harness_runs_many_snippets", &why);
        return;
    }
    let mut h = Harness::new(AccelKind::Kvm).unwrap();
    let code = asm(|a| a.add(rax, rbx).unwrap());
    let runs = 200u64;
    let start = std::time::Instant::now();
    for i in 0..runs {
        let s = Snippet::new(code.clone())
            .with_gpr(reg::RAX, i)
            .with_gpr(reg::RBX, 1);
        let r = h.run(&s).unwrap();
        assert_eq!(r.state.gpr[reg::RAX], i + 1);
    }
    let reused = start.elapsed();
    let start = std::time::Instant::now();
    for _ in 0..20 {
        run_snippet(AccelKind::Kvm, &Snippet::new(code.clone())).unwrap();
    }
    let fresh = start.elapsed();
    println!(
        "harness: {:.0} snippets/s on one Harness, {:.0} snippets/s with run_snippet",
        runs as f64 / reused.as_secs_f64(),
        20.0 / fresh.as_secs_f64()
    );
}

#[test]
fn cli_exec_prints_registers() {
    if let Err(why) = kvm_usable() {
        skipped("cli_exec_prints_registers", &why);
        return;
    }
    let out = tandem(
        &[
            "exec",
            "--code",
            "48 01 d8",
            "--reg",
            "rax=0xffffffffffffffff",
            "--reg",
            "rbx=1",
        ],
        b"",
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(text.contains("end: completed"), "{text}");
    assert!(
        text.contains("rax=0000000000000000 rbx=0000000000000001"),
        "{text}"
    );
    assert!(text.contains("CF=1 PF=1 AF=1 ZF=1 SF=0"), "{text}");
    let out = tandem(&["exec", "--code", "0f0b", "--accel", "both"], b"");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(text.contains("engine: kvm"), "{text}");
    assert!(text.contains("engine: tcg"), "{text}");
    assert!(text.contains("#UD (vector 6)"), "{text}");
    assert!(text.contains("differences kvm vs tcg: none"), "{text}");
}

#[test]
fn cli_exec_errors_name_the_culprit() {
    for (args, needle) in [
        (&["exec", "--code", "4801d"][..], "--code"),
        (&["exec", "--code", "90", "--reg", "rqx=1"][..], "rqx"),
        (&["exec", "--code", "90", "--reg", "rip=1"][..], "rip"),
        (
            &["exec", "--file", "/nonexistent/snippet.bin"][..],
            "/nonexistent/snippet.bin",
        ),
        (&["exec", "--code", "90", "--accel", "qemu"][..], "qemu"),
    ] {
        let out = tandem(args, b"");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn page_crossing_accesses() {
    // The last mapped page ends at 64 MiB: a store straddling it faults on the second page
    // (CR2 = the first unmapped byte) and writes nothing; a misaligned load within RAM
    // straddling two pages reads both.
    const END: u64 = 64 << 20;
    let code = asm(|a| {
        a.mov(rax, END - 4).unwrap();
        a.mov(rbx, 0x1122_3344_5566_7788u64).unwrap();
        a.mov(qword_ptr(rax), rbx).unwrap();
    });
    let s = Snippet::new(code).with_memory(END - 0x1000, vec![0xaa; 0x1000]);
    let r = run_all("page_crossing_accesses", &s);
    assert_eq!(
        r.end,
        SnippetEnd::Exception {
            vector: 14,
            error_code: Some(6),
            cr2: Some(END)
        }
    );
    assert!(r.memory[0].1.iter().all(|&b| b == 0xaa), "nothing written");
    let code = asm(|a| {
        a.mov(rax, 0x50_0ffdu64).unwrap();
        a.mov(rbx, qword_ptr(rax)).unwrap();
        a.mov(qword_ptr(rax + 0x10), rbx).unwrap();
    });
    let data: Vec<u8> = (0..0x2000u32).map(|i| i as u8).collect();
    let s = Snippet::new(code).with_memory(0x50_0000, data);
    let r = run_all("page_crossing_accesses_misaligned", &s);
    assert_eq!(r.end, SnippetEnd::Completed);
    assert_eq!(r.state.gpr[reg::RBX], 0x0403_0201_00ff_fefd);
    assert_eq!(
        &r.memory[0].1[0x100d..0x1015],
        &0x0403_0201_00ff_fefdu64.to_le_bytes()
    );
}

/// An x87/SSE state with every compared field in use: distinct XMM values, MXCSR with a
/// rounding mode, DAZ, FTZ and a sticky flag, FCW with precision and rounding, FSW with TOP 5,
/// condition codes and a sticky flag, tags (R5 valid, the others empty) and eight register
/// values, the empty ones included.
fn fp_state() -> tandem_target_x86_64::FxsaveArea {
    let mut fx = tandem_target_x86_64::FxsaveArea::default();
    for i in 0..16u128 {
        let v = 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10u128.wrapping_mul(i + 3) ^ i;
        fx.set_xmm(i as usize, v.to_le_bytes());
    }
    fx.set_mxcsr(0x1f80 | 2 << 13 | 1 << 15 | 1 << 6 | 0x10);
    fx.set_fcw(0x7f | 2 << 8 | 1 << 10);
    fx.set_fsw(5 << 11 | 0x4000 | 0x0200 | 0x20);
    fx.set_ftw(1 << 5);
    // ST(0) = physical R5 = 2.5; slot 6 = R3 = MM3.
    fx.set_st(0, [0, 0, 0, 0, 0, 0, 0, 0xa0, 0x00, 0x40]);
    for i in 1..8u8 {
        let mut v = [0x11 * i; 10];
        v[8] = 0xff;
        v[9] = 0xff;
        fx.set_st(usize::from(i), v);
    }
    fx.set_st(
        6,
        [0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01, 0xff, 0xff],
    );
    fx
}

/// The x87/SSE fields the harness carries and the differential suite compares: the FXSAVE
/// image less FOP/FIP/FDP, MXCSR_MASK and the reserved bytes.
fn fp_fields(fx: &tandem_target_x86_64::FxsaveArea) -> impl PartialEq + std::fmt::Debug {
    let st: Vec<[u8; 10]> = (0..8).map(|i| fx.st(i)).collect();
    let xmm: Vec<[u8; 16]> = (0..16).map(|i| fx.xmm(i)).collect();
    (fx.fcw(), fx.fsw(), fx.ftw(), fx.mxcsr(), st, xmm)
}

/// The whole x87/SSE state set for a snippet is the state the engine runs it with, and comes
/// back unchanged from a snippet that does not touch it, on every engine.
#[test]
fn fp_state_reaches_every_engine_and_comes_back() {
    let mut s = Snippet::new(asm(|a| a.nop().unwrap()));
    s.initial.fx = fp_state();
    let want = fp_fields(&s.initial.fx);
    for tier in [tandem_accel::Tier::Interp, tandem_accel::Tier::Jit] {
        let r = on_tier(tier, &s);
        assert_eq!(fp_fields(&r.state.fx), want, "{tier:?}");
    }
    let Some(r) = run("fp_state_reaches_every_engine_and_comes_back", &s) else {
        return;
    };
    assert_eq!(fp_fields(&r.state.fx), want, "kvm");
}

/// The starting XMM, MMX, x87 and MXCSR values are what instructions read, on every engine:
/// MOVQ/PEXTRQ/MOVD from XMM registers, FNSTSW/FNSTCW/STMXCSR, FST of ST(0), and MOVQ from MM3
/// (physical register 3, FXSAVE slot 6 with TOP = 5).
#[test]
fn xmm_and_x87_values_read_back_through_instructions() {
    let code = asm(|a| {
        a.movq(rax, xmm3).unwrap();
        a.pextrq(rbx, xmm15, 1).unwrap();
        a.movd(ecx, xmm8).unwrap();
        a.stmxcsr(dword_ptr(rdi)).unwrap();
        a.fnstcw(word_ptr(rdi + 4)).unwrap();
        a.fnstsw(word_ptr(rdi + 6)).unwrap();
        a.fst(qword_ptr(rdi + 8)).unwrap();
        a.movq(rdx, mm3).unwrap();
    });
    let mut s = Snippet::new(code)
        .with_gpr(reg::RDI, 0x50_0000)
        .with_memory(0x50_0000, vec![0; 16]);
    s.initial.fx = fp_state();
    let fx = s.initial.fx;
    let r = run_all("xmm_and_x87_values_read_back_through_instructions", &s);
    assert_eq!(r.end, SnippetEnd::Completed, "{}", r.state.dump());
    let lo = |x: [u8; 16]| u64::from_le_bytes(x[..8].try_into().unwrap());
    let hi = |x: [u8; 16]| u64::from_le_bytes(x[8..].try_into().unwrap());
    assert_eq!(r.state.gpr[reg::RAX], lo(fx.xmm(3)));
    assert_eq!(r.state.gpr[reg::RBX], hi(fx.xmm(15)));
    assert_eq!(r.state.gpr[reg::RCX], lo(fx.xmm(8)) & 0xffff_ffff);
    assert_eq!(r.state.gpr[reg::RDX], 0x0123_4567_89ab_cdef);
    let m = &r.memory[0].1;
    assert_eq!(u32::from_le_bytes(m[0..4].try_into().unwrap()), fx.mxcsr());
    assert_eq!(u16::from_le_bytes(m[4..6].try_into().unwrap()), fx.fcw());
    assert_eq!(u16::from_le_bytes(m[6..8].try_into().unwrap()), fx.fsw());
    assert_eq!(
        u64::from_le_bytes(m[8..16].try_into().unwrap()),
        2.5f64.to_bits()
    );
    // The MMX read switched the x87 to MMX mode: TOP 0, every register valid.
    assert_eq!((r.state.fx.fsw() >> 11) & 7, 0);
    assert_eq!(r.state.fx.ftw(), 0xff);
}

#[test]
fn rep_movs_and_stos_across_pages_overlaps_faults_and_code() {
    // The JIT engine does REP MOVS/STOS a page at a time in bulk (accel's rep_string.rs);
    // every case must end as the semantics' element-by-element execution and the CPU end it.
    const DATA: u64 = 0x50_0000;
    const END: u64 = 64 << 20;
    let fill = vec![0xaa; 0x4000];

    // STOSQ over three pages from an unaligned start, then STOSB of the rest of a page.
    let code = asm(|a| {
        a.mov(rdi, DATA + 0xff3).unwrap();
        a.mov(ecx, 1000u32).unwrap();
        a.mov(rax, 0x0102_0304_0506_0708u64).unwrap();
        a.rep().stosq().unwrap();
        a.mov(ecx, 77u32).unwrap();
        a.mov(al, 0x5a).unwrap();
        a.rep().stosb().unwrap();
    });
    let s = Snippet::new(code).with_memory(DATA, fill.clone());
    let r = run_all("rep_stos_across_pages", &s);
    assert_eq!(r.end, SnippetEnd::Completed);
    assert_eq!(r.state.gpr[reg::RDI], DATA + 0xff3 + 8000 + 77);
    assert_eq!(r.memory[0].1[0xff3 + 7999], 0x01);
    assert_eq!(r.memory[0].1[0xff3 + 8000], 0x5a);
    assert_eq!(r.memory[0].1[0xff3 + 8077], 0xaa);

    // MOVSB onto itself one byte ahead: element order replicates the first byte; MOVSD from
    // a source page to a destination page at different offsets.
    let pattern: Vec<u8> = (0..0x4000u32).map(|i| (i * 7) as u8).collect();
    let code = asm(|a| {
        a.mov(rsi, DATA + 0x100).unwrap();
        a.mov(rdi, DATA + 0x101).unwrap();
        a.mov(ecx, 5000u32).unwrap();
        a.rep().movsb().unwrap();
        a.mov(rsi, DATA + 0x2ffe).unwrap();
        a.mov(rdi, DATA + 0x1802).unwrap();
        a.mov(ecx, 700u32).unwrap();
        a.rep().movsd().unwrap();
    });
    let s = Snippet::new(code).with_memory(DATA, pattern.clone());
    let r = run_all("rep_movs_overlapping", &s);
    assert_eq!(r.end, SnippetEnd::Completed);
    assert!(r.memory[0].1[0x101..0x101 + 5000]
        .iter()
        .all(|&b| b == pattern[0x100]));
    assert_eq!(r.state.gpr[reg::RCX], 0);

    // STOSB running off the end of mapped memory: #PF at the first unmapped byte, with RCX
    // and RDI at that element and every byte before it written.
    let code = asm(|a| {
        a.mov(rdi, END - 0x1800).unwrap();
        a.mov(ecx, 0x2000u32).unwrap();
        a.mov(al, 0x11).unwrap();
        a.rep().stosb().unwrap();
    });
    let s = Snippet::new(code).with_memory(END - 0x2000, vec![0xaa; 0x2000]);
    let r = run_all("rep_stos_faults", &s);
    assert_eq!(
        r.end,
        SnippetEnd::Exception {
            vector: 14,
            error_code: Some(6),
            cr2: Some(END)
        }
    );
    assert_eq!(r.state.gpr[reg::RDI], END);
    assert_eq!(r.state.gpr[reg::RCX], 0x800);
    assert!(r.memory[0].1[0x800..].iter().all(|&b| b == 0x11));

    // MOVSB over the snippet's own next instructions: the copied code runs.
    let code = asm(|a| {
        let mut target = a.create_label();
        let mut patch = a.create_label();
        let mut done = a.create_label();
        a.lea(rsi, ptr(patch)).unwrap();
        a.lea(rdi, ptr(target)).unwrap();
        a.mov(ecx, 5u32).unwrap();
        a.rep().movsb().unwrap();
        a.set_label(&mut target).unwrap();
        a.mov(eax, 1u32).unwrap();
        a.jmp(done).unwrap();
        a.set_label(&mut patch).unwrap();
        a.mov(eax, 2u32).unwrap();
        a.set_label(&mut done).unwrap();
        a.nop().unwrap();
    });
    let r = run_all("rep_movs_over_code", &Snippet::new(code));
    assert_eq!(r.end, SnippetEnd::Completed);
    assert_eq!(r.state.gpr[reg::RAX], 2);
}
