//! Builds the exit-cost micro guest of `bench/micro.py` (issue 5, "KVM engine: cost per port-I/O
//! exit and per MMIO exit"): a multiboot v1 kernel (a.out kludge, no ELF) so that tandem and
//! QEMU's `-kernel` both load it unchanged, and so that the guest times itself: the host's
//! process start-up and QEMU's firmware never enter the figures.
//!
//! `cargo run --release --example bench_exit_guest -- OUT [N]` writes the image to OUT; N is the
//! number of exits per loop (default 100000).
//!
//! What the guest does, all reported on COM1 as `TANDEM-EXIT <name> <hex iterations> <hex TSC
//! cycles>` lines that micro.py parses:
//! 1. From multiboot's 32-bit protected mode it switches to long mode (its own GDT and a 4 GiB
//!    identity map of 2 MiB pages, user-accessible so the same map serves CPL3).
//! 2. `cal`: TSC cycles over 65535 ticks of PIT channel 2 (1.193182 MHz, gated through port
//!    0x61, as Linux's pit_calibrate_tsc does), which turns every other figure into seconds on
//!    any engine (tandem's JIT counts its TSC in host nanoseconds, KVM in host cycles).
//! 3. At CPL0: `loop0` an empty `dec/jnz` loop (on PVM every CPL0 instruction is emulated by
//!    the host kernel, so the loop itself costs: micro.py subtracts it), `port0` an `out` to
//!    an unclaimed port per iteration, `pic0` an `in` from the master PIC's mask register
//!    (answered inside the host kernel with an in-kernel irqchip), `mmio0` a 32-bit store to
//!    unassigned MMIO per iteration.
//! 4. IRETQ to CPL3 with IOPL=3 and an all-allowing I/O bitmap (so port I/O is allowed there;
//!    PVM needs the bitmap), and the same four loops as `loop3`, `port3`, `pic3`, `mmio3`: on PVM CPL3 code runs
//!    natively, so the loop is free and these are the exit round trips alone.
//! 5. `done`, then isa-debug-exit (port 0xf4) with 0x10: tandem exits with status 0x21, QEMU
//!    too with `-device isa-debug-exit,iobase=0xf4,iosize=4`.

use std::process::ExitCode;

use iced_x86::code_asm::*;

/// Where the image is loaded (multiboot's usual 1 MiB); the 32-bit entry follows the header.
const LOAD: u32 = 0x10_0000;
const HEADER_LEN: u32 = 32;
/// The 64-bit code, assembled apart (CodeAssembler has one bitness per assembly).
const CODE64: u64 = 0x10_1000;
/// GDT, its pseudo-descriptor, the IDT's pseudo-descriptor; the IDT (filled at run time: the
/// handlers' addresses are known only once assembled).
const GDT: u64 = 0x10_8000;
const GDTR: u64 = 0x10_8100;
const IDTR: u64 = 0x10_8300;
const IDT: u64 = 0x10_8400;
const VECTORS: u64 = 32;
/// PML4, one PDPT and four page directories: 4 GiB identity-mapped in 2 MiB pages.
const PML4: u64 = 0x10_9000;
const PDPT: u64 = 0x10_a000;
const PD0: u64 = 0x10_b000;
/// The 64-bit TSS and its I/O permission bitmap (every port allowed, then the 0xff end byte).
const TSS: u64 = 0x10_f000;
const TSS_LEN: u64 = 104 + 8192 + 1;
const IMAGE_END: u64 = (TSS + TSS_LEN + 0xfff) & !0xfff;
/// Stacks, in RAM past the image (every machine here has at least 32 MiB).
const KERNEL_STACK: u64 = 0x18_0000;
const USER_STACK: u64 = 0x17_0000;

/// GDT selectors.
const KCODE: u32 = 0x08;
const KDATA: u32 = 0x10;
const UDATA: u32 = 0x18 | 3;
const UCODE: u32 = 0x20 | 3;
const TSS_SEL: u32 = 0x28;

/// A port no device claims on tandem's board nor on QEMU's pc or microvm (unclaimed ports read
/// all-ones and drop writes on both), so the figure is the exit path, not a device model.
const UNCLAIMED_PORT: u32 = 0x4f0;
/// Unassigned MMIO: below the I/O APIC (0xfec00000), above microvm's virtio-mmio slots
/// (0xfeb00000..) and in no PCI BAR with no PCI devices (hw/src/pc.rs: nothing is mapped
/// between the end of RAM and the I/O APIC).
const UNASSIGNED_MMIO: u64 = 0xfebf_0000;
const COM1: u32 = 0x3f8;
const DEBUG_EXIT: u32 = 0xf4;
/// PIT channel 2 count for the calibration (the largest: 54.9 ms).
const CAL_TICKS: u32 = 0xffff;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first() else {
        eprintln!("usage: bench_exit_guest OUT [N]");
        return ExitCode::FAILURE;
    };
    let n = match args.get(1).map(|s| s.parse::<u32>()) {
        None => 100_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("bench_exit_guest: N must be a positive 32-bit integer");
            return ExitCode::FAILURE;
        }
    };
    match image(n) {
        Ok(bytes) => match std::fs::write(out, bytes) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench_exit_guest: {out}: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("bench_exit_guest: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The whole multiboot image: header, 32-bit entry, 64-bit code, tables.
fn image(n: u32) -> Result<Vec<u8>, String> {
    let entry = u64::from(LOAD + HEADER_LEN);
    let code32 = code32().map_err(|e| e.to_string())?;
    let code64 = code64(n).map_err(|e| e.to_string())?;
    if entry + code32.len() as u64 > CODE64 || CODE64 + code64.len() as u64 > GDT {
        return Err("guest code outgrew its slots in the image".into());
    }
    let mut img = vec![0u8; (IMAGE_END - u64::from(LOAD)) as usize];
    let at = |addr: u64| (addr - u64::from(LOAD)) as usize;
    let put = |img: &mut Vec<u8>, addr: u64, bytes: &[u8]| {
        img[at(addr)..at(addr) + bytes.len()].copy_from_slice(bytes);
    };
    put(&mut img, u64::from(LOAD), &multiboot_header());
    put(&mut img, entry, &code32);
    put(&mut img, CODE64, &code64);
    put(&mut img, GDT, &gdt());
    let mut gdtr = Vec::new();
    gdtr.extend_from_slice(&(7u16 * 8 - 1).to_le_bytes());
    gdtr.extend_from_slice(&(GDT as u32).to_le_bytes());
    put(&mut img, GDTR, &gdtr);
    // 64-bit TSS: RSP0 (for the fault handlers), and an I/O bitmap that allows every port.
    // IOPL=3 alone would do on hardware, but PVM runs guest CPL3 at the host's IOPL 0: an
    // `in`/`out` there traps to the host kernel, which emulates it and, as measured here,
    // grants it through this bitmap only, whatever the guest's IOPL (without the bitmap the
    // guest gets #GP).
    let mut tss = vec![0u8; TSS_LEN as usize];
    tss[4..12].copy_from_slice(&KERNEL_STACK.to_le_bytes());
    tss[102..104].copy_from_slice(&104u16.to_le_bytes());
    tss[TSS_LEN as usize - 1] = 0xff;
    put(&mut img, TSS, &tss);
    let mut idtr = Vec::new();
    idtr.extend_from_slice(&((VECTORS * 16 - 1) as u16).to_le_bytes());
    idtr.extend_from_slice(&IDT.to_le_bytes());
    put(&mut img, IDTR, &idtr);
    // Present, writable, user: the CPL3 loops touch the code, their stack and the MMIO page.
    put(&mut img, PML4, &(PDPT | 7).to_le_bytes());
    for i in 0..4u64 {
        put(
            &mut img,
            PDPT + i * 8,
            &((PD0 + i * 0x1000) | 7).to_le_bytes(),
        );
        for j in 0..512u64 {
            let phys = (i << 30) | (j << 21);
            put(
                &mut img,
                PD0 + i * 0x1000 + j * 8,
                &(phys | 0x87).to_le_bytes(),
            );
        }
    }
    Ok(img)
}

/// Multiboot v1 with the a.out kludge (flags bit 16): QEMU refuses ELF64 multiboot kernels,
/// and both loaders take explicit load addresses.
fn multiboot_header() -> Vec<u8> {
    let magic = 0x1bad_b002u32;
    let flags = 1u32 << 16;
    let checksum = 0u32.wrapping_sub(magic).wrapping_sub(flags);
    let words = [
        magic,
        flags,
        checksum,
        LOAD,              // header_addr
        LOAD,              // load_addr
        0,                 // load_end_addr: the whole file
        0,                 // bss_end_addr: none
        LOAD + HEADER_LEN, // entry_addr
    ];
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Null, kernel code64, kernel data, user data, user code64, then the 16-byte TSS descriptor.
fn gdt() -> Vec<u8> {
    let mut g = Vec::new();
    for d in [
        0u64,
        0x00af_9a00_0000_ffff,
        0x00cf_9200_0000_ffff,
        0x00cf_f200_0000_ffff,
        0x00af_fa00_0000_ffff,
    ] {
        g.extend_from_slice(&d.to_le_bytes());
    }
    let base = TSS;
    let limit = TSS_LEN - 1;
    let low = limit
        | ((base & 0xff_ffff) << 16)
        | (0x89u64 << 40) // present, 64-bit TSS (available)
        | (((base >> 24) & 0xff) << 56);
    g.extend_from_slice(&low.to_le_bytes());
    g.extend_from_slice(&(base >> 32).to_le_bytes());
    g
}

/// Multiboot entry (32-bit protected mode, paging off): long mode on, then a far return into
/// the 64-bit code.
fn code32() -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(32)?;
    a.cli()?;
    a.lgdt(ptr(GDTR))?;
    a.mov(eax, KDATA)?;
    a.mov(ds, ax)?;
    a.mov(es, ax)?;
    a.mov(ss, ax)?;
    a.mov(esp, KERNEL_STACK as u32)?;
    a.mov(eax, cr4)?;
    a.or(eax, 0x20)?; // PAE
    a.mov(cr4, eax)?;
    a.mov(eax, PML4 as u32)?;
    a.mov(cr3, eax)?;
    a.mov(ecx, 0xc000_0080u32)?; // EFER
    a.rdmsr()?;
    a.or(eax, 0x100)?; // LME
    a.wrmsr()?;
    a.mov(eax, cr0)?;
    a.or(eax, 0x8000_0001u32 as i32)?; // PG, PE
    a.mov(cr0, eax)?;
    a.push(KCODE)?;
    a.push(CODE64 as u32)?;
    a.retf()?;
    a.assemble(u64::from(LOAD + HEADER_LEN))
}

/// Reads the TSC into RAX (RDX clobbered).
fn rdtsc64(a: &mut CodeAssembler) -> Result<(), IcedError> {
    a.rdtsc()?;
    a.shl(rdx, 32)?;
    a.or(rax, rdx)
}

/// Writes one byte in AL to COM1 once it can take it (clobbers DX, keeps AL). The UART's
/// THRE wait keeps output whole on real 16550s and emulators alike.
fn putc_al(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut wait = a.create_label();
    a.mov(r9d, eax)?;
    a.mov(dx, COM1 + 5)?;
    a.set_label(&mut wait)?;
    a.in_(al, dx)?;
    a.test(al, 0x20)?;
    a.jz(wait)?;
    a.mov(eax, r9d)?;
    a.mov(dx, COM1)?;
    a.out(dx, al)
}

/// Prints a constant string.
fn puts(a: &mut CodeAssembler, s: &str) -> Result<(), IcedError> {
    for b in s.bytes() {
        a.mov(al, u32::from(b))?;
        putc_al(a)?;
    }
    Ok(())
}

/// Emits (jumped over) a routine printing RAX as 16 hex digits; clobbers RAX, RCX, RDX, R8,
/// R9. Returns its label.
fn put_hex64_routine(a: &mut CodeAssembler) -> Result<CodeLabel, IcedError> {
    let mut over = a.create_label();
    let mut routine = a.create_label();
    let mut digit = a.create_label();
    let mut decimal = a.create_label();
    a.jmp(over)?;
    a.set_label(&mut routine)?;
    a.mov(r8, rax)?;
    a.mov(ecx, 16u32)?;
    a.set_label(&mut digit)?;
    a.rol(r8, 4)?;
    a.mov(rax, r8)?;
    a.and(eax, 0xf)?;
    a.add(eax, i32::from(b'0'))?;
    a.cmp(eax, i32::from(b'9'))?;
    a.jbe(decimal)?;
    a.add(eax, i32::from(b'a' - b'9' - 1))?;
    a.set_label(&mut decimal)?;
    putc_al(a)?;
    a.dec(ecx)?;
    a.jnz(digit)?;
    a.ret()?;
    a.set_label(&mut over)?;
    Ok(routine)
}

/// Prints `TANDEM-EXIT <name> <iterations> <cycles>` with the cycles in R13.
fn report(
    a: &mut CodeAssembler,
    hex: CodeLabel,
    name: &str,
    iterations: u64,
) -> Result<(), IcedError> {
    puts(a, &format!("TANDEM-EXIT {name} "))?;
    a.mov(rax, iterations)?;
    a.call(hex)?;
    puts(a, " ")?;
    a.mov(rax, r13)?;
    a.call(hex)?;
    puts(a, "\n")
}

/// One timed loop of `n` iterations whose body `body` emits (RCX is the counter; RSI holds the
/// MMIO address and DX the unclaimed port); the TSC delta lands in R13.
fn timed_loop(
    a: &mut CodeAssembler,
    n: u32,
    body: impl Fn(&mut CodeAssembler) -> Result<(), IcedError>,
) -> Result<(), IcedError> {
    let mut top = a.create_label();
    rdtsc64(a)?;
    a.mov(r12, rax)?;
    a.mov(rsi, UNASSIGNED_MMIO)?;
    a.mov(dx, UNCLAIMED_PORT)?;
    a.xor(eax, eax)?;
    a.mov(ecx, n)?;
    a.set_label(&mut top)?;
    body(a)?;
    a.dec(ecx)?;
    a.jnz(top)?;
    rdtsc64(a)?;
    a.sub(rax, r12)?;
    a.mov(r13, rax)
}

/// The four loops (empty, unclaimed port, PIC port, MMIO) at the current privilege, reported
/// with `suffix`.
fn loops(a: &mut CodeAssembler, hex: CodeLabel, n: u32, suffix: &str) -> Result<(), IcedError> {
    timed_loop(a, n, |_| Ok(()))?;
    report(a, hex, &format!("loop{suffix}"), n.into())?;
    timed_loop(a, n, |a| a.out(dx, al))?;
    report(a, hex, &format!("port{suffix}"), n.into())?;
    // The master PIC's mask register: with an in-kernel irqchip (tandem's default, QEMU's
    // with KVM) the host kernel answers it without returning to the VMM, so port - pic is
    // the cost of the trip through user space and the VMM's dispatch.
    timed_loop(a, n, |a| a.in_(al, 0x21))?;
    report(a, hex, &format!("pic{suffix}"), n.into())?;
    timed_loop(a, n, |a| a.mov(dword_ptr(rsi), eax))?;
    report(a, hex, &format!("mmio{suffix}"), n.into())
}

/// Emits (jumped over) one stub per exception vector and a common handler that prints
/// `TANDEM-EXIT fault <vector> <error code> <rip>` and ends the run through isa-debug-exit
/// with 0x11, then fills the IDT with their gates: an engine that refuses something this
/// guest does (an IRETQ to CPL3, a port at CPL3) is then reported, not a silent triple fault.
fn fault_handlers(a: &mut CodeAssembler, hex: CodeLabel) -> Result<(), IcedError> {
    let mut over = a.create_label();
    let mut common = a.create_label();
    let mut stubs = Vec::new();
    a.jmp(over)?;
    for vector in 0..VECTORS {
        let mut stub = a.create_label();
        a.set_label(&mut stub)?;
        // The vectors for which the CPU pushes an error code.
        if !matches!(vector, 8 | 10..=14 | 17) {
            a.push(0)?;
        }
        a.push(vector as i32)?;
        a.jmp(common)?;
        stubs.push(stub);
    }
    a.set_label(&mut common)?;
    puts(a, "TANDEM-EXIT fault ")?;
    a.pop(rax)?;
    a.call(hex)?;
    puts(a, " ")?;
    a.pop(rax)?;
    a.call(hex)?;
    puts(a, " ")?;
    a.pop(rax)?;
    a.call(hex)?;
    puts(a, "\n")?;
    a.mov(dx, DEBUG_EXIT)?;
    a.mov(eax, 0x11u32)?;
    a.out(dx, eax)?;
    a.hlt()?;
    a.set_label(&mut over)?;
    for (vector, stub) in stubs.into_iter().enumerate() {
        let gate = IDT + vector as u64 * 16;
        a.lea(rax, ptr(stub))?;
        a.mov(rdi, gate)?;
        a.mov(word_ptr(rdi), ax)?;
        a.mov(word_ptr(rdi + 2), KCODE)?;
        a.mov(word_ptr(rdi + 4), 0x8e00u32)?; // present, DPL0, 64-bit interrupt gate
        a.shr(rax, 16)?;
        a.mov(word_ptr(rdi + 6), ax)?;
        a.shr(rax, 16)?;
        a.mov(dword_ptr(rdi + 8), eax)?;
        a.mov(dword_ptr(rdi + 12), 0u32)?;
    }
    a.mov(rax, IDTR)?;
    a.lidt(ptr(rax))
}

/// TSC cycles over CAL_TICKS ticks of PIT channel 2 into R13: mode 0, gate on, speaker off;
/// OUT2 (port 0x61 bit 5) rises when the count runs out.
fn calibrate(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut poll = a.create_label();
    a.in_(al, 0x61)?;
    a.and(al, 0xfc)?;
    a.or(al, 1)?;
    a.out(0x61, al)?;
    a.mov(al, 0xb0u32)?; // channel 2, lobyte/hibyte, mode 0, binary
    a.out(0x43, al)?;
    a.mov(al, CAL_TICKS & 0xff)?;
    a.out(0x42, al)?;
    a.mov(al, CAL_TICKS >> 8)?;
    a.out(0x42, al)?;
    rdtsc64(a)?;
    a.mov(r12, rax)?;
    a.set_label(&mut poll)?;
    a.in_(al, 0x61)?;
    a.test(al, 0x20)?;
    a.jz(poll)?;
    rdtsc64(a)?;
    a.sub(rax, r12)?;
    a.mov(r13, rax)
}

/// The long-mode part: calibration, the CPL0 loops, the drop to CPL3, the CPL3 loops, exit.
fn code64(n: u32) -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    let mut user = a.create_label();
    let mut hang = a.create_label();
    a.mov(eax, KDATA)?;
    a.mov(ds, ax)?;
    a.mov(es, ax)?;
    a.mov(ss, ax)?;
    a.mov(fs, ax)?;
    a.mov(gs, ax)?;
    a.mov(rsp, KERNEL_STACK)?;
    a.mov(eax, TSS_SEL)?;
    a.ltr(ax)?;
    let hex = put_hex64_routine(&mut a)?;
    fault_handlers(&mut a, hex)?;
    puts(&mut a, "TANDEM-EXIT start\n")?;

    // Three windows: a window stretched by the host descheduling the vCPU thread reads too
    // many cycles, so micro.py takes the smallest.
    for _ in 0..3 {
        calibrate(&mut a)?;
        report(&mut a, hex, "cal", CAL_TICKS.into())?;
    }

    loops(&mut a, hex, n, "0")?;

    // To CPL3: SS, RSP, RFLAGS (IOPL=3, interrupts off), CS, RIP.
    a.push(UDATA as i32)?;
    a.mov(rax, USER_STACK)?;
    a.push(rax)?;
    a.push(0x3002)?;
    a.push(UCODE as i32)?;
    a.lea(rax, ptr(user))?;
    a.push(rax)?;
    a.iretq()?;
    a.set_label(&mut user)?;
    loops(&mut a, hex, n, "3")?;
    puts(&mut a, "TANDEM-EXIT done\n")?;
    a.mov(dx, DEBUG_EXIT)?;
    a.mov(eax, 0x10u32)?;
    a.out(dx, eax)?;
    // Not reached on an engine with isa-debug-exit; `hlt` at CPL3 faults, and the fault
    // handler ends the run.
    a.set_label(&mut hang)?;
    a.hlt()?;
    a.jmp(hang)?;
    a.assemble(CODE64)
}
