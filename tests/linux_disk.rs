//! Disks under the Linux guest fixture (fixtures/README.md): an ext4 image made on the host
//! with mkfs.ext4, attached as a user would (`-drive file=IMG,format=...,if=none,id=d0
//! -device virtio-blk-pci,drive=d0,serial=tandem-disk`), read and written by the guest's
//! virtio_blk driver, then checked on the host with e2fsprogs and qemu-img as the reference
//! tools: `e2fsck -fn` finds the file system clean, `debugfs` reads back what the guest wrote,
//! `qemu-img check` finds the qcow2 metadata consistent. The qcow2 overlay is made by
//! `tandem img create`, the other qcow2 image by `qemu-img convert`.
//!
//! The kernel command line `tandem.disk=1` makes /init (fixtures/init.sh) mount /dev/vda, hash
//! hello.txt, write written.txt (1 MiB), sync, hash it again from the disk, unmount and power
//! off, reporting each step with a TANDEM-DISK-* marker. The crash test drives the guest's
//! shell instead (`tandem.shell=1`) and kills the emulator with SIGKILL while the guest writes.
//!
//! Each boot is the debug build's full Linux boot (2-3 minutes of CPU): at most two run at
//! once ([`BootSlot`]), so the file keeps the two cores of CI busy without swamping them. The
//! guards against a hung guest are tests/common/linux_guest.rs's. Without the fixtures, or
//! without e2fsprogs (mkfs.ext4, debugfs, e2fsck) or qemu-img where a test needs them, a test
//! reports itself skipped with the reason.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use common::fixtures::Fixtures;
use common::linux_guest::{
    fixtures_or_skip, marker, markers, Guest, Stop, HANG_GUARD, PROMPT, SILENCE_GUARD,
};
use common::{scratch, sha256, skipped};

/// The sha256 of the file /init writes (fixtures/init.sh): on the host,
/// `{ echo tandem wrote this; seq -f %063g 0 16383; } | sha256sum`.
const WRITTEN_SHA256: &str = "fc5234ccb691ce0f2ca25af2f3a53f0dc6a06f8b9a86b84b932978c5d9523401";

/// hello.txt, put into the file system by mkfs.ext4 -d for the guest to read.
const HELLO: &[u8] = b"hello from the host: tandem's guest reads this from an ext4 disk\n";

/// The size of the images of the disk-mode tests, and what the guest must see of it.
const DISK_MIB: u64 = 64;
const DISK_SECTORS: u64 = DISK_MIB * 1024 * 1024 / 512;

/// The crash test's image: big enough that the guest is still writing when it is killed.
const CRASH_DISK_MIB: u64 = 256;

/// How much the crash test's image must have grown on the host, after the flushed file, before
/// the emulator is killed: proof that the guest's writes were reaching the image.
const CRASH_GROWTH: u64 = 16 << 20;

/// The serial the tests give the disk (`-device virtio-blk-pci,...,serial=`).
const SERIAL: &str = "tandem-disk";

/// Boots of this file running now, and the signal that one ended.
static RUNNING: Mutex<usize> = Mutex::new(0);
static ENDED: Condvar = Condvar::new();

/// How many boots of this file may run at once: the tests run in parallel, and each boot keeps
/// one core busy.
const MAX_BOOTS: usize = 2;

/// The right to run one boot, given back when dropped.
struct BootSlot;

impl BootSlot {
    /// Waits until fewer than [`MAX_BOOTS`] boots run.
    fn take() -> BootSlot {
        let mut n = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= MAX_BOOTS {
            n = ENDED.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        BootSlot
    }
}

impl Drop for BootSlot {
    fn drop(&mut self) {
        *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        ENDED.notify_one();
    }
}

/// The host tools a test uses.
struct Tools {
    mkfs: PathBuf,
    debugfs: PathBuf,
    e2fsck: PathBuf,
    /// None when the test does not need it.
    qemu_img: Option<PathBuf>,
}

/// Finds `name` on PATH or in the sbin directories (e2fsprogs installs there, often off a
/// user's PATH).
fn find_tool(name: &str, package: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} not installed (apt-get install {package})"))
}

/// e2fsprogs, and qemu-img when `qemu_img`; Err with what is missing.
fn tools(qemu_img: bool) -> Result<Tools, String> {
    Ok(Tools {
        mkfs: find_tool("mkfs.ext4", "e2fsprogs")?,
        debugfs: find_tool("debugfs", "e2fsprogs")?,
        e2fsck: find_tool("e2fsck", "e2fsprogs")?,
        qemu_img: if qemu_img {
            Some(find_tool("qemu-img", "qemu-utils")?)
        } else {
            None
        },
    })
}

/// The tools and the fixtures, or None after reporting `test` skipped.
fn setup(test: &str, qemu_img: bool) -> Option<(Tools, Fixtures)> {
    let t = match tools(qemu_img) {
        Ok(t) => t,
        Err(why) => {
            skipped(test, &why);
            return None;
        }
    };
    let (f, _release) = fixtures_or_skip(test)?;
    Some((t, f))
}

impl Tools {
    fn qemu_img(&self) -> Command {
        Command::new(self.qemu_img.as_ref().expect("qemu-img wanted by the test"))
    }
}

/// A host command run to its end, in words for messages.
struct Ran {
    line: String,
    out: Output,
}

impl Ran {
    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    /// What it printed, for messages.
    fn said(&self) -> String {
        format!(
            "`{}` ended with {}\nstdout: {}\nstderr: {}",
            self.line,
            self.out.status,
            String::from_utf8_lossy(&self.out.stdout).trim_end(),
            String::from_utf8_lossy(&self.out.stderr).trim_end()
        )
    }
}

/// Runs `cmd` to its end.
fn run(cmd: &mut Command) -> Ran {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    words.extend(cmd.get_args().map(|a| {
        let a = a.to_string_lossy();
        if a.contains(' ') {
            format!("\"{a}\"")
        } else {
            a.into_owned()
        }
    }));
    let line = words.join(" ");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {line}: {e}"));
    Ran { line, out }
}

/// Runs `cmd`, which must succeed: the test's own setup.
fn must(cmd: &mut Command) -> Ran {
    let ran = run(cmd);
    assert!(ran.out.status.success(), "{}", ran.said());
    ran
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 scratch path")
}

/// A raw image of `mib` MiB at `dir/name` holding an ext4 file system (no partition table)
/// with hello.txt, made by mkfs.ext4 -d from a directory.
fn make_ext4(t: &Tools, dir: &Path, name: &str, mib: u64) -> PathBuf {
    let root = dir.join(format!("{name}.root"));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("hello.txt"), HELLO).unwrap();
    let image = dir.join(name);
    std::fs::File::create(&image)
        .and_then(|f| f.set_len(mib << 20))
        .unwrap();
    must(
        Command::new(&t.mkfs)
            .args(["-q", "-F", "-L", "tandem", "-d"])
            .arg(&root)
            .arg(&image),
    );
    image
}

/// The drive and device arguments for `image` in `format`.
fn disk_args(image: &Path, format: &str) -> Vec<String> {
    vec![
        "-drive".into(),
        format!("file={},format={format},if=none,id=d0", path_str(image)),
        "-device".into(),
        format!("virtio-blk-pci,drive=d0,serial={SERIAL}"),
    ]
}

/// Everything wrong with the disk-mode markers on `console`, one line each (empty: all good).
fn disk_report_problems(console: &str, sectors: u64) -> Vec<String> {
    let m = markers(console);
    let mut problems = Vec::new();
    if let Some(step) = marker(&m, "TANDEM-DISK-FAIL") {
        problems.push(format!(
            "TANDEM-DISK-FAIL {step}: the guest's {step} step failed (its output follows the \
             marker on the console)"
        ));
    }
    let want_sectors = sectors.to_string();
    match marker(&m, "TANDEM-DISK-DEV") {
        Some(s) if s == want_sectors => {}
        got => problems.push(format!(
            "TANDEM-DISK-DEV {got:?}: want /dev/vda of {want_sectors} sectors"
        )),
    }
    if let Some(s) = marker(&m, "TANDEM-DISK2-DEV") {
        problems.push(format!(
            "TANDEM-DISK2-DEV {s}: the guest sees a second disk"
        ));
    }
    let hello = sha256::hex(HELLO);
    match marker(&m, "TANDEM-DISK-READ") {
        Some(h) if h == hello => {}
        got => problems.push(format!(
            "TANDEM-DISK-READ {got:?}: want the sha256 of the host's hello.txt, {hello}"
        )),
    }
    match marker(&m, "TANDEM-DISK-WROTE") {
        Some(h) if h == WRITTEN_SHA256 => {}
        got => problems.push(format!(
            "TANDEM-DISK-WROTE {got:?}: want {WRITTEN_SHA256} (written.txt read back from \
             the disk)"
        )),
    }
    if marker(&m, "TANDEM-DISK-DONE").is_none() {
        problems.push("no TANDEM-DISK-DONE: the guest did not unmount the disk".into());
    }
    problems
}

/// Boots the guest in disk mode on `accel` with `extra` arguments (the disk) and the
/// environment `env`, and checks every marker and the power-off; Err with the failure message.
fn run_disk_mode(
    accel: &str,
    f: &Fixtures,
    extra: &[String],
    env: &[(&str, &Path)],
) -> Result<(), String> {
    let _slot = BootSlot::take();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut g = Guest::boot_with_env(accel, f, "console=ttyS0 tandem.disk=1", &extra, env);
    let status = g.run_to_exit();
    let mut problems = disk_report_problems(&g.console(), DISK_SECTORS);
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => problems.push(format!("the emulator ended with {s}, want status 0")),
        Err(why) => problems.push(why),
    }
    if !problems.is_empty() {
        return Err(g.failure(&problems.join("\n")));
    }
    println!(
        "guest powered off after {:.1} s",
        g.started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What is wrong with the file system on the raw image `image` after the guest's disk-mode
/// run: `e2fsck -fn` must find it clean, and written.txt must hold what the guest wrote.
fn ext4_problems(t: &Tools, image: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let fsck = run(Command::new(&t.e2fsck).arg("-fn").arg(image));
    if fsck.code() != Some(0) {
        problems.push(format!("the file system is not clean: {}", fsck.said()));
    }
    problems.extend(debugfs_problems(t, image, "/written.txt", |data| {
        let got = sha256::hex(data);
        (got != WRITTEN_SHA256).then(|| {
            format!(
                "{} bytes with sha256 {got}, want 1048594 bytes with sha256 {WRITTEN_SHA256}",
                data.len()
            )
        })
    }));
    problems
}

/// Reads `file` out of the ext4 image with debugfs; what `wrong(contents)` says is wrong.
fn debugfs_problems(
    t: &Tools,
    image: &Path,
    file: &str,
    wrong: impl Fn(&[u8]) -> Option<String>,
) -> Vec<String> {
    let cat = run(Command::new(&t.debugfs)
        .arg("-R")
        .arg(format!("cat {file}"))
        .arg(image));
    if !cat.out.status.success() {
        return vec![format!("debugfs cannot read {file}: {}", cat.said())];
    }
    match wrong(&cat.out.stdout) {
        None => Vec::new(),
        Some(why) => vec![format!(
            "{file} on the host (`{}`): {why}; debugfs said: {}",
            cat.line,
            String::from_utf8_lossy(&cat.out.stderr).trim_end()
        )],
    }
}

/// Fails `test` with `problems`, if there are any.
fn assert_no_problems(test: &str, problems: &[String]) {
    if !problems.is_empty() {
        panic!("{test}:\n{}", problems.join("\n"));
    }
}

/// The disk-mode run on a raw image: the guest's markers, then the image on the host.
fn raw_disk_round_trip(test: &str, accel: &str) {
    let started = Instant::now();
    let Some((t, f)) = setup(test, false) else {
        return;
    };
    let dir = scratch(test);
    let image = make_ext4(&t, &dir, "disk.raw", DISK_MIB);
    if let Err(why) = run_disk_mode(accel, &f, &disk_args(&image, "raw"), &[]) {
        panic!("{test}:\n{why}");
    }
    assert_no_problems(test, &ext4_problems(&t, &image));
    println!("{test}: {:.1} s wall", started.elapsed().as_secs_f64());
}

#[test]
fn tcg_reads_and_writes_an_ext4_raw_disk() {
    raw_disk_round_trip("tcg_reads_and_writes_an_ext4_raw_disk", "tcg");
}

#[test]
fn kvm_reads_and_writes_an_ext4_raw_disk() {
    const TEST: &str = "kvm_reads_and_writes_an_ext4_raw_disk";
    if let Err(why) = common::kvm_hardware_virtualization() {
        return skipped(TEST, &why);
    }
    raw_disk_round_trip(TEST, "kvm");
}

#[test]
fn tcg_writes_a_qcow2_overlay_over_a_raw_backing_file() {
    const TEST: &str = "tcg_writes_a_qcow2_overlay_over_a_raw_backing_file";
    let started = Instant::now();
    let Some((t, f)) = setup(TEST, true) else {
        return;
    };
    let dir = scratch(TEST);
    let base = make_ext4(&t, &dir, "base.raw", DISK_MIB);
    let base_before = sha256::file_hex(&base).unwrap();
    // Made by tandem's own qemu-img (`tandem img`), the backing file named relative to the
    // overlay, as qemu-img stores what -b says; checked below by the real qemu-img.
    must(
        Command::new(env!("CARGO_BIN_EXE_tandem"))
            .current_dir(&dir)
            .args([
                "img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "ov.qcow2",
            ]),
    );
    let overlay = dir.join("ov.qcow2");
    if let Err(why) = run_disk_mode("tcg", &f, &disk_args(&overlay, "qcow2"), &[]) {
        panic!("{TEST}:\n{why}");
    }
    let mut problems = Vec::new();
    let check = run(t.qemu_img().arg("check").arg(&overlay));
    if check.code() != Some(0) {
        problems.push(format!("the overlay is not consistent: {}", check.said()));
    }
    match sha256::file_hex(&base) {
        Ok(h) if h == base_before => {}
        got => problems.push(format!(
            "the backing file changed: sha256 {got:?}, was {base_before}"
        )),
    }
    let out = dir.join("out.raw");
    let convert = run(t
        .qemu_img()
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(&overlay)
        .arg(&out));
    if convert.out.status.success() {
        problems.extend(ext4_problems(&t, &out));
    } else {
        problems.push(format!("the overlay does not convert: {}", convert.said()));
    }
    assert_no_problems(TEST, &problems);
    println!("{TEST}: {:.1} s wall", started.elapsed().as_secs_f64());
}

#[test]
fn tcg_snapshot_leaves_the_image_unchanged() {
    const TEST: &str = "tcg_snapshot_leaves_the_image_unchanged";
    let started = Instant::now();
    let Some((t, f)) = setup(TEST, false) else {
        return;
    };
    let dir = scratch(TEST);
    let image = make_ext4(&t, &dir, "disk.raw", DISK_MIB);
    let before = sha256::file_hex(&image).unwrap();
    // The temporary overlay goes to $TMPDIR: a directory of the test's own, to see it emptied.
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut args = vec!["-snapshot".to_string()];
    args.extend(disk_args(&image, "raw"));
    if let Err(why) = run_disk_mode("tcg", &f, &args, &[("TMPDIR", &tmp)]) {
        panic!("{TEST}:\n{why}");
    }
    let mut problems = Vec::new();
    match sha256::file_hex(&image) {
        Ok(h) if h == before => {}
        got => problems.push(format!(
            "-snapshot: the image changed, sha256 {got:?}, was {before}"
        )),
    }
    let left: Vec<String> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    if !left.is_empty() {
        problems.push(format!(
            "-snapshot left files in TMPDIR {}: {left:?}",
            tmp.display()
        ));
    }
    assert_no_problems(TEST, &problems);
    println!("{TEST}: {:.1} s wall", started.elapsed().as_secs_f64());
}

/// The file the crash test's guest writes and flushes before the kill: `seq 1 20000`.
fn flushed_contents() -> Vec<u8> {
    (1..=20000)
        .map(|i| format!("{i}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Types `command` at the guest's shell prompt and waits for the next prompt; Err with the
/// failure message when it does not come or the output has no line `want`.
fn shell(g: &mut Guest, command: &str, want: &str) -> Result<(), String> {
    let prompts = |text: &str| text.matches(PROMPT).count();
    let from = g.console_len();
    let before = prompts(&g.console());
    g.send(&format!("{command}\n"));
    let stop = g.wait_for(|c| prompts(c) > before);
    if stop != Stop::Seen {
        let why = g.stop_reason(stop, &format!("the prompt after `{command}`"));
        return Err(g.failure(&why));
    }
    let answer = g.console_from(from);
    if !answer.lines().any(|l| l.trim_end().ends_with(want)) {
        return Err(g.failure(&format!(
            "`{command}` answered {answer:?}: want a line {want:?}"
        )));
    }
    Ok(())
}

/// Waits until the file at `image` is `growth` bytes longer than `from` bytes while the
/// emulator runs: Err with why it did not happen.
fn wait_for_growth(g: &mut Guest, image: &Path, from: u64, growth: u64) -> Result<u64, String> {
    let deadline = Instant::now() + SILENCE_GUARD;
    loop {
        let len = std::fs::metadata(image).map(|m| m.len()).unwrap_or(0);
        if len >= from + growth {
            return Ok(len);
        }
        if let Ok(Some(status)) = g.child.try_wait() {
            return Err(g.failure(&format!(
                "the emulator ended ({status}) while the guest was writing"
            )));
        }
        if Instant::now() >= deadline || g.started.elapsed() >= HANG_GUARD {
            return Err(g.failure(&format!(
                "the image stayed at {len} bytes for {} minutes while the guest wrote: \
                 want it past {} (the guest's writes never reached it)",
                SILENCE_GUARD.as_secs() / 60,
                from + growth
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The issue this covers: the process killed with SIGKILL while a guest writes; the image
/// opens, `qemu-img check` finds no corruption (leaks are fine and `check -r leaks` repairs
/// them), and data the guest flushed before the kill is there.
#[test]
fn tcg_sigkill_while_writing_keeps_qcow2_consistent_and_flushed_data() {
    const TEST: &str = "tcg_sigkill_while_writing_keeps_qcow2_consistent_and_flushed_data";
    let started = Instant::now();
    let Some((t, f)) = setup(TEST, true) else {
        return;
    };
    let dir = scratch(TEST);
    let raw = make_ext4(&t, &dir, "base.raw", CRASH_DISK_MIB);
    let image = dir.join("disk.qcow2");
    must(
        t.qemu_img()
            .args(["convert", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(&image),
    );
    std::fs::remove_file(&raw).unwrap();

    let slot = BootSlot::take();
    let extra = disk_args(&image, "qcow2");
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut g = Guest::boot("tcg", &f, "console=ttyS0 tandem.shell=1", &extra);
    let stop = g.wait_for(|c| c.contains(PROMPT));
    if stop != Stop::Seen {
        let why = g.stop_reason(stop, "the shell prompt");
        panic!("{TEST}:\n{}", g.failure(&why));
    }
    // Markers computed by the shell, so the echo of the typed line does not match them.
    let steps = [
        (
            "i=0; while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; \
             cat /sys/block/vda/serial; echo",
            SERIAL,
        ),
        (
            "mount -t ext4 /dev/vda /mnt && echo TANDEM-MOUNTED-$((6*7))",
            "TANDEM-MOUNTED-42",
        ),
        (
            "seq 1 20000 >/mnt/flushed.txt && sync && echo TANDEM-FLUSHED-$((6*7))",
            "TANDEM-FLUSHED-42",
        ),
    ];
    for (command, want) in steps {
        if let Err(why) = shell(&mut g, command, want) {
            panic!("{TEST}:\n{why}");
        }
    }
    let flushed_at = std::fs::metadata(&image).unwrap().len();
    // A long write that the kill interrupts (the disk fills long after the kill).
    g.send("dd if=/dev/zero of=/mnt/big bs=64k count=100000 &\n");
    let killed_at = match wait_for_growth(&mut g, &image, flushed_at, CRASH_GROWTH) {
        Ok(len) => len,
        Err(why) => panic!("{TEST}:\n{why}"),
    };
    g.kill();
    drop(slot);
    println!(
        "{TEST}: killed after {:.1} s, the image at {killed_at} bytes ({flushed_at} when the \
         flushed file was synced)",
        g.started.elapsed().as_secs_f64()
    );
    let console_tail = g.failure("(the console at the kill)");

    let mut problems = Vec::new();
    let check = run(t.qemu_img().arg("check").arg(&image));
    // 0: clean; 3: leaked clusters only, which an interrupted allocation may leave.
    if !matches!(check.code(), Some(0 | 3)) {
        problems.push(format!(
            "qemu-img check finds more than leaks (exit 0 or 3 wanted): {}",
            check.said()
        ));
    }
    // For the record (cargo test -- --nocapture): what the kill left.
    println!("{}", check.said());
    let repair = run(t.qemu_img().args(["check", "-r", "leaks"]).arg(&image));
    let recheck = run(t.qemu_img().arg("check").arg(&image));
    if repair.code() != Some(0) || recheck.code() != Some(0) {
        problems.push(format!(
            "the leaks do not repair:\n{}\n{}",
            repair.said(),
            recheck.said()
        ));
    }
    let out = dir.join("out.raw");
    let convert = run(t
        .qemu_img()
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(&image)
        .arg(&out));
    if convert.out.status.success() {
        // A file system the guest did not unmount: the journal wants replaying, which
        // e2fsck -y does (on this copy). 0: clean; 1: errors corrected.
        let fsck = run(Command::new(&t.e2fsck).arg("-fy").arg(&out));
        if !matches!(fsck.code(), Some(0 | 1)) {
            problems.push(format!(
                "e2fsck cannot repair the file system: {}",
                fsck.said()
            ));
        }
        let want = flushed_contents();
        problems.extend(debugfs_problems(&t, &out, "/flushed.txt", |data| {
            (data != want.as_slice()).then(|| {
                format!(
                    "{} bytes with sha256 {}, want `seq 1 20000`: {} bytes with sha256 {}",
                    data.len(),
                    sha256::hex(data),
                    want.len(),
                    sha256::hex(&want)
                )
            })
        }));
    } else {
        problems.push(format!("the image does not convert: {}", convert.said()));
    }
    if !problems.is_empty() {
        panic!("{TEST}:\n{}\n{console_tail}", problems.join("\n"));
    }
    println!("{TEST}: {:.1} s wall", started.elapsed().as_secs_f64());
}

/// The FIPS 180-4 examples for tests/common/sha256.rs (one block, and 56 bytes, whose padding
/// takes a block of its own), the empty input, and the file /init writes.
#[test]
fn sha256_known_answers() {
    assert_eq!(
        sha256::hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        sha256::hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
    assert_eq!(
        sha256::hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let mut written = String::from("tandem wrote this\n");
    for i in 0..16384 {
        written += &format!("{i:063}\n");
    }
    assert_eq!(written.len(), 1048594);
    assert_eq!(sha256::hex(written.as_bytes()), WRITTEN_SHA256);
}

/// The marker check itself, on made-up consoles: a complete report passes, and each thing
/// wrong is named.
#[test]
fn disk_report_check_names_what_is_wrong() {
    let hello = sha256::hex(HELLO);
    let good = format!(
        "[    1.0] virtio_blk virtio0: [vda] 131072 512-byte logical blocks\r\n\
         TANDEM-DISK-DEV 131072\r\nTANDEM-DISK-READ {hello}\r\n\
         [    2.0] EXT4-fs (vda): mounted filesystem.TANDEM-DISK-WROTE {WRITTEN_SHA256}\r\n\
         TANDEM-DISK-DONE\r\n"
    )
    .replace('\r', "");
    assert_eq!(
        disk_report_problems(&good, DISK_SECTORS),
        Vec::<String>::new()
    );
    let broken = good
        .replace("DEV 131072", "DEV 131071")
        .replace(&hello, "0000")
        .replace("TANDEM-DISK-DONE\n", "TANDEM-DISK-FAIL umount\n");
    let problems = disk_report_problems(&broken, DISK_SECTORS).join("\n");
    for want in [
        "TANDEM-DISK-FAIL umount",
        "TANDEM-DISK-DEV Some(\"131071\")",
        "TANDEM-DISK-READ Some(\"0000\")",
        "no TANDEM-DISK-DONE",
    ] {
        assert!(problems.contains(want), "{want:?} not in:\n{problems}");
    }
    assert_eq!(problems.lines().count(), 4, "{problems}");
    let nothing = disk_report_problems("[    9.9] Kernel panic\n", DISK_SECTORS);
    assert_eq!(nothing.len(), 4, "{nothing:?}");
}
