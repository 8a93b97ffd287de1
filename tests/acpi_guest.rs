//! ACPI as a guest finds it, on every engine: the RSDP by the BIOS-area scan with both
//! checksums, the XSDT, the MADT (the local APIC address, one CPU, the I/O APIC and the IRQ 0
//! override), and a power-off through the FADT's PM1a control block with the DSDT's `\_S5`
//! SLP_TYP, which must end the process with status 0 as QEMU's power-off does.

mod common;
mod guest_support;

use common::asm::{exit, puts};
use common::*;
use guest_support::*;
use iced_x86::code_asm::*;

/// Emits a subroutine summing ECX bytes at RDI into AL (clobbers RDI, ECX); returns its label.
fn checksum_routine(a: &mut CodeAssembler) -> CodeLabel {
    let mut over = a.create_label();
    let mut routine = a.create_label();
    let mut next = a.create_label();
    a.jmp(over).unwrap();
    a.set_label(&mut routine).unwrap();
    a.xor(eax, eax).unwrap();
    a.set_label(&mut next).unwrap();
    a.add(al, byte_ptr(rdi)).unwrap();
    a.inc(rdi).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(next).unwrap();
    a.ret().unwrap();
    a.set_label(&mut over).unwrap();
    routine
}

/// Sums the table at `table` over its header's length into AL (zero: valid). Clobbers RAX,
/// RCX, RDI.
fn checksum_table(a: &mut CodeAssembler, table: AsmRegister64, sum: CodeLabel) {
    a.mov(rdi, table).unwrap();
    a.mov(ecx, dword_ptr(table + 4)).unwrap();
    a.call(sum).unwrap();
    a.test(al, al).unwrap();
}

/// RSI := the RSDP, scanning 0xE0000-0xFFFFF on 16-byte boundaries for the signature and
/// both checksums; jumps to `none` if there is none. Clobbers RAX, RCX, RDI.
fn find_rsdp(a: &mut CodeAssembler, sum: CodeLabel, none: CodeLabel) {
    let mut scan = a.create_label();
    let mut next = a.create_label();
    let mut found = a.create_label();
    a.mov(rsi, 0xe_0000u64).unwrap();
    a.set_label(&mut scan).unwrap();
    a.mov(rax, u64::from_le_bytes(*b"RSD PTR ")).unwrap();
    a.cmp(qword_ptr(rsi), rax).unwrap();
    a.jne(next).unwrap();
    a.mov(rdi, rsi).unwrap();
    a.mov(ecx, 20u32).unwrap();
    a.call(sum).unwrap();
    a.test(al, al).unwrap();
    a.jnz(next).unwrap();
    a.mov(rdi, rsi).unwrap();
    a.mov(ecx, 36u32).unwrap();
    a.call(sum).unwrap();
    a.test(al, al).unwrap();
    a.jz(found).unwrap();
    a.set_label(&mut next).unwrap();
    a.add(rsi, 16).unwrap();
    a.cmp(rsi, 0x10_0000).unwrap();
    a.jb(scan).unwrap();
    a.jmp(none).unwrap();
    a.set_label(&mut found).unwrap();
    a.nop().unwrap();
}

/// RDX := the table with `signature` the XSDT at RBX lists, checksum checked; jumps to
/// `missing` if there is none. Clobbers RAX, RCX, RDI, R10, R11.
fn find_table(a: &mut CodeAssembler, signature: &[u8; 4], sum: CodeLabel, missing: CodeLabel) {
    let mut next = a.create_label();
    let mut found = a.create_label();
    // R10 walks the 8-byte entries from XSDT+36 to XSDT+length.
    a.lea(r10, qword_ptr(rbx + 36)).unwrap();
    a.mov(r11d, dword_ptr(rbx + 4)).unwrap();
    a.add(r11, rbx).unwrap();
    a.set_label(&mut next).unwrap();
    a.cmp(r10, r11).unwrap();
    a.jae(missing).unwrap();
    a.mov(rdx, qword_ptr(r10)).unwrap();
    a.add(r10, 8).unwrap();
    a.cmp(dword_ptr(rdx), u32::from_le_bytes(*signature) as i32)
        .unwrap();
    a.jne(next).unwrap();
    checksum_table(a, rdx, sum);
    a.jz(found).unwrap();
    a.jmp(missing).unwrap();
    a.set_label(&mut found).unwrap();
    a.nop().unwrap();
}

/// Finds the RSDP and the XSDT (RSI, RBX), checking the XSDT's signature and checksum.
fn find_xsdt(a: &mut CodeAssembler, sum: CodeLabel, fail: CodeLabel) {
    find_rsdp(a, sum, fail);
    a.mov(rbx, qword_ptr(rsi + 24)).unwrap();
    a.cmp(dword_ptr(rbx), u32::from_le_bytes(*b"XSDT") as i32)
        .unwrap();
    a.jne(fail).unwrap();
    checksum_table(a, rbx, sum);
    a.jnz(fail).unwrap();
}

/// Prints `label`, then EAX in hex.
fn print_field(a: &mut CodeAssembler, label: &str, hex: CodeLabel) {
    a.push(rax).unwrap();
    puts(a, label);
    a.pop(rax).unwrap();
    a.call(hex).unwrap();
}

#[test]
fn a_guest_finds_the_rsdp_and_reads_the_madt() {
    let code = assemble64(|a| {
        let mut fail = a.create_label();
        let mut walk = a.create_label();
        let mut next = a.create_label();
        let mut not_lapic = a.create_label();
        let mut not_ioapic = a.create_label();
        let mut done = a.create_label();
        let sum = checksum_routine(a);
        let hex = put_hex32_routine(a);
        find_xsdt(a, sum, fail);
        find_table(a, b"APIC", sum, fail);
        a.mov(r9, rdx).unwrap();
        // R12 local APICs, R13 the I/O APIC address, R14 the GSI of ISA IRQ 0.
        a.xor(r12d, r12d).unwrap();
        a.xor(r13d, r13d).unwrap();
        a.mov(r14d, u32::MAX).unwrap();
        a.lea(r10, qword_ptr(r9 + 44)).unwrap();
        a.mov(r11d, dword_ptr(r9 + 4)).unwrap();
        a.add(r11, r9).unwrap();
        a.set_label(&mut walk).unwrap();
        a.cmp(r10, r11).unwrap();
        a.jae(done).unwrap();
        a.movzx(eax, byte_ptr(r10)).unwrap();
        a.cmp(eax, 0).unwrap();
        a.jne(not_lapic).unwrap();
        a.inc(r12d).unwrap();
        a.jmp(next).unwrap();
        a.set_label(&mut not_lapic).unwrap();
        a.cmp(eax, 1).unwrap();
        a.jne(not_ioapic).unwrap();
        a.mov(r13d, dword_ptr(r10 + 4)).unwrap();
        a.jmp(next).unwrap();
        a.set_label(&mut not_ioapic).unwrap();
        a.cmp(eax, 2).unwrap();
        a.jne(next).unwrap();
        a.cmp(byte_ptr(r10 + 3), 0).unwrap();
        a.jne(next).unwrap();
        a.mov(r14d, dword_ptr(r10 + 4)).unwrap();
        a.set_label(&mut next).unwrap();
        a.movzx(eax, byte_ptr(r10 + 1)).unwrap();
        a.add(r10, rax).unwrap();
        a.test(eax, eax).unwrap();
        a.jnz(walk).unwrap();
        a.jmp(fail).unwrap();
        a.set_label(&mut done).unwrap();
        a.mov(eax, esi).unwrap();
        print_field(a, "rsdp=", hex);
        a.mov(eax, dword_ptr(r9 + 36)).unwrap();
        print_field(a, " lapic=", hex);
        a.mov(eax, r12d).unwrap();
        print_field(a, " cpus=", hex);
        a.mov(eax, r13d).unwrap();
        print_field(a, " ioapic=", hex);
        a.mov(eax, r14d).unwrap();
        print_field(a, " irq0->gsi=", hex);
        puts(a, "\n");
        exit(a, 0x0a);
        a.set_label(&mut fail).unwrap();
        puts(a, "no valid ACPI tables\n");
        exit(a, 1);
    });
    on_engines(
        engines,
        "a_guest_finds_the_rsdp_and_reads_the_madt",
        &elf64(&code, LOAD64),
        &[],
        b"",
        Expect {
            stdout: "rsdp=000e0000 lapic=fee00000 cpus=00000001 ioapic=fec00000 \
                     irq0->gsi=00000002\n",
            status: debug_exit_status(0x0a),
        },
    );
}

#[test]
fn acpi_power_off_by_the_guest_ends_the_process_with_status_0() {
    // As an OS shuts down: PM1a_CNT from the FADT, SLP_TYPa from the DSDT's \_S5 package,
    // then SLP_TYP | SLP_EN written to PM1a_CNT.
    let code = assemble64(|a| {
        let mut fail = a.create_label();
        let mut search = a.create_label();
        let sum = checksum_routine(a);
        let hex = put_hex32_routine(a);
        find_xsdt(a, sum, fail);
        find_table(a, b"FACP", sum, fail);
        a.mov(r9, rdx).unwrap();
        // The DSDT (32-bit pointer at FADT+40): find "_S5_", then Package, length, count,
        // BytePrefix and the value.
        a.mov(edi, dword_ptr(r9 + 40)).unwrap();
        a.mov(ecx, dword_ptr(rdi + 4)).unwrap();
        a.add(rcx, rdi).unwrap();
        a.set_label(&mut search).unwrap();
        a.cmp(rdi, rcx).unwrap();
        a.jae(fail).unwrap();
        a.inc(rdi).unwrap();
        a.cmp(dword_ptr(rdi - 1), u32::from_le_bytes(*b"_S5_") as i32)
            .unwrap();
        a.jne(search).unwrap();
        a.cmp(byte_ptr(rdi + 3), 0x12).unwrap();
        a.jne(fail).unwrap();
        a.cmp(byte_ptr(rdi + 6), 0x0a).unwrap();
        a.jne(fail).unwrap();
        a.movzx(r12d, byte_ptr(rdi + 7)).unwrap();
        a.mov(eax, dword_ptr(r9 + 64)).unwrap();
        print_field(a, "pm1a_cnt=", hex);
        a.mov(eax, r12d).unwrap();
        print_field(a, " slp_typ=", hex);
        puts(a, " powering off\n");
        a.mov(edx, dword_ptr(r9 + 64)).unwrap();
        a.mov(eax, r12d).unwrap();
        a.shl(eax, 10).unwrap();
        a.or(eax, 1 << 13).unwrap();
        a.out(dx, ax).unwrap();
        puts(a, "still running\n");
        exit(a, 0x33);
        a.set_label(&mut fail).unwrap();
        puts(a, "no valid ACPI tables\n");
        exit(a, 1);
    });
    on_engines(
        engines,
        "acpi_power_off_by_the_guest_ends_the_process_with_status_0",
        &elf64(&code, LOAD64),
        &[],
        b"",
        Expect {
            stdout: "pm1a_cnt=00000604 slp_typ=00000005 powering off\n",
            status: 0,
        },
    );
}
