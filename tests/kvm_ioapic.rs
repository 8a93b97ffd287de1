//! KVM's in-kernel irqchip wired as the board's MADT describes it: guests that use the I/O
//! APIC the way Linux does (the 8259 masked, the PIT on pin 2 per the IRQ 0 -> GSI 2 override)
//! get their interrupts, and ISA lines other than the PIT's still reach both the 8259 and the
//! I/O APIC pin of the same number. Runs on `-accel kvm` with the in-kernel irqchip only: the
//! board's own APICs (`kernel-irqchip=off` and the JIT) are tests/apic.rs's subject.

mod common;
mod guest_support;

use common::asm::{exit, puts};
use common::*;
use guest_support::apic::*;
use guest_support::*;
use iced_x86::code_asm::*;

/// COM1's interrupt enable and interrupt identification registers.
const COM1_IER: u16 = 0x3f9;
const COM1_IIR: u16 = 0x3fa;

/// KVM with its in-kernel irqchip (the default); reported skipped where /dev/kvm is missing.
fn in_kernel_irqchip(test: &str) -> Vec<Engine> {
    kvm_engines(test)
        .into_iter()
        .filter(|e| e.name == "kvm")
        .collect()
}

fn run(test: &str, code: &[u8], stdout: &str, status: u32) {
    on_engines(
        in_kernel_irqchip,
        test,
        &elf64(code, LOAD64),
        &[],
        b"",
        Expect {
            stdout,
            status: debug_exit_status(status as i32),
        },
    );
}

/// Ends an interrupt from the I/O APIC (local APIC EOI) or the 8259 (non-specific EOI).
#[derive(Clone, Copy)]
enum Eoi {
    Lapic,
    Pic,
}

/// Increments R15 and ends the interrupt, after `body` (which may clobber RAX, RDX, RDI).
fn counting_handler(
    a: &mut CodeAssembler,
    label: &mut CodeLabel,
    eoi: Eoi,
    body: impl FnOnce(&mut CodeAssembler),
) {
    a.set_label(label).unwrap();
    for r in [rax, rdx, rdi] {
        a.push(r).unwrap();
    }
    body(a);
    a.inc(r15d).unwrap();
    match eoi {
        Eoi::Lapic => lapic_write(a, EOI, 0),
        Eoi::Pic => outb(a, 0x20, 0x20),
    }
    for r in [rdi, rdx, rax] {
        a.pop(r).unwrap();
    }
    a.iretq().unwrap();
}

#[test]
fn pit_reaches_ioapic_pin_2_as_the_madt_override_says() {
    // KVM's default routing sends the in-kernel PIT (GSI 0) to I/O APIC pin 0; the MADT, like
    // every PC's, says ISA IRQ 0 is GSI 2. Pin 0 is programmed too, with a vector of its own,
    // so a PIT tick arriving there fails at once instead of leaving the guest asleep.
    let code = assemble64(|a| {
        let mut pin2 = a.create_label();
        let mut pin0 = a.create_label();
        let mut via_pic = a.create_label();
        let mut spurious = a.create_label();
        setup_idt_and_lapic(a, &[(0x30, pin2), (0x31, pin0), (0x20, via_pic)], spurious);
        init_pics(a, 0xff);
        ioapic_route(a, 2, 0x30);
        ioapic_route(a, 0, 0x31);
        // PIT counter 0, mode 2 (rate generator), 11932 (about 10 ms).
        outb(a, 0x43, 0x34);
        outb(a, 0x40, (11932 & 0xff) as u8);
        outb(a, 0x40, (11932 >> 8) as u8);
        halt_until(a, 3, None);
        puts(a, "three ticks on pin 2\n");
        exit(a, 0x30);
        fail(
            a,
            &mut pin0,
            "the PIT arrived on I/O APIC pin 0, not pin 2\n",
        );
        fail(a, &mut via_pic, "the masked 8259 delivered IRQ 0\n");
        counting_handler(a, &mut pin2, Eoi::Lapic, |_| {});
        spurious_handler(a, &mut spurious);
    });
    run(
        "pit_reaches_ioapic_pin_2_as_the_madt_override_says",
        &code,
        "three ticks on pin 2\n",
        0x30,
    );
}

/// A guest that takes one COM1 THR-empty interrupt (IRQ 4) through `via` on `vector`: enabling
/// the interrupt with THR empty raises it at once; the handler reads the IIR and disables it.
fn serial_interrupt_guest(via: Eoi, vector: u64) -> Vec<u8> {
    assemble64(|a| {
        let mut uart = a.create_label();
        let mut spurious = a.create_label();
        setup_idt_and_lapic(a, &[(vector, uart)], spurious);
        match via {
            Eoi::Lapic => {
                init_pics(a, 0xff);
                ioapic_route(a, 4, vector as u32);
            }
            // The 8259's spurious IRQ 7 shares the handler that ignores it.
            Eoi::Pic => {
                set_gate64(a, IDT, 0x27, spurious);
                init_pics(a, !(1 << 4));
            }
        }
        outb(a, COM1_IER, 0x02);
        halt_until(a, 1, None);
        puts(a, "serial interrupt\n");
        exit(a, vector as u32);
        counting_handler(a, &mut uart, via, |a| {
            a.mov(dx, u32::from(COM1_IIR)).unwrap();
            a.in_(al, dx).unwrap();
            outb(a, COM1_IER, 0);
        });
        spurious_handler(a, &mut spurious);
    })
}

#[test]
fn serial_irq_4_reaches_ioapic_pin_4() {
    run(
        "serial_irq_4_reaches_ioapic_pin_4",
        &serial_interrupt_guest(Eoi::Lapic, 0x34),
        "serial interrupt\n",
        0x34,
    );
}

#[test]
fn serial_irq_4_reaches_the_8259_with_the_ioapic_routes_in_place() {
    run(
        "serial_irq_4_reaches_the_8259_with_the_ioapic_routes_in_place",
        &serial_interrupt_guest(Eoi::Pic, 0x24),
        "serial interrupt\n",
        0x24,
    );
}
