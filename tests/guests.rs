//! Whole-machine tests: small guests written with CodeAssembler, run by the `tandem` binary on
//! every engine built in, checked by their serial output and exit status.

mod common;
mod guest_support;

use common::asm::{self, exit, hang, puts};
use common::*;
use guest_support::*;
use iced_x86::code_asm::*;

#[test]
fn long_mode_guest_prints_and_exits_with_its_code() {
    let code = assemble64(|a| {
        puts(a, "hello from 64-bit\n");
        exit(a, 0x2a);
    });
    let image = elf64(&code, LOAD64);
    on_engines(
        engines,
        "long_mode_guest_prints_and_exits_with_its_code",
        &image,
        &[],
        b"",
        Expect {
            stdout: "hello from 64-bit\n",
            status: debug_exit_status(0x2a),
        },
    );
}

#[test]
fn multiboot_guest_gets_magic_and_command_line() {
    // Checks EAX, then prints the command line from the multiboot info (EBX + 16).
    let code = assemble32(|a| {
        let mut bad = a.create_label();
        let mut next = a.create_label();
        let mut done = a.create_label();
        a.cmp(eax, 0x2bad_b002u32).unwrap();
        a.jne(bad).unwrap();
        a.mov(esi, dword_ptr(ebx + 16)).unwrap();
        a.set_label(&mut next).unwrap();
        a.mov(cl, byte_ptr(esi)).unwrap();
        a.test(cl, cl).unwrap();
        a.jz(done).unwrap();
        asm::wait_thre(a);
        a.mov(dx, asm::COM1 as u32).unwrap();
        a.mov(al, cl).unwrap();
        a.out(dx, al).unwrap();
        a.inc(esi).unwrap();
        a.jmp(next).unwrap();
        a.set_label(&mut done).unwrap();
        puts(a, "|multiboot ok\n");
        exit(a, 7);
        a.set_label(&mut bad).unwrap();
        exit(a, 0x55);
    });
    let image = multiboot_aout(&code, LOAD32);
    on_engines(
        engines,
        "multiboot_guest_gets_magic_and_command_line",
        &image,
        &["-append", "console=ttyS0 quiet"],
        b"",
        Expect {
            stdout: "console=ttyS0 quiet|multiboot ok\n",
            status: debug_exit_status(7),
        },
    );
}

#[test]
fn pit_interrupts_reach_a_halted_guest_through_the_pic() {
    const IDT: u64 = 0x30_0000;
    let code = assemble64(|a| {
        let mut timer = a.create_label();
        let mut spurious = a.create_label();
        let mut wait = a.create_label();
        set_gate64(a, IDT, 0x20, timer);
        set_gate64(a, IDT, 0x27, spurious);
        load_idt64(a, IDT + 0x1000, IDT, 0xfff);
        init_pics(a, 0xfe);
        // PIT counter 0, mode 2, 11932 (about 10 ms).
        outb(a, 0x43, 0x34);
        outb(a, 0x40, (11932 & 0xff) as u8);
        outb(a, 0x40, (11932 >> 8) as u8);
        a.xor(r15d, r15d).unwrap();
        a.sti().unwrap();
        a.set_label(&mut wait).unwrap();
        a.hlt().unwrap();
        a.cmp(r15, 3).unwrap();
        a.jb(wait).unwrap();
        a.cli().unwrap();
        puts(a, "three ticks\n");
        exit(a, 0x11);
        a.set_label(&mut timer).unwrap();
        a.inc(r15).unwrap();
        a.push(rax).unwrap();
        a.push(rdx).unwrap();
        outb(a, 0x20, 0x20);
        a.pop(rdx).unwrap();
        a.pop(rax).unwrap();
        a.iretq().unwrap();
        a.set_label(&mut spurious).unwrap();
        a.iretq().unwrap();
    });
    let image = elf64(&code, LOAD64);
    on_engines(
        engines,
        "pit_interrupts_reach_a_halted_guest_through_the_pic",
        &image,
        &[],
        b"",
        Expect {
            stdout: "three ticks\n",
            status: debug_exit_status(0x11),
        },
    );
}

#[test]
fn unassigned_mmio_reads_all_ones_and_the_guest_continues() {
    let code = assemble64(|a| {
        let mut bad = a.create_label();
        a.mov(rsi, 0xfeb0_0000u64).unwrap();
        a.mov(ebx, dword_ptr(rsi)).unwrap();
        a.mov(dword_ptr(rsi), 0x1234_5678).unwrap();
        a.mov(ecx, dword_ptr(rsi)).unwrap();
        a.cmp(ebx, -1).unwrap();
        a.jne(bad).unwrap();
        a.cmp(ecx, -1).unwrap();
        a.jne(bad).unwrap();
        puts(a, "mmio all-ones\n");
        exit(a, 3);
        a.set_label(&mut bad).unwrap();
        exit(a, 4);
    });
    let image = elf64(&code, LOAD64);
    on_engines(
        engines,
        "unassigned_mmio_reads_all_ones_and_the_guest_continues",
        &image,
        &[],
        b"",
        Expect {
            stdout: "mmio all-ones\n",
            status: debug_exit_status(3),
        },
    );
}

/// An IDT with limit 0 makes any exception escalate to a triple fault.
fn triple_fault(a: &mut CodeAssembler) {
    load_idt64(a, 0x30_0000, 0, 0);
    a.ud2().unwrap();
    hang(a);
}

#[test]
fn triple_fault_with_no_reboot_stops_the_machine() {
    let code = assemble64(|a| {
        puts(a, "faulting\n");
        triple_fault(a);
    });
    let image = elf64(&code, LOAD64);
    let runs = on_engines(
        engines,
        "triple_fault_with_no_reboot_stops_the_machine",
        &image,
        &["-no-reboot"],
        b"",
        Expect {
            stdout: "faulting\n",
            status: 0,
        },
    );
    for (engine, out) in runs {
        assert!(
            stderr(&out).contains("triple fault"),
            "[{engine}] {}",
            stderr(&out)
        );
    }
}

/// First boot: mark CMOS NVRAM byte 0x40 and reset with `reset`; second boot: exit 0x21.
fn reset_guest(reset: impl Fn(&mut CodeAssembler)) -> Vec<u8> {
    assemble64(|a| {
        let mut second = a.create_label();
        outb(a, 0x70, 0x40);
        a.mov(dx, 0x71u32).unwrap();
        a.in_(al, dx).unwrap();
        a.cmp(al, 0x5a).unwrap();
        a.je(second).unwrap();
        outb(a, 0x70, 0x40);
        outb(a, 0x71, 0x5a);
        puts(a, "first boot\n");
        reset(a);
        a.set_label(&mut second).unwrap();
        puts(a, "second boot\n");
        exit(a, 0x21);
    })
}

#[test]
fn triple_fault_resets_the_machine_and_cmos_survives() {
    let image = elf64(&reset_guest(triple_fault), LOAD64);
    on_engines(
        engines,
        "triple_fault_resets_the_machine_and_cmos_survives",
        &image,
        &[],
        b"",
        Expect {
            stdout: "first boot\nsecond boot\n",
            status: debug_exit_status(0x21),
        },
    );
}

#[test]
fn keyboard_controller_reset_reboots_the_guest() {
    let image = elf64(
        &reset_guest(|a| {
            outb(a, 0x64, 0xfe);
            hang(a);
        }),
        LOAD64,
    );
    on_engines(
        engines,
        "keyboard_controller_reset_reboots_the_guest",
        &image,
        &[],
        b"",
        Expect {
            stdout: "first boot\nsecond boot\n",
            status: debug_exit_status(0x21),
        },
    );
    let runs = on_engines(
        engines,
        "keyboard_controller_reset_with_no_reboot_stops",
        &image,
        &["-no-reboot"],
        b"",
        Expect {
            stdout: "first boot\n",
            status: 0,
        },
    );
    for (engine, out) in runs {
        assert!(
            stderr(&out).contains("reset"),
            "[{engine}] {}",
            stderr(&out)
        );
    }
}

#[test]
fn serial_input_reaches_the_guest() {
    // Echoes what it receives, upper-cased, until a newline.
    let code = assemble64(|a| {
        let mut poll = a.create_label();
        let mut done = a.create_label();
        let mut keep = a.create_label();
        a.set_label(&mut poll).unwrap();
        a.mov(dx, 0x3fdu32).unwrap();
        a.in_(al, dx).unwrap();
        a.test(al, 1).unwrap();
        a.jz(poll).unwrap();
        a.mov(dx, 0x3f8u32).unwrap();
        a.in_(al, dx).unwrap();
        a.cmp(al, b'\n' as i32).unwrap();
        a.je(done).unwrap();
        a.mov(bl, al).unwrap();
        a.cmp(bl, b'a' as i32).unwrap();
        a.jb(keep).unwrap();
        a.cmp(bl, b'z' as i32).unwrap();
        a.ja(keep).unwrap();
        a.sub(bl, 0x20).unwrap();
        a.set_label(&mut keep).unwrap();
        asm::wait_thre(a);
        a.mov(dx, 0x3f8u32).unwrap();
        a.mov(al, bl).unwrap();
        a.out(dx, al).unwrap();
        a.jmp(poll).unwrap();
        a.set_label(&mut done).unwrap();
        puts(a, "\n");
        exit(a, 5);
    });
    let image = elf64(&code, LOAD64);
    on_engines(
        engines,
        "serial_input_reaches_the_guest",
        &image,
        &[],
        b"hello, tandem: a line longer than the sixteen-byte receive fifo\n",
        Expect {
            stdout: "HELLO, TANDEM: A LINE LONGER THAN THE SIXTEEN-BYTE RECEIVE FIFO\n",
            status: debug_exit_status(5),
        },
    );
}

#[test]
fn kvm_internal_error_ends_the_run_with_a_register_dump() {
    // PVM emulates CPL0 code in the host kernel and cannot emulate LOCK CMPXCHG16B (DESIGN.md;
    // MOVBE, also named there, raises #UD in the guest instead on this host): the run must end
    // with one clear message and the registers, not hang or crash. Elsewhere (VMX/SVM) it runs
    // natively and there is no internal error to provoke this way.
    if !std::path::Path::new("/sys/module/kvm_pvm").exists() {
        skipped(
            "kvm_internal_error_ends_the_run_with_a_register_dump",
            "needs the PVM backend (kvm_pvm), whose CPL0 emulator lacks CMPXCHG16B",
        );
        return;
    }
    let code = assemble64(|a| {
        a.mov(rsi, 0x30_0000u64).unwrap();
        a.mov(r13, 0x1357_9bdfu64).unwrap();
        a.lock().cmpxchg16b(xmmword_ptr(rsi)).unwrap();
        exit(a, 1);
    });
    let image = elf64(&code, LOAD64);
    let runs = on_engines(
        kvm_engines,
        "kvm_internal_error_ends_the_run_with_a_register_dump",
        &image,
        &[],
        b"",
        Expect {
            stdout: "",
            status: 1,
        },
    );
    for (engine, out) in runs {
        let err = stderr(&out);
        assert!(err.contains("KVM internal error"), "[{engine}] {err}");
        assert!(err.contains("R13=0000000013579bdf"), "[{engine}] {err}");
        assert!(err.contains("RIP="), "[{engine}] {err}");
    }
}

#[test]
fn cpuid_reports_the_tandem_hypervisor_signature() {
    // Prints the 12 signature bytes of leaf 0x4000_0000 (EBX, ECX, EDX).
    let code = assemble64(|a| {
        a.mov(eax, 0x4000_0000u32).unwrap();
        a.xor(ecx, ecx).unwrap();
        a.cpuid().unwrap();
        a.mov(r8d, ebx).unwrap();
        a.mov(r9d, ecx).unwrap();
        a.mov(r10d, edx).unwrap();
        for (reg, low) in [(r8, r8b), (r9, r9b), (r10, r10b)] {
            for _ in 0..4 {
                a.mov(cl, low).unwrap();
                asm::wait_thre(a);
                a.mov(dx, asm::COM1 as u32).unwrap();
                a.mov(al, cl).unwrap();
                a.out(dx, al).unwrap();
                a.shr(reg, 8).unwrap();
            }
        }
        puts(a, "\n");
        exit(a, 0);
    });
    let image = elf64(&code, LOAD64);
    on_engines(
        engines,
        "cpuid_reports_the_tandem_hypervisor_signature",
        &image,
        &[],
        b"",
        Expect {
            stdout: "TandemTandem\n",
            status: debug_exit_status(0),
        },
    );
}

#[test]
fn mem_path_backs_guest_ram_with_a_file() {
    let code = assemble64(|a| {
        // A marker the host can find in the file at the guest-physical address 0x30_0000.
        a.mov(rsi, 0x30_0000u64).unwrap();
        a.mov(rax, 0x5445_4e44_454d_2121u64).unwrap();
        a.mov(qword_ptr(rsi), rax).unwrap();
        exit(a, 9);
    });
    let image = elf64(&code, LOAD64);
    let dir = scratch("mem_path");
    let ram = dir.join("ram");
    let ram = ram.to_str().unwrap();
    on_engines(
        engines,
        "mem_path_backs_guest_ram_with_a_file",
        &image,
        &["-mem-path", ram],
        b"",
        Expect {
            stdout: "",
            status: debug_exit_status(9),
        },
    );
    if let Ok(data) = std::fs::read(ram) {
        assert_eq!(data.len(), 32 << 20);
        assert_eq!(
            &data[0x30_0000..0x30_0008],
            &0x5445_4e44_454d_2121u64.to_le_bytes()
        );
        assert_eq!(&data[0x20_0000..0x20_0000 + code.len()], &code[..]);
    }
}

#[test]
fn self_modifying_code_is_seen_at_once() {
    // Each pass prints the immediate of a MOV and then patches that immediate for the next
    // pass: the JIT must drop its translation of the patched code (compiled or not).
    let code = assemble64(|a| {
        let mut again = a.create_label();
        let mut patched = a.create_label();
        a.mov(r12d, 3u32).unwrap();
        a.set_label(&mut again).unwrap();
        a.nop().unwrap();
        a.set_label(&mut patched).unwrap();
        a.mov(ebx, 0u32).unwrap(); // bb imm32: its immediate is patched below
        a.add(bl, b'0' as u32).unwrap();
        asm::wait_thre(a);
        a.mov(dx, asm::COM1 as u32).unwrap();
        a.mov(al, bl).unwrap();
        a.out(dx, al).unwrap();
        a.lea(rsi, ptr(patched)).unwrap();
        a.mov(dword_ptr(rsi + 1), r12d).unwrap();
        a.dec(r12d).unwrap();
        a.jnz(again).unwrap();
        puts(a, "\n");
        exit(a, 0x3c);
    });
    let image = elf64(&code, LOAD64);
    on_engines(
        engines,
        "self_modifying_code_is_seen_at_once",
        &image,
        &[],
        b"",
        Expect {
            stdout: "032\n",
            status: debug_exit_status(0x3c),
        },
    );
}

#[test]
fn popf_enabling_interrupts_takes_a_pending_one_at_once() {
    // Passes 1 and 2 run POPF with IRQ 0 masked, then spin a few times in the wait loop (so the
    // JIT has compiled and linked that code); pass 3 makes IRQ 0 pending while IF is clear, then
    // POPF sets IF: the interrupt must be taken before the loop's long count runs out, although
    // the INTR pin shows no new edge. (The JIT leaves POPF to its interpreter for this reason.)
    const IDT: u64 = 0x30_0000;
    let code = assemble64(|a| {
        let mut timer = a.create_label();
        let mut again = a.create_label();
        let mut pending = a.create_label();
        let mut enable = a.create_label();
        let mut wait = a.create_label();
        let mut out = a.create_label();
        let mut missed = a.create_label();
        set_gate64(a, IDT, 0x20, timer);
        load_idt64(a, IDT + 0x1000, IDT, 0xfff);
        init_pics(a, 0xff);
        outb(a, 0x43, 0x34);
        outb(a, 0x40, (11932 & 0xff) as u8);
        outb(a, 0x40, (11932 >> 8) as u8);
        a.xor(r14d, r14d).unwrap();
        a.xor(r15d, r15d).unwrap();
        a.mov(r13d, 5u32).unwrap();
        a.set_label(&mut again).unwrap();
        a.cli().unwrap();
        a.cmp(r14d, 2).unwrap();
        a.jb(enable).unwrap();
        // Pass 3: wait until IRR shows IRQ 0 (OCW3: read IRR).
        a.set_label(&mut pending).unwrap();
        outb(a, 0x20, 0x0a);
        a.mov(dx, 0x20u32).unwrap();
        a.in_(al, dx).unwrap();
        a.test(al, 1).unwrap();
        a.jz(pending).unwrap();
        a.set_label(&mut enable).unwrap();
        a.pushfq().unwrap();
        a.pop(rax).unwrap();
        a.or(eax, 0x200).unwrap();
        a.push(rax).unwrap();
        a.popfq().unwrap();
        a.set_label(&mut wait).unwrap();
        a.test(r15d, r15d).unwrap();
        a.jnz(out).unwrap();
        a.dec(r13d).unwrap();
        a.jnz(wait).unwrap();
        a.set_label(&mut out).unwrap();
        a.inc(r14d).unwrap();
        a.cmp(r14d, 3).unwrap();
        a.jae(missed).unwrap();
        a.cli().unwrap();
        a.xor(r15d, r15d).unwrap();
        a.mov(r13d, 5u32).unwrap();
        a.cmp(r14d, 2).unwrap();
        a.jb(again).unwrap();
        a.mov(r13d, 0x0400_0000u32).unwrap();
        outb(a, 0x21, 0xfe);
        a.jmp(again).unwrap();
        a.set_label(&mut missed).unwrap();
        a.cli().unwrap();
        a.test(r15d, r15d).unwrap();
        let mut taken = a.create_label();
        a.jnz(taken).unwrap();
        puts(a, "missed\n");
        exit(a, 0x13);
        a.set_label(&mut taken).unwrap();
        puts(a, "taken\n");
        exit(a, 0x12);
        a.set_label(&mut timer).unwrap();
        a.mov(r15d, 1u32).unwrap();
        a.push(rax).unwrap();
        a.push(rdx).unwrap();
        outb(a, 0x20, 0x20);
        a.pop(rdx).unwrap();
        a.pop(rax).unwrap();
        a.iretq().unwrap();
    });
    let image = elf64(&code, LOAD64);
    on_engines(
        engines,
        "popf_enabling_interrupts_takes_a_pending_one_at_once",
        &image,
        &[],
        b"",
        Expect {
            stdout: "taken\n",
            status: debug_exit_status(0x12),
        },
    );
}
