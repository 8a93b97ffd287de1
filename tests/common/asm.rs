//! Guest code fragments for the machine tests, assembled with iced-x86's CodeAssembler.
//! The same fragments assemble for 32-bit and 64-bit code (they only use dx/al/eax).

use iced_x86::code_asm::*;

/// COM1 data port.
pub const COM1: u16 = 0x3f8;
/// isa-debug-exit port.
pub const DEBUG_EXIT: u16 = 0xf4;

/// Writes `text` to COM1, waiting for THRE before each byte as a real driver does.
pub fn puts(a: &mut CodeAssembler, text: &str) {
    for &b in text.as_bytes() {
        putc(a, b);
    }
}

/// Writes the constant `b` to COM1.
pub fn putc(a: &mut CodeAssembler, b: u8) {
    wait_thre(a);
    a.mov(dx, COM1 as u32).unwrap();
    a.mov(al, b as u32).unwrap();
    a.out(dx, al).unwrap();
}

/// Spins until COM1 can take a byte (LSR bit 5). Clobbers AL and DX.
pub fn wait_thre(a: &mut CodeAssembler) {
    let mut again = a.create_label();
    // The label is not on the first instruction: callers may have labelled that one.
    a.mov(dx, (COM1 + 5) as u32).unwrap();
    a.set_label(&mut again).unwrap();
    a.in_(al, dx).unwrap();
    a.test(al, 0x20).unwrap();
    a.jz(again).unwrap();
}

/// Writes `code` to isa-debug-exit (process exit status `(code << 1) | 1`), then halts forever.
pub fn exit(a: &mut CodeAssembler, code: u32) {
    a.mov(dx, DEBUG_EXIT as u32).unwrap();
    a.mov(eax, code).unwrap();
    a.out(dx, eax).unwrap();
    hang(a);
}

/// `cli; hlt` in a loop.
pub fn hang(a: &mut CodeAssembler) {
    let mut l = a.create_label();
    a.set_label(&mut l).unwrap();
    a.cli().unwrap();
    a.hlt().unwrap();
    a.jmp(l).unwrap();
}
