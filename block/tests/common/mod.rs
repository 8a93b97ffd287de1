//! Helpers shared by the interop tests: scratch directories, the qemu-img oracle (skipped with
//! a logged line when absent), a small PRNG, and reading whole disks.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use tandem_block::BlockDriver;

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("tandem-block-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether qemu-img runs; if not, prints and logs "SKIPPED <name>: qemu-img not installed".
pub fn qemu_img_or_skip(name: &str) -> bool {
    if have("qemu-img") {
        return true;
    }
    let line = format!("SKIPPED {name}: qemu-img not installed");
    println!("{line}");
    if let Ok(log) = std::env::var("TANDEM_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(f, "{line}");
        }
    }
    false
}

/// Whether qemu-io runs.
pub fn have_qemu_io() -> bool {
    have("qemu-io")
}

/// Runs qemu-img with `args`, panicking with its output on failure.
pub fn qemu_img(args: &[&str]) -> String {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img runs");
    assert!(
        out.status.success(),
        "qemu-img {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs qemu-io on `image` with one `-c` per command.
pub fn qemu_io(image: &Path, fmt: &str, cmds: &[&str]) {
    let mut c = Command::new("qemu-io");
    c.arg("-f").arg(fmt);
    for cmd in cmds {
        c.arg("-c").arg(cmd);
    }
    let out = c.arg(image).output().expect("qemu-io runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !text.contains("failed"),
        "qemu-io {cmds:?}: {text}"
    );
}

/// `qemu-img create -q -f <fmt> [-o <opts>] [-b <backing> -F <backing format>] <image> [<size>]`.
pub fn qemu_create(
    fmt: &str,
    opts: Option<&str>,
    backing: Option<(&str, &str)>,
    image: &Path,
    size: Option<&str>,
) {
    let mut args = vec!["create", "-q", "-f", fmt];
    if let Some(o) = opts {
        args.extend(["-o", o]);
    }
    if let Some((b, bf)) = backing {
        args.extend(["-b", b, "-F", bf]);
    }
    args.push(s(image));
    args.extend(size);
    qemu_img(&args);
}

/// `qemu-img convert -f raw -O <fmt> [-o <opts>] <src> <dst>`.
pub fn qemu_convert_raw(fmt: &str, opts: Option<&str>, src: &Path, dst: &Path) {
    let mut args = vec!["convert", "-f", "raw", "-O", fmt];
    if let Some(o) = opts {
        args.extend(["-o", o]);
    }
    args.extend([s(src), s(dst)]);
    qemu_img(&args);
}

/// The unsigned number after `"key":` in qemu-img's JSON output.
pub fn json_u64(text: &str, key: &str) -> Option<u64> {
    let k = format!("\"{key}\":");
    text.find(&k).map(|at| {
        text[at + k.len()..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    })
}

/// `qemu-img check` of `image`: (exit code, stdout+stderr).
pub fn qemu_check(image: &Path) -> (i32, String) {
    let out = Command::new("qemu-img")
        .arg("check")
        .arg(image)
        .output()
        .expect("qemu-img runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Asserts `qemu-img check` finds nothing wrong.
pub fn assert_qemu_check_clean(image: &Path) {
    let (code, text) = qemu_check(image);
    assert_eq!(code, 0, "qemu-img check {}: {text}", image.display());
}

/// The disk's bytes as qemu-img sees them (convert -O raw).
pub fn qemu_raw(image: &Path, dir: &TempDir) -> Vec<u8> {
    let out = dir.join("qemu-view.raw");
    qemu_img(&[
        "convert",
        "-O",
        "raw",
        image.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    let v = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    v
}

/// The whole disk read through tandem.
pub fn read_all(d: &mut dyn BlockDriver) -> Vec<u8> {
    let mut v = vec![0u8; d.size() as usize];
    // Odd-sized chunks exercise reads that straddle clusters.
    let mut off = 0usize;
    let mut step = 7 * 4096 + 1536;
    while off < v.len() {
        let n = step.min(v.len() - off);
        d.read_at(off as u64, &mut v[off..off + n]).unwrap();
        off += n;
        step = if step > 300_000 {
            4096 + 512
        } else {
            step * 2 + 512
        };
    }
    v
}

/// Asserts two disks are equal, naming the first differing byte.
pub fn assert_same(what: &str, a: &[u8], b: &[u8]) {
    assert_eq!(a.len(), b.len(), "{what}: sizes differ");
    if let Some(i) = a.iter().zip(b).position(|(x, y)| x != y) {
        panic!(
            "{what}: first difference at byte {i:#x} ({:#04x} vs {:#04x})",
            a[i], b[i]
        );
    }
}

/// xorshift64*: deterministic test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A raw file of `size` bytes: random data in some 64 KiB stretches, zeroes (holes) elsewhere.
pub fn patterned_raw(path: &Path, size: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut v = vec![0u8; size];
    let mut off = 0;
    while off < size {
        let n = (rng.below(96 * 1024) as usize + 512).min(size - off);
        if rng.below(3) != 0 {
            rng.fill(&mut v[off..off + n]);
        }
        off += n;
    }
    std::fs::write(path, &v).unwrap();
    v
}

/// Options for a read-only open.
pub fn ro() -> tandem_block::OpenOptions {
    tandem_block::OpenOptions {
        read_only: true,
        ..Default::default()
    }
}

/// The path as &str.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The error opening `path` must give.
pub fn open_err(path: &Path, opts: tandem_block::OpenOptions) -> String {
    match tandem_block::open(path, opts) {
        Ok(_) => panic!("{} opened but should have been refused", path.display()),
        Err(e) => e.to_string(),
    }
}
