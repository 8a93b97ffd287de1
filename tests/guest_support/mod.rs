//! Running small guests on the engines and checking what they print, and the code fragments
//! guests share (IDT gates, the 8259, port writes), for the whole-machine test files.

#![allow(dead_code)]

use iced_x86::code_asm::*;

use crate::common::*;

pub mod apic;

/// Where 64-bit test guests are loaded (ELF64) and entered.
pub const LOAD64: u64 = 0x20_0000;
/// Where multiboot test guests are loaded.
pub const LOAD32: u32 = 0x10_0000;

/// Assembles 64-bit guest code at [`LOAD64`].
pub fn assemble64(build: impl FnOnce(&mut CodeAssembler)) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    build(&mut a);
    a.assemble(LOAD64).unwrap()
}

/// Assembles 32-bit guest code after the multiboot header at [`LOAD32`].
pub fn assemble32(build: impl FnOnce(&mut CodeAssembler)) -> Vec<u8> {
    let mut a = CodeAssembler::new(32).unwrap();
    build(&mut a);
    a.assemble(u64::from(LOAD32 + MULTIBOOT_HEADER_LEN))
        .unwrap()
}

/// Runs `image` as `-kernel` on `engine` in a 32 MiB machine with serial on stdio.
pub fn run_kernel(
    test: &str,
    engine: &Engine,
    image: &[u8],
    extra: &[&str],
    stdin: &[u8],
) -> std::process::Output {
    let dir = scratch(&format!("{test}-{}", engine.name.replace([',', '='], "_")));
    let kernel = write_file(&dir, "kernel", image);
    let mut args: Vec<&str> = engine.args.to_vec();
    let k = kernel.to_str().unwrap().to_string();
    args.extend_from_slice(&["-m", "32", "-kernel", &k, "-serial", "stdio"]);
    args.extend_from_slice(extra);
    tandem(&args, stdin)
}

/// What a guest run must produce.
pub struct Expect<'a> {
    /// Exactly this on the serial port.
    pub stdout: &'a str,
    /// This process exit status.
    pub status: i32,
}

/// The JIT's engines (every tier): for behaviour of the board's own APICs, which KVM's
/// in-kernel irqchip replaces.
pub fn tcg_engines(test: &str) -> Vec<Engine> {
    engines(test)
        .into_iter()
        .filter(|e| e.name.starts_with("tcg"))
        .collect()
}

/// Runs `image` with `extra` arguments and `stdin` on the engines `select` picks for `test`
/// ([`engines`] for every one), checking `want`; returns each run's output for further checks.
pub fn on_engines(
    select: fn(&str) -> Vec<Engine>,
    test: &str,
    image: &[u8],
    extra: &[&str],
    stdin: &[u8],
    want: Expect,
) -> Vec<(String, std::process::Output)> {
    let mut outs = Vec::new();
    for engine in select(test) {
        let out = run_kernel(test, &engine, image, extra, stdin);
        let ctx = format!("[{} {}] stderr: {}", test, engine.name, stderr(&out));
        assert_eq!(stdout(&out), want.stdout, "{ctx}");
        assert_eq!(out.status.code(), Some(want.status), "{ctx}");
        outs.push((engine.name.to_string(), out));
    }
    outs
}

/// The exit status after the guest writes `code` to isa-debug-exit.
pub fn debug_exit_status(code: i32) -> i32 {
    code << 1 | 1
}

/// Builds a 64-bit IDT gate for `vector` pointing at `handler`, at run time (the handler's
/// address is only known once assembled). IDT at `idt`. Clobbers RAX and RDI.
pub fn set_gate64(a: &mut CodeAssembler, idt: u64, vector: u64, handler: CodeLabel) {
    a.lea(rax, ptr(handler)).unwrap();
    a.mov(rdi, idt + vector * 16).unwrap();
    a.mov(word_ptr(rdi), ax).unwrap();
    a.mov(word_ptr(rdi + 2), 0x08).unwrap();
    a.mov(word_ptr(rdi + 4), 0x8e00).unwrap();
    a.shr(rax, 16).unwrap();
    a.mov(word_ptr(rdi + 6), ax).unwrap();
    a.shr(rax, 16).unwrap();
    a.mov(dword_ptr(rdi + 8), eax).unwrap();
    a.mov(dword_ptr(rdi + 12), 0).unwrap();
}

/// Loads IDTR with `base`/`limit`, using scratch memory at `at`. Clobbers RAX.
pub fn load_idt64(a: &mut CodeAssembler, at: u64, base: u64, limit: u16) {
    a.mov(rax, at).unwrap();
    a.mov(word_ptr(rax), limit as u32).unwrap();
    a.mov(rdi, base).unwrap();
    a.mov(qword_ptr(rax + 2), rdi).unwrap();
    a.lidt(ptr(rax)).unwrap();
}

/// Initializes the 8259 pair (ICW1-4: vectors 0x20/0x28, cascade on IRQ 2, 8086 mode) with
/// `master_imr` as the master's mask and every slave line masked.
pub fn init_pics(a: &mut CodeAssembler, master_imr: u8) {
    for (port, v) in [
        (0x20, 0x11),
        (0xa0, 0x11),
        (0x21, 0x20),
        (0xa1, 0x28),
        (0x21, 4),
        (0xa1, 2),
        (0x21, 1),
        (0xa1, 1),
        (0x21, master_imr),
        (0xa1, 0xff),
    ] {
        outb(a, port, v);
    }
}

pub fn outb(a: &mut CodeAssembler, port: u16, value: u8) {
    a.mov(dx, port as u32).unwrap();
    a.mov(al, value as u32).unwrap();
    a.out(dx, al).unwrap();
}

/// Emits a subroutine that prints EAX as 8 hex digits on COM1 (clobbers RAX, RCX, RDX, R8),
/// jumped over by the code around it; returns its label for `call`.
pub fn put_hex32_routine(a: &mut CodeAssembler) -> CodeLabel {
    let mut over = a.create_label();
    let mut routine = a.create_label();
    let mut digit = a.create_label();
    let mut decimal = a.create_label();
    a.jmp(over).unwrap();
    a.set_label(&mut routine).unwrap();
    a.mov(r8d, eax).unwrap();
    a.mov(ecx, 8u32).unwrap();
    a.set_label(&mut digit).unwrap();
    a.rol(r8d, 4).unwrap();
    crate::common::asm::wait_thre(a);
    a.mov(eax, r8d).unwrap();
    a.and(eax, 0xf).unwrap();
    a.add(eax, b'0' as i32).unwrap();
    a.cmp(eax, b'9' as i32).unwrap();
    a.jbe(decimal).unwrap();
    a.add(eax, (b'a' - b'9' - 1) as i32).unwrap();
    a.set_label(&mut decimal).unwrap();
    a.mov(dx, crate::common::asm::COM1 as u32).unwrap();
    a.out(dx, al).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(digit).unwrap();
    a.ret().unwrap();
    a.set_label(&mut over).unwrap();
    routine
}
