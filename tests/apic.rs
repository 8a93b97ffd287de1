//! The board's local APIC and I/O APIC under the JIT, on every tier: guests program them the
//! way Linux does and check what arrives — timer interrupts in periodic, one-shot and
//! TSC-deadline modes waking HLT on time, the PIT through I/O APIC pin 2 with the 8259 masked,
//! and the x2APIC MSRs (or, while CPUID does not advertise x2APIC, the #GP for enabling it).
//! KVM's in-kernel irqchip has APICs of its own; these tests are about the board's.

mod common;
mod guest_support;

use common::asm::{exit, puts};
use common::*;
use guest_support::apic::*;
use guest_support::*;
use iced_x86::code_asm::*;

/// xAPIC timer registers.
const LVT_TIMER: u32 = 0x320;
const TIMER_INITIAL: u32 = 0x380;
const TIMER_CURRENT: u32 = 0x390;
const TIMER_DIVIDE: u32 = 0x3e0;
/// LVT timer modes (bits 17-18) and mask.
const PERIODIC: u32 = 1 << 17;
const TSC_DEADLINE: u32 = 2 << 17;
const MASKED: u32 = 1 << 16;

/// RAX := the 64-bit TSC. Clobbers RDX.
fn rdtsc64(a: &mut CodeAssembler) {
    a.rdtsc().unwrap();
    a.shl(rdx, 32).unwrap();
    a.or(rax, rdx).unwrap();
}

/// The IDT with `gates` and a spurious-vector gate, the 8259 fully masked, the local APIC
/// software-enabled with spurious vector 0xff. Clobbers RAX, RDX, RDI.
fn setup(a: &mut CodeAssembler, gates: &[(u64, CodeLabel)], spurious: CodeLabel) {
    setup_idt(a, gates, spurious);
    init_pics(a, 0xff);
    lapic_enable(a);
}

/// An interrupt handler at `label` that increments R15 and ends the interrupt with an EOI
/// write to the xAPIC page.
fn counting_handler(a: &mut CodeAssembler, label: &mut CodeLabel) {
    a.set_label(label).unwrap();
    a.inc(r15d).unwrap();
    a.push(rdi).unwrap();
    lapic_write(a, EOI, 0);
    a.pop(rdi).unwrap();
    a.iretq().unwrap();
}

/// Halts until the timer's one interrupt, then jumps to `early` if the TSC is below R12 (the
/// deadline) and to `woke_twice` if HLT was left other than for that interrupt.
fn halt_for_one_interrupt(a: &mut CodeAssembler, early: CodeLabel, woke_twice: CodeLabel) {
    halt_until(a, 1, Some(r13d));
    rdtsc64(a);
    a.cmp(rax, r12).unwrap();
    a.jb(early).unwrap();
    a.cmp(r13d, 1).unwrap();
    a.jne(woke_twice).unwrap();
}

fn run(test: &str, image: &[u8], stdout: &str, code: i32) {
    on_engines(
        tcg_engines,
        test,
        image,
        &[],
        b"",
        Expect {
            stdout,
            status: debug_exit_status(code),
        },
    );
}

#[test]
fn periodic_lapic_timer_interrupts_wake_hlt() {
    let code = assemble64(|a| {
        let mut timer = a.create_label();
        let mut spurious = a.create_label();
        setup(a, &[(0x40, timer)], spurious);
        lapic_write(a, TIMER_DIVIDE, 0xb);
        lapic_write(a, LVT_TIMER, 0x40 | PERIODIC);
        // 2 ms at the timer's 1 GHz input clock, divided by 1.
        lapic_write(a, TIMER_INITIAL, 2_000_000);
        halt_until(a, 5, Some(r13d));
        lapic_write(a, LVT_TIMER, MASKED);
        puts(a, "five periodic ticks\n");
        exit(a, 0x40);
        counting_handler(a, &mut timer);
        spurious_handler(a, &mut spurious);
    });
    run(
        "periodic_lapic_timer_interrupts_wake_hlt",
        &elf64(&code, LOAD64),
        "five periodic ticks\n",
        0x40,
    );
}

#[test]
fn one_shot_lapic_timer_wakes_a_halted_guest_once_and_on_time() {
    // The vCPU sleeps in HLT until the deadline: it must wake exactly once (HLT is left only
    // for the interrupt), not before the deadline, and the count must then read 0.
    let code = assemble64(|a| {
        let mut timer = a.create_label();
        let mut spurious = a.create_label();
        let mut early = a.create_label();
        let mut woke_twice = a.create_label();
        let mut counting = a.create_label();
        setup(a, &[(0x41, timer)], spurious);
        lapic_write(a, TIMER_DIVIDE, 0xb);
        lapic_write(a, LVT_TIMER, 0x41);
        // 30 ms; the TSC counts at the same 1 GHz, so R12 is the earliest TSC of the expiry.
        rdtsc64(a);
        a.lea(r12, qword_ptr(rax + 30_000_000)).unwrap();
        lapic_write(a, TIMER_INITIAL, 30_000_000);
        halt_for_one_interrupt(a, early, woke_twice);
        lapic_read(a, TIMER_CURRENT);
        a.test(eax, eax).unwrap();
        a.jnz(counting).unwrap();
        puts(a, "one-shot on time\n");
        exit(a, 0x41);
        fail(a, &mut early, "woke before the deadline\n");
        fail(a, &mut woke_twice, "HLT left without an interrupt\n");
        fail(a, &mut counting, "count not 0 after expiry\n");
        counting_handler(a, &mut timer);
        spurious_handler(a, &mut spurious);
    });
    run(
        "one_shot_lapic_timer_wakes_a_halted_guest_once_and_on_time",
        &elf64(&code, LOAD64),
        "one-shot on time\n",
        0x41,
    );
}

#[test]
fn tsc_deadline_timer_fires_once_the_tsc_reaches_the_deadline() {
    let code = assemble64(|a| {
        let mut timer = a.create_label();
        let mut spurious = a.create_label();
        let mut readback = a.create_label();
        let mut early = a.create_label();
        let mut woke_twice = a.create_label();
        let mut armed = a.create_label();
        setup(a, &[(0x42, timer)], spurious);
        lapic_write(a, LVT_TIMER, 0x42 | TSC_DEADLINE);
        rdtsc64(a);
        a.add(rax, 20_000_000).unwrap();
        a.mov(r12, rax).unwrap();
        a.mov(rdx, rax).unwrap();
        a.shr(rdx, 32).unwrap();
        a.mov(ecx, 0x6e0u32).unwrap();
        a.wrmsr().unwrap();
        a.rdmsr().unwrap();
        a.shl(rdx, 32).unwrap();
        a.mov(eax, eax).unwrap();
        a.or(rax, rdx).unwrap();
        a.cmp(rax, r12).unwrap();
        a.jne(readback).unwrap();
        halt_for_one_interrupt(a, early, woke_twice);
        // A deadline that has fired reads 0.
        a.mov(ecx, 0x6e0u32).unwrap();
        a.rdmsr().unwrap();
        a.or(eax, edx).unwrap();
        a.jnz(armed).unwrap();
        puts(a, "tsc deadline on time\n");
        exit(a, 0x42);
        fail(a, &mut readback, "IA32_TSC_DEADLINE did not read back\n");
        fail(a, &mut early, "fired before the deadline\n");
        fail(a, &mut woke_twice, "HLT left without an interrupt\n");
        fail(a, &mut armed, "still armed after firing\n");
        counting_handler(a, &mut timer);
        spurious_handler(a, &mut spurious);
    });
    run(
        "tsc_deadline_timer_fires_once_the_tsc_reaches_the_deadline",
        &elf64(&code, LOAD64),
        "tsc deadline on time\n",
        0x42,
    );
}

#[test]
fn pit_interrupts_reach_the_guest_through_the_ioapic_with_the_pic_masked() {
    let code = assemble64(|a| {
        let mut timer = a.create_label();
        let mut spurious = a.create_label();
        let mut via_pic = a.create_label();
        // The 8259's IRQ 0 vector, which must never come: the PIC is masked.
        setup(a, &[(0x30, timer), (0x20, via_pic)], spurious);
        // ISA IRQ 0 is GSI 2 (the MADT's override): vector 0x30, edge, to APIC ID 0.
        ioapic_route(a, 2, 0x30);
        // PIT counter 0, mode 2, 11932 (about 10 ms).
        outb(a, 0x43, 0x34);
        outb(a, 0x40, (11932 & 0xff) as u8);
        outb(a, 0x40, (11932 >> 8) as u8);
        halt_until(a, 3, Some(r13d));
        puts(a, "three ioapic ticks\n");
        exit(a, 0x30);
        fail(a, &mut via_pic, "the masked PIC delivered IRQ 0\n");
        counting_handler(a, &mut timer);
        spurious_handler(a, &mut spurious);
    });
    run(
        "pit_interrupts_reach_the_guest_through_the_ioapic_with_the_pic_masked",
        &elf64(&code, LOAD64),
        "three ioapic ticks\n",
        0x30,
    );
}

/// Whether the JIT's CPUID advertises x2APIC (with the board's local APIC behind it).
fn jit_advertises_x2apic() -> bool {
    use tandem_target_x86_64::cpuid::{jit_table, leaf1};
    jit_table()
        .lookup(1, 0)
        .is_some_and(|l| l.ecx & leaf1::ECX_X2APIC != 0)
}

#[test]
fn x2apic_msrs_follow_cpuid() {
    const TEST: &str = "x2apic_msrs_follow_cpuid";
    // x2APIC MSRs #GP in xAPIC mode. Where CPUID advertises x2APIC: switch to it, read the ID
    // and version MSRs, see the xAPIC page go away, TPR and CR8 agree, and a self IPI through
    // MSR 0x83f arrives (EOI by MSR too). Where it does not: setting EXTD is #GP.
    let code = assemble64(|a| {
        let mut ipi = a.create_label();
        let mut gp = a.create_label();
        let mut spurious = a.create_label();
        let mut no_x2apic = a.create_label();
        let mut bad = a.create_label();
        let mut wait = a.create_label();
        let mut got = a.create_label();
        setup(a, &[(0x50, ipi), (13, gp)], spurious);
        a.xor(r14d, r14d).unwrap();
        a.xor(r15d, r15d).unwrap();
        a.mov(ecx, 0x802u32).unwrap();
        a.rdmsr().unwrap();
        a.cmp(r14d, 1).unwrap();
        a.jne(bad).unwrap();
        a.mov(eax, 1u32).unwrap();
        a.cpuid().unwrap();
        a.bt(ecx, 21).unwrap();
        a.jnc(no_x2apic).unwrap();
        a.mov(ecx, 0x1bu32).unwrap();
        a.rdmsr().unwrap();
        a.or(eax, 1 << 10).unwrap();
        a.wrmsr().unwrap();
        a.mov(ecx, 0x802u32).unwrap();
        a.rdmsr().unwrap();
        a.test(eax, eax).unwrap();
        a.jnz(bad).unwrap();
        a.mov(ecx, 0x803u32).unwrap();
        a.rdmsr().unwrap();
        a.cmp(eax, 0x0005_0014).unwrap();
        a.jne(bad).unwrap();
        lapic_read(a, 0x30);
        a.cmp(eax, -1).unwrap();
        a.jne(bad).unwrap();
        a.mov(eax, 3u32).unwrap();
        a.mov(cr8, rax).unwrap();
        a.mov(ecx, 0x808u32).unwrap();
        a.rdmsr().unwrap();
        a.cmp(eax, 0x30).unwrap();
        a.jne(bad).unwrap();
        a.xor(eax, eax).unwrap();
        a.xor(edx, edx).unwrap();
        a.wrmsr().unwrap();
        a.mov(rax, cr8).unwrap();
        a.test(eax, eax).unwrap();
        a.jnz(bad).unwrap();
        a.sti().unwrap();
        a.mov(ecx, 0x83fu32).unwrap();
        a.mov(eax, 0x50u32).unwrap();
        a.wrmsr().unwrap();
        a.mov(ebx, 1_000_000u32).unwrap();
        a.set_label(&mut wait).unwrap();
        a.test(r15d, r15d).unwrap();
        a.jnz(got).unwrap();
        a.dec(ebx).unwrap();
        a.jnz(wait).unwrap();
        a.jmp(bad).unwrap();
        a.set_label(&mut got).unwrap();
        a.cli().unwrap();
        puts(a, "x2apic ok\n");
        exit(a, 0x50);
        a.set_label(&mut no_x2apic).unwrap();
        a.mov(ecx, 0x1bu32).unwrap();
        a.rdmsr().unwrap();
        a.or(eax, 1 << 10).unwrap();
        a.wrmsr().unwrap();
        a.cmp(r14d, 2).unwrap();
        a.jne(bad).unwrap();
        puts(a, "x2apic refused\n");
        exit(a, 0x51);
        fail(a, &mut bad, "x2apic: unexpected value or fault\n");
        // #GP: count it in R14 and skip the 2-byte RDMSR/WRMSR.
        a.set_label(&mut gp).unwrap();
        a.inc(r14d).unwrap();
        a.add(qword_ptr(rsp + 8), 2).unwrap();
        a.add(rsp, 8).unwrap();
        a.iretq().unwrap();
        // The self IPI: EOI through the x2APIC MSR.
        a.set_label(&mut ipi).unwrap();
        a.inc(r15d).unwrap();
        a.push(rax).unwrap();
        a.push(rcx).unwrap();
        a.push(rdx).unwrap();
        a.mov(ecx, 0x80bu32).unwrap();
        a.xor(eax, eax).unwrap();
        a.xor(edx, edx).unwrap();
        a.wrmsr().unwrap();
        a.pop(rdx).unwrap();
        a.pop(rcx).unwrap();
        a.pop(rax).unwrap();
        a.iretq().unwrap();
        spurious_handler(a, &mut spurious);
    });
    let (stdout, status) = if jit_advertises_x2apic() {
        ("x2apic ok\n", 0x50)
    } else {
        skipped(
            &format!("{TEST} [x2APIC mode]"),
            "the JIT's CPUID does not advertise x2APIC yet; checked that enabling it is #GP",
        );
        ("x2apic refused\n", 0x51)
    };
    run(TEST, &elf64(&code, LOAD64), stdout, status);
}
