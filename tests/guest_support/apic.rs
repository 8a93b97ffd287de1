//! Guest-side code for the local APIC and I/O APIC, shared by the tests of the board's APICs
//! (tests/apic.rs) and of KVM's in-kernel irqchip (tests/kvm_ioapic.rs).

use iced_x86::code_asm::*;

use super::{load_idt64, set_gate64};
use crate::common::asm::{exit, puts};

/// Where the APIC guests build their IDT (with scratch memory for the IDTR above it).
pub const IDT: u64 = 0x30_0000;
/// The xAPIC page and the I/O APIC's register window.
pub const LAPIC: u64 = 0xfee0_0000;
pub const IOAPIC: u64 = 0xfec0_0000;
/// The spurious-interrupt vector the guests program.
pub const SPURIOUS: u64 = 0xff;
/// xAPIC spurious-interrupt vector register and EOI register.
pub const SVR: u32 = 0xf0;
pub const EOI: u32 = 0xb0;

/// Writes `value` to the xAPIC register `reg`. Clobbers RDI.
pub fn lapic_write(a: &mut CodeAssembler, reg: u32, value: u32) {
    a.mov(rdi, LAPIC + u64::from(reg)).unwrap();
    a.mov(dword_ptr(rdi), value).unwrap();
}

/// Reads the xAPIC register `reg` into EAX. Clobbers RDI.
pub fn lapic_read(a: &mut CodeAssembler, reg: u32) {
    a.mov(rdi, LAPIC + u64::from(reg)).unwrap();
    a.mov(eax, dword_ptr(rdi)).unwrap();
}

/// Software-enables the local APIC with spurious vector [`SPURIOUS`]. Clobbers RDI.
pub fn lapic_enable(a: &mut CodeAssembler) {
    lapic_write(a, SVR, 0x100 | SPURIOUS as u32);
}

/// Writes I/O APIC register `index`. Clobbers RDI.
pub fn ioapic_write(a: &mut CodeAssembler, index: u32, value: u32) {
    a.mov(rdi, IOAPIC).unwrap();
    a.mov(dword_ptr(rdi), index).unwrap();
    a.mov(dword_ptr(rdi + 0x10), value).unwrap();
}

/// Points I/O APIC `pin` at `vector`: fixed delivery, edge, active high, unmasked, to APIC
/// ID 0 (as Linux programs ISA lines). Clobbers RDI.
pub fn ioapic_route(a: &mut CodeAssembler, pin: u32, vector: u32) {
    ioapic_write(a, 0x10 + 2 * pin, vector);
    ioapic_write(a, 0x11 + 2 * pin, 0);
}

/// The IDT at [`IDT`] with `gates` and a gate for [`SPURIOUS`] to `spurious`, loaded.
/// Clobbers RAX, RDI.
pub fn setup_idt(a: &mut CodeAssembler, gates: &[(u64, CodeLabel)], spurious: CodeLabel) {
    for &(vector, handler) in gates {
        set_gate64(a, IDT, vector, handler);
    }
    set_gate64(a, IDT, SPURIOUS, spurious);
    load_idt64(a, IDT + 0x1000, IDT, 0xfff);
}

/// [`setup_idt`], then the local APIC software-enabled ([`lapic_enable`]). Clobbers RAX, RDI.
pub fn setup_idt_and_lapic(a: &mut CodeAssembler, gates: &[(u64, CodeLabel)], spurious: CodeLabel) {
    setup_idt(a, gates, spurious);
    lapic_enable(a);
}

/// `sti; hlt` until R15 (counted by the handlers) reaches `count`, then `cli`; with
/// `wakeups`, counts in that register how many times HLT was left.
pub fn halt_until(a: &mut CodeAssembler, count: u32, wakeups: Option<AsmRegister32>) {
    let mut wait = a.create_label();
    if let Some(r) = wakeups {
        a.xor(r, r).unwrap();
    }
    a.xor(r15d, r15d).unwrap();
    a.sti().unwrap();
    a.set_label(&mut wait).unwrap();
    a.hlt().unwrap();
    if let Some(r) = wakeups {
        a.inc(r).unwrap();
    }
    a.cmp(r15d, count).unwrap();
    a.jb(wait).unwrap();
    a.cli().unwrap();
}

/// Handlers at the end of the code: `label` prints `why` and exits with 1.
pub fn fail(a: &mut CodeAssembler, label: &mut CodeLabel, why: &str) {
    a.set_label(label).unwrap();
    puts(a, why);
    exit(a, 1);
}

/// The spurious-vector handler at `label`: no EOI (SDM 11.9).
pub fn spurious_handler(a: &mut CodeAssembler, label: &mut CodeLabel) {
    a.set_label(label).unwrap();
    a.iretq().unwrap();
}
