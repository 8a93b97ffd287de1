//! Exception and interrupt delivery (Intel SDM Vol. 3A chapter 6) and the IRET back: 64-bit
//! frames checked byte by byte, privilege changes through TSS.RSP0 and the IST, #PF with CR2,
//! #DF and triple-fault escalation, 32-bit protected-mode gates and the real-mode IVT.
//! Expected frames are worked out by hand from the SDM's figures 6-4/6-9.

mod system_support;

use iced_x86::code_asm::*;
use system_support::*;
use tandem_target_x86_64::cpu_state::{bits, reg, sreg};
use tandem_target_x86_64::exception::Fault;
use tandem_target_x86_64::interrupt::{deliver, DeliveryError, Event, EventKind};
use tandem_target_x86_64::{CpuMode, CpuState, Segment, X86Context};

const INTERRUPT_GATE: u8 = 0xe;
const TRAP_GATE: u8 = 0xf;
const HANDLER: u64 = 0x7_0000;

fn bytes_of(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[test]
fn lidt_then_int_0x80_pushes_the_64_bit_frame_and_iretq_returns() {
    let (mut ctx, mut mem, mut bus) = long_mode();
    ctx.cpu.idt = Default::default();
    mem.put_u16(0x6000, 0xfff);
    mem.put_u64(0x6002, IDT);
    ctx.cpu.gpr[reg::RAX] = 0x6000;
    exec(&mut ctx, &mut mem, &mut bus, |a| a.lidt(ptr(rax)).unwrap()).unwrap();
    assert_eq!((ctx.cpu.idt.base, ctx.cpu.idt.limit), (IDT, 0xfff));
    gate64(&mut mem, 0x80, HANDLER, KCODE64, 0, INTERRUPT_GATE, 0);
    // RSP not 16-byte aligned: the frame starts at 0x7ff0 (SDM 6.14.2).
    ctx.cpu.gpr[reg::RSP] = 0x7ff8;
    ctx.cpu.rflags = 0x246;
    ctx.cpu.rip = CODE + 2;
    exec(&mut ctx, &mut mem, &mut bus, |a| a.int(0x80).unwrap()).unwrap();
    assert_eq!(ctx.cpu.rip, HANDLER);
    assert_eq!(ctx.cpu.gpr[reg::RSP], 0x7fc8);
    assert_eq!(ctx.cpu.rflags, 0x046, "interrupt gate clears IF");
    let frame = bytes_of(&[CODE + 4, 0x08, 0x246, 0x7ff8, 0x10]);
    assert_eq!(&mem.bytes[0x7fc8..0x7ff0], &frame[..]);
    exec(&mut ctx, &mut mem, &mut bus, |a| a.iretq().unwrap()).unwrap();
    assert_eq!(ctx.cpu.rip, CODE + 4);
    assert_eq!(ctx.cpu.gpr[reg::RSP], 0x7ff8);
    assert_eq!(ctx.cpu.rflags, 0x246);
    assert_eq!(ctx.cpu.seg[sreg::SS].selector, 0x10);
}

#[test]
fn trap_gate_keeps_if() {
    let (mut ctx, mut mem, mut bus) = long_mode();
    gate64(&mut mem, 0x81, HANDLER, KCODE64, 0, TRAP_GATE, 0);
    ctx.cpu.rflags = 0x202;
    exec(&mut ctx, &mut mem, &mut bus, |a| a.int(0x81).unwrap()).unwrap();
    assert_eq!(ctx.cpu.rflags, 0x202);
    assert_eq!(mem.u64_at(ctx.cpu.gpr[reg::RSP] + 16), 0x202);
}

#[test]
fn cpl3_to_cpl0_switches_to_rsp0_and_iretq_returns_to_cpl3() {
    let (mut ctx, mut mem, mut bus) = long_mode();
    gate64(&mut mem, 0x80, HANDLER, KCODE64, 0, INTERRUPT_GATE, 3);
    to_user64(&mut ctx);
    ctx.cpu.rflags = 0x202;
    exec(&mut ctx, &mut mem, &mut bus, |a| a.int(0x80).unwrap()).unwrap();
    assert_eq!(ctx.cpu.cpl(), 0);
    assert_eq!(ctx.cpu.gpr[reg::RSP], RSP0 - 40);
    assert_eq!(ctx.cpu.seg[sreg::CS].selector, KCODE64);
    // SS becomes a null selector with RPL = new CPL.
    assert_eq!(ctx.cpu.seg[sreg::SS].selector, 0);
    let frame = bytes_of(&[CODE + 2, 0x2b, 0x202, 0x7000, 0x23]);
    assert_eq!(&mem.bytes[(RSP0 - 40) as usize..RSP0 as usize], &frame[..]);
    exec(&mut ctx, &mut mem, &mut bus, |a| a.iretq().unwrap()).unwrap();
    assert_eq!(ctx.cpu.cpl(), 3);
    assert_eq!(ctx.cpu.mode(), CpuMode::Long64);
    assert_eq!(ctx.cpu.rip, CODE + 2);
    assert_eq!(ctx.cpu.gpr[reg::RSP], 0x7000);
    assert_eq!(ctx.cpu.seg[sreg::SS].selector, 0x23);
    assert_eq!(ctx.cpu.rflags, 0x202);
}

#[test]
fn int_n_through_a_dpl0_gate_from_cpl3_is_gp_with_the_idt_code() {
    let (mut ctx, mut mem, mut bus) = long_mode();
    gate64(&mut mem, 0x80, HANDLER, KCODE64, 0, INTERRUPT_GATE, 0);
    to_user64(&mut ctx);
    let r = exec(&mut ctx, &mut mem, &mut bus, |a| a.int(0x80).unwrap());
    // 0x80 * 8 + 2 (IDT bit), EXT = 0 for INT n.
    assert_eq!(r, Err(Fault::gp(0x402)));
    assert_eq!((ctx.cpu.rip, ctx.cpu.gpr[reg::RSP]), (CODE, 0x7000));
    // The same vector as an external interrupt ignores the gate DPL.
    let ev = Event {
        vector: 0x80,
        kind: EventKind::External,
    };
    deliver(&mut ctx, &mut mem, ev).unwrap();
    assert_eq!(
        mem.u64_at(ctx.cpu.gpr[reg::RSP]),
        CODE,
        "external: RIP itself"
    );
}

#[test]
fn ist_stack_is_used_even_without_a_privilege_change() {
    let (mut ctx, mut mem, _bus) = long_mode();
    gate64(&mut mem, 2, HANDLER, KCODE64, 1, INTERRUPT_GATE, 0);
    let ev = Event {
        vector: 2,
        kind: EventKind::Nmi,
    };
    deliver(&mut ctx, &mut mem, ev).unwrap();
    assert_eq!(ctx.cpu.gpr[reg::RSP], IST1 - 40);
    assert_eq!(mem.u64_at(IST1 - 8), 0x10, "old SS");
    assert_eq!(mem.u64_at(IST1 - 16), STACK, "old RSP");
    assert!(ctx.cpu.events.nmi_masked);
    let (_, _, mut bus) = long_mode();
    ctx.cpu.rip = HANDLER;
    exec(&mut ctx, &mut mem, &mut bus, |a| a.iretq().unwrap()).unwrap();
    assert!(!ctx.cpu.events.nmi_masked);
    assert_eq!(ctx.cpu.gpr[reg::RSP], STACK);
}

#[test]
fn page_fault_writes_cr2_and_pushes_the_error_code() {
    let (mut ctx, mut mem, _bus) = long_mode();
    gate64(&mut mem, 14, HANDLER, KCODE64, 0, INTERRUPT_GATE, 0);
    ctx.cpu.rflags = 0x202;
    deliver(&mut ctx, &mut mem, Fault::page_fault(0xdead_b000, 6).into()).unwrap();
    assert_eq!(ctx.cpu.cr2, 0xdead_b000);
    assert_eq!(ctx.cpu.gpr[reg::RSP], STACK - 48);
    let frame = bytes_of(&[6, CODE, 0x08, 0x202, STACK, 0x10]);
    assert_eq!(
        &mem.bytes[(STACK - 48) as usize..STACK as usize],
        &frame[..]
    );
}

#[test]
fn zero_limit_idt_escalates_to_triple_fault() {
    let (mut ctx, mut mem, _bus) = long_mode();
    ctx.cpu.idt.limit = 0;
    let before = ctx.cpu;
    let r = deliver(&mut ctx, &mut mem, Fault::gp(0).into());
    assert_eq!(r, Err(DeliveryError::TripleFault { vector: 8 }));
    assert_eq!(ctx.cpu, before, "nothing committed");
}

#[test]
fn a_fault_while_delivering_gp_becomes_double_fault() {
    let (mut ctx, mut mem, _bus) = long_mode();
    gate64(&mut mem, 8, HANDLER + 0x100, KCODE64, 1, INTERRUPT_GATE, 0);
    // Vector 13's gate is all zeros: not a valid type -> #GP(13*8+2+EXT) -> #DF.
    deliver(&mut ctx, &mut mem, Fault::gp(0x28).into()).unwrap();
    assert_eq!(ctx.cpu.rip, HANDLER + 0x100);
    assert_eq!(mem.u64_at(ctx.cpu.gpr[reg::RSP]), 0, "#DF error code 0");
}

#[test]
fn external_interrupt_to_a_missing_gate_delivers_np_with_ext() {
    let (mut ctx, mut mem, _bus) = long_mode();
    gate64(&mut mem, 11, HANDLER, KCODE64, 0, INTERRUPT_GATE, 0);
    gate64(&mut mem, 0x20, HANDLER, KCODE64, 0, INTERRUPT_GATE, 0);
    mem.bytes[(IDT + 0x20 * 16 + 5) as usize] &= 0x7f; // clear P
    let ev = Event {
        vector: 0x20,
        kind: EventKind::External,
    };
    deliver(&mut ctx, &mut mem, ev).unwrap();
    // 0x20 * 8 + 2 + 1 (EXT).
    assert_eq!(mem.u64_at(ctx.cpu.gpr[reg::RSP]), 0x103);
}

#[test]
fn gate_to_32_bit_code_in_long_mode_is_gp_selector() {
    let (mut ctx, mut mem, _bus) = long_mode();
    gate64(&mut mem, 13, HANDLER, KCODE64, 0, INTERRUPT_GATE, 0);
    gate64(&mut mem, 0x30, HANDLER, KCODE32, 0, INTERRUPT_GATE, 0);
    let ev = Event {
        vector: 0x30,
        kind: EventKind::External,
    };
    deliver(&mut ctx, &mut mem, ev).unwrap();
    assert_eq!(mem.u64_at(ctx.cpu.gpr[reg::RSP]), u64::from(KCODE32) | 1);
}

fn protected32() -> (X86Context, FlatMem, FakeBus) {
    let (mut ctx, mut mem, bus) = long_mode();
    ctx.cpu.cr0 = bits::CR0_PE | bits::CR0_ET;
    ctx.cpu.cr4 = 0;
    ctx.cpu.efer = 0;
    ctx.cpu.seg = [Segment::flat(KDATA, false, false); 6];
    ctx.cpu.seg[sreg::CS] = Segment::flat(KCODE32, true, false);
    // 32-bit TSS: ESP0 at +4, SS0 at +8.
    mem.put_u32(TSS + 4, RSP0 as u32);
    mem.put_u32(TSS + 8, u32::from(KDATA));
    ctx.cpu.idt.limit = 0x7ff;
    (ctx, mem, bus)
}

#[test]
fn protected_mode_interrupt_gate_same_privilege() {
    let (mut ctx, mut mem, mut bus) = protected32();
    assert_eq!(ctx.cpu.mode(), CpuMode::Protected32);
    gate32(&mut mem, 0x21, 0x12345, KCODE32, INTERRUPT_GATE, 0);
    ctx.cpu.rflags = 0x202;
    let ev = Event {
        vector: 0x21,
        kind: EventKind::External,
    };
    deliver(&mut ctx, &mut mem, ev).unwrap();
    assert_eq!(ctx.cpu.rip, 0x12345);
    assert_eq!(ctx.cpu.gpr[reg::RSP], STACK - 12);
    assert_eq!(mem.u32_at(STACK - 12), CODE as u32);
    assert_eq!(mem.u32_at(STACK - 8), u32::from(KCODE32));
    assert_eq!(mem.u32_at(STACK - 4), 0x202);
    assert_eq!(ctx.cpu.rflags, 0x002);
    exec(&mut ctx, &mut mem, &mut bus, |a| a.iretd().unwrap()).unwrap();
    assert_eq!((ctx.cpu.rip, ctx.cpu.gpr[reg::RSP]), (CODE, STACK));
    assert_eq!(ctx.cpu.rflags, 0x202);
}

#[test]
fn protected_mode_int_from_cpl3_uses_ss0_esp0_and_iretd_returns() {
    let (mut ctx, mut mem, mut bus) = protected32();
    gate32(&mut mem, 0x80, 0x12345, KCODE32, INTERRUPT_GATE, 3);
    let mut user_cs = Segment::flat(UCODE32 | 3, true, false);
    user_cs.dpl = 3;
    let mut user_ss = Segment::flat(UDATA | 3, false, false);
    user_ss.dpl = 3;
    ctx.cpu.seg[sreg::CS] = user_cs;
    ctx.cpu.seg[sreg::SS] = user_ss;
    ctx.cpu.seg[sreg::DS] = user_ss;
    ctx.cpu.gpr[reg::RSP] = 0x7000;
    ctx.cpu.rflags = 0x202;
    exec(&mut ctx, &mut mem, &mut bus, |a| a.int(0x80).unwrap()).unwrap();
    assert_eq!(ctx.cpu.cpl(), 0);
    assert_eq!(ctx.cpu.seg[sreg::SS].selector, KDATA);
    assert_eq!(ctx.cpu.gpr[reg::RSP], RSP0 - 20);
    let words: Vec<u32> = (0..5).map(|k| mem.u32_at(RSP0 - 20 + 4 * k)).collect();
    assert_eq!(words, vec![CODE as u32 + 2, 0x1b, 0x202, 0x7000, 0x23]);
    exec(&mut ctx, &mut mem, &mut bus, |a| a.iretd().unwrap()).unwrap();
    assert_eq!(ctx.cpu.cpl(), 3);
    assert_eq!((ctx.cpu.rip, ctx.cpu.gpr[reg::RSP]), (CODE + 2, 0x7000));
    assert_eq!(ctx.cpu.seg[sreg::SS].selector, 0x23);
    assert_eq!(ctx.cpu.seg[sreg::DS].selector, 0x23, "DPL 3 data stays");
}

#[test]
fn real_mode_int_goes_through_the_ivt_and_iret_returns() {
    let mut cpu = CpuState::default();
    cpu.seg[sreg::CS] = Segment::real_mode(0x1000, true);
    cpu.seg[sreg::SS] = Segment::real_mode(0x2000, false);
    cpu.rip = 0x10;
    cpu.gpr[reg::RSP] = 0x100;
    cpu.rflags = 0x202;
    let mut ctx = X86Context::new(cpu);
    let mut mem = FlatMem::new();
    let mut bus = FakeBus::default();
    mem.put_u16(0x40, 0x1234);
    mem.put_u16(0x42, 0x5678);
    exec(&mut ctx, &mut mem, &mut bus, |a| a.int(0x10).unwrap()).unwrap();
    assert_eq!(ctx.cpu.seg[sreg::CS].selector, 0x5678);
    assert_eq!(ctx.cpu.seg[sreg::CS].base, 0x56780);
    assert_eq!(ctx.cpu.rip, 0x1234);
    assert_eq!(ctx.cpu.gpr[reg::RSP], 0xfa);
    assert_eq!(
        &mem.bytes[0x200fa..0x20100],
        &[0x12, 0, 0, 0x10, 0x02, 0x02]
    );
    assert_eq!(ctx.cpu.rflags & bits::RFLAGS_IF, 0);
    exec(&mut ctx, &mut mem, &mut bus, |a| a.iret().unwrap()).unwrap();
    assert_eq!((ctx.cpu.seg[sreg::CS].base, ctx.cpu.rip), (0x10000, 0x12));
    assert_eq!((ctx.cpu.gpr[reg::RSP], ctx.cpu.rflags), (0x100, 0x202));
}
