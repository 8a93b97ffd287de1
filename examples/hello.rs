//! The demo guest: a tiny 64-bit kernel, assembled here with iced-x86, run on the machine
//! through the library API. It prints a banner, echoes each typed line in upper case, and
//! powers off on an empty line (through isa-debug-exit).
//!
//! `cargo run --release --example hello` (add `-- tcg` or `-- kvm` to pick the engine).

use std::process::ExitCode;

use iced_x86::code_asm::*;
use tandem::machine::Machine;
use tandem::runloop::{RunOptions, RunOutcome};
use tandem::{AccelKind, MachineConfig};

const LOAD: u64 = 0x20_0000;

fn putc_al(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut wait = a.create_label();
    a.mov(bl, al)?;
    a.set_label(&mut wait)?;
    a.mov(dx, 0x3fdu32)?;
    a.in_(al, dx)?;
    a.test(al, 0x20)?;
    a.jz(wait)?;
    a.mov(dx, 0x3f8u32)?;
    a.mov(al, bl)?;
    a.out(dx, al)
}

fn guest() -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    let mut banner = a.create_label();
    let mut print = a.create_label();
    let mut prompt = a.create_label();
    let mut poll = a.create_label();
    let mut keep = a.create_label();
    let mut line_end = a.create_label();
    let mut off = a.create_label();

    a.lea(rsi, ptr(banner))?;
    a.set_label(&mut print)?;
    a.mov(al, byte_ptr(rsi))?;
    a.test(al, al)?;
    a.jz(prompt)?;
    putc_al(&mut a)?;
    a.inc(rsi)?;
    a.jmp(print)?;
    a.set_label(&mut prompt)?;
    a.xor(ecx, ecx)?; // characters on this line
    a.mov(al, b'>' as u32)?;
    putc_al(&mut a)?;
    a.mov(al, b' ' as u32)?;
    putc_al(&mut a)?;
    a.set_label(&mut poll)?;
    a.mov(dx, 0x3fdu32)?;
    a.in_(al, dx)?;
    a.test(al, 1)?;
    a.jz(poll)?;
    a.mov(dx, 0x3f8u32)?;
    a.in_(al, dx)?;
    a.cmp(al, b'\r' as i32)?;
    a.je(line_end)?;
    a.cmp(al, b'\n' as i32)?;
    a.je(line_end)?;
    a.inc(ecx)?;
    a.cmp(al, b'a' as i32)?;
    a.jb(keep)?;
    a.cmp(al, b'z' as i32)?;
    a.ja(keep)?;
    a.sub(al, 0x20)?;
    a.set_label(&mut keep)?;
    putc_al(&mut a)?;
    a.jmp(poll)?;
    a.set_label(&mut line_end)?;
    a.mov(al, b'\r' as u32)?;
    putc_al(&mut a)?;
    a.mov(al, b'\n' as u32)?;
    putc_al(&mut a)?;
    a.test(ecx, ecx)?;
    a.jz(off)?;
    a.jmp(prompt)?;
    a.set_label(&mut off)?;
    a.mov(dx, 0xf4u32)?;
    a.xor(eax, eax)?;
    a.out(dx, eax)?;
    a.hlt()?;
    a.set_label(&mut banner)?;
    a.db(b"tandem demo guest: type a line and it comes back in upper case;\r\n")?;
    a.db(b"an empty line powers the machine off (Ctrl-A x quits at any time).\r\n\0")?;
    a.assemble(LOAD)
}

/// A minimal ELF64 executable: one PT_LOAD of `code` at `addr`.
fn elf64(code: &[u8], addr: u64) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&0x3eu16.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&addr.to_le_bytes());
    f.extend_from_slice(&64u64.to_le_bytes());
    f.extend_from_slice(&0u64.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    for h in [64u16, 56, 1, 64, 0, 0] {
        f.extend_from_slice(&h.to_le_bytes());
    }
    for w in [1u32, 7] {
        f.extend_from_slice(&w.to_le_bytes());
    }
    for q in [
        120u64,
        addr,
        addr,
        code.len() as u64,
        code.len() as u64,
        0x1000,
    ] {
        f.extend_from_slice(&q.to_le_bytes());
    }
    f.extend_from_slice(code);
    f
}

fn main() -> ExitCode {
    let accel = match std::env::args().nth(1).as_deref() {
        Some("tcg") => AccelKind::Tcg,
        _ => AccelKind::Kvm,
    };
    let image = match guest() {
        Ok(code) => elf64(&code, LOAD),
        Err(e) => {
            eprintln!("hello: assembling the guest: {e}");
            return ExitCode::from(1);
        }
    };
    let dir = std::env::temp_dir().join(format!("tandem-hello-{}", std::process::id()));
    let path = dir.join("hello.elf");
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, &image)) {
        eprintln!("hello: writing {}: {e}", path.display());
        return ExitCode::from(1);
    }
    tandem::signals::install();
    let result = Machine::new(MachineConfig::new(accel, &path)).and_then(|mut m| {
        m.run(RunOptions {
            watch_signals: true,
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(RunOutcome::DebugExit(0)) | Ok(RunOutcome::PowerOff) => ExitCode::SUCCESS,
        Ok(other) => {
            if let Some(m) = other.message() {
                eprintln!("hello: {m}");
            }
            ExitCode::from(other.exit_status() as u8)
        }
        Err(e) => {
            eprintln!("hello: {e}");
            ExitCode::from(1)
        }
    }
}
