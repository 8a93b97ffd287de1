//! Shared pieces of the machine tests: guest images built from CodeAssembler output, running
//! the `tandem` binary, and the list of engines every guest test runs on.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// An engine a test can run on, with the extra arguments that select it.
pub struct Engine {
    /// Name for messages.
    pub name: &'static str,
    /// Arguments for the command line.
    pub args: &'static [&'static str],
}

/// Records that `test` did not run, and why: printed, and appended to the file the test
/// command counts (TANDEM_SKIP_LOG).
pub fn skipped(test: &str, why: &str) {
    let line = format!("SKIPPED {test}: {why}");
    eprintln!("{line}");
    println!("{line}");
    if let Ok(path) = std::env::var("TANDEM_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Every engine built into this binary that can run here; the others are reported skipped.
pub fn engines(test: &str) -> Vec<Engine> {
    let mut v = Vec::new();
    match kvm_usable() {
        Ok(()) => {
            v.push(Engine {
                name: "kvm",
                args: &["-accel", "kvm"],
            });
            v.push(Engine {
                name: "kvm,kernel-irqchip=off",
                args: &["-accel", "kvm", "-machine", "pc,kernel-irqchip=off"],
            });
        }
        Err(why) => skipped(&format!("{test} [kvm]"), &why),
    }
    v.push(Engine {
        name: "tcg,tier=interp",
        args: &["-accel", "tcg,tier=interp"],
    });
    v.push(Engine {
        name: "tcg,tier=jit",
        args: &["-accel", "tcg,tier=jit"],
    });
    v.push(Engine {
        name: "tcg",
        args: &["-accel", "tcg"],
    });
    v
}

/// The KVM engines only, for tests of KVM-specific behaviour.
pub fn kvm_engines(test: &str) -> Vec<Engine> {
    engines(test)
        .into_iter()
        .filter(|e| e.name.starts_with("kvm"))
        .collect()
}

/// Whether /dev/kvm can be opened.
pub fn kvm_usable() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(|_| ())
        .map_err(|e| format!("/dev/kvm unavailable: {e}"))
}

/// Whether /dev/kvm has hardware virtualization (VMX or SVM) behind it, which a guest that
/// runs its own kernel (a Linux boot) needs. The PVM backend (kvm_pvm, DESIGN.md) runs CPL3
/// natively but emulates CPL0 in the host kernel, without some instructions a kernel uses:
/// Err with the reason there, and wherever /dev/kvm is missing.
pub fn kvm_hardware_virtualization() -> Result<(), String> {
    kvm_usable()?;
    let module = |m: &str| std::path::Path::new("/sys/module").join(m).exists();
    if module("kvm_pvm") {
        let why = "/dev/kvm is the PVM backend (kvm_pvm, no VMX/SVM): it emulates guest CPL0 \
                   code and cannot boot a Linux kernel";
        return Err(why.into());
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has_flag = |flag: &str| {
        cpuinfo
            .lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|w| w == flag))
    };
    if !has_flag("vmx") && !has_flag("svm") {
        return Err("the host CPU shows neither vmx nor svm in /proc/cpuinfo".into());
    }
    if !module("kvm_intel") && !module("kvm_amd") {
        return Err("/dev/kvm is served by neither kvm_intel nor kvm_amd".into());
    }
    Ok(())
}

/// A fresh scratch directory for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn write_file(dir: &std::path::Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A minimal ELF64 executable with one PT_LOAD segment of `code` at `addr`, entered there.
pub fn elf64(code: &[u8], addr: u64) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(b"\x7fELF");
    f.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little-endian, version 1, SysV
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&0x3eu16.to_le_bytes()); // x86-64
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&addr.to_le_bytes()); // e_entry
    f.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    f.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
    f.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
    f.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    f.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    f.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    f.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    assert_eq!(f.len(), 64);
    let off = 64 + 56u64;
    f.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f.extend_from_slice(&7u32.to_le_bytes()); // RWX
    f.extend_from_slice(&off.to_le_bytes());
    f.extend_from_slice(&addr.to_le_bytes()); // vaddr
    f.extend_from_slice(&addr.to_le_bytes()); // paddr
    f.extend_from_slice(&(code.len() as u64).to_le_bytes());
    f.extend_from_slice(&(code.len() as u64).to_le_bytes());
    f.extend_from_slice(&0x1000u64.to_le_bytes());
    f.extend_from_slice(code);
    f
}

/// Size of the multiboot header [`multiboot_aout`] puts before the code.
pub const MULTIBOOT_HEADER_LEN: u32 = 32;

/// A multiboot v1 kernel using the a.out kludge: the header, then `code`, loaded at `addr`;
/// the entry is the first byte of `code` (`addr + MULTIBOOT_HEADER_LEN`).
pub fn multiboot_aout(code: &[u8], addr: u32) -> Vec<u8> {
    let magic = 0x1bad_b002u32;
    let flags = 1u32 << 16;
    let checksum = 0u32.wrapping_sub(magic).wrapping_sub(flags);
    let mut f = Vec::new();
    for w in [
        magic,
        flags,
        checksum,
        addr,                        // header_addr
        addr,                        // load_addr
        0,                           // load_end_addr: whole file
        0,                           // bss_end_addr: none
        addr + MULTIBOOT_HEADER_LEN, // entry_addr
    ] {
        f.extend_from_slice(&w.to_le_bytes());
    }
    f.extend_from_slice(code);
    f
}

/// Runs the tandem binary with `args`, feeding `stdin`, with a time limit.
pub fn tandem(args: &[&str], stdin: &[u8]) -> Output {
    tandem_with_input(args, stdin, std::time::Duration::ZERO)
}

/// As [`tandem`], waiting `delay` before typing `stdin` (so the guest is already polling).
pub fn tandem_with_input(args: &[&str], stdin: &[u8], delay: std::time::Duration) -> Output {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tandem");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(delay);
        let _ = input.write_all(&data);
    });
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let limit = std::time::Duration::from_secs(120);
    let start = std::time::Instant::now();
    let status = loop {
        match child.try_wait().unwrap() {
            Some(status) => break status,
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "tandem {args:?} did not finish in {limit:?}\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&out_reader.join().unwrap()),
                    String::from_utf8_lossy(&err_reader.join().unwrap())
                );
            }
            None => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    };
    let _ = writer.join();
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub mod asm;
pub mod fixtures;
pub mod linux_guest;
pub mod sha256;
