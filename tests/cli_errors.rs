//! Bad command lines and bad kernels: one clear line naming the problem, exit status 1,
//! never a panic or a backtrace. None of these needs an engine to start.

mod common;

use common::*;

fn fails_with(args: &[&str], needle: &str) {
    let out = tandem(args, b"");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected '{needle}' in: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}

#[test]
fn missing_kernel_file() {
    fails_with(
        &["-kernel", "/nonexistent/kernel.elf"],
        "/nonexistent/kernel.elf",
    );
}

#[test]
fn no_kernel_at_all() {
    fails_with(&[], "-kernel");
}

#[test]
fn truncated_elf() {
    let dir = scratch("truncated_elf");
    let image = elf64(&[0x90; 64], 0x20_0000);
    let k = write_file(&dir, "k.elf", &image[..100]);
    fails_with(&["-kernel", k.to_str().unwrap()], "k.elf");
    let out = tandem(&["-kernel", k.to_str().unwrap()], b"");
    assert!(
        stderr(&out).to_lowercase().contains("truncated"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn kernel_larger_than_ram() {
    let dir = scratch("kernel_larger_than_ram");
    let image = elf64(&vec![0x90; 3 << 20], 0x20_0000);
    let k = write_file(&dir, "big.elf", &image);
    fails_with(&["-m", "2", "-kernel", k.to_str().unwrap()], "big.elf");
}

#[test]
fn unknown_format() {
    let dir = scratch("unknown_format");
    let k = write_file(&dir, "junk.bin", b"this is not a kernel at all");
    fails_with(&["-kernel", k.to_str().unwrap()], "junk.bin");
}

#[test]
fn zero_ram() {
    fails_with(&["-m", "0", "-kernel", "k"], "-m");
}

#[test]
fn unknown_option() {
    fails_with(&["-kernel", "k", "-frobnicate"], "-frobnicate");
    fails_with(&["-kernel", "k", "--frobnicate"], "--frobnicate");
}

#[test]
fn bad_values_name_their_option() {
    fails_with(&["-kernel", "k", "-m", "lots"], "-m");
    fails_with(&["-kernel", "k", "-accel", "hvf"], "hvf");
    fails_with(&["-kernel", "k", "-serial", "pty"], "pty");
    fails_with(
        &["-kernel", "k", "-machine", "pc,kernel-irqchip=maybe"],
        "kernel-irqchip",
    );
}

#[test]
fn bad_engine_options_name_themselves() {
    fails_with(&["-kernel", "k", "-accel", "tcg,tier=warp"], "warp");
    fails_with(&["-kernel", "k", "-accel", "kvm,tier=jit"], "tier=jit");
    fails_with(&["-kernel", "k", "-d", "nonsense"], "nonsense");
}

#[test]
fn help_and_accel_help_exit_zero() {
    let out = tandem(&["--help"], b"");
    assert_eq!(out.status.code(), Some(0));
    for opt in [
        "-accel",
        "-kernel",
        "-initrd",
        "-append",
        "-serial",
        "-no-reboot",
        "-machine",
        "-m",
    ] {
        assert!(stdout(&out).contains(opt), "--help lacks {opt}");
    }
    let out = tandem(&["-accel", "help"], b"");
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("kvm"));
}
