//! `tandem img` against the real qemu-img as the oracle: images tandem creates pass
//! `qemu-img check` and read back alike in `qemu-img info`; tandem's info, map and check agree
//! with qemu-img's on images qemu-img made (check's exit statuses on clean, leaky and corrupt
//! images too); converted images compare identical; snapshots round-trip.
//!
//! Without qemu-img each test prints "SKIPPED <test>: qemu-img not installed" (appended to the
//! file named by TANDEM_SKIP_LOG, if set) and passes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("tandem-img-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch directory");
        Dir(p)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether qemu-img runs; if not, reports the skip.
fn qemu_or_skip(test: &str) -> bool {
    let ok = Command::new("qemu-img")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let line = format!("SKIPPED {test}: qemu-img not installed");
        println!("{line}");
        if let Ok(log) = std::env::var("TANDEM_SKIP_LOG") {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
            {
                let _ = writeln!(f, "{line}");
            }
        }
    }
    ok
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("TZ", "UTC")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn tandem(args: &[&str]) -> Output {
    let mut all = vec!["img"];
    all.extend_from_slice(args);
    run(env!("CARGO_BIN_EXE_tandem"), &all)
}

fn qemu(args: &[&str]) -> Output {
    run("qemu-img", args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Runs and expects success; returns stdout.
fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {}\n{}{}",
        o.status,
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(&o)
}

fn qemu_io(img: &str, fmt: &str, cmds: &[&str]) {
    let mut args = vec!["-f", fmt];
    for c in cmds {
        args.extend(["-c", c]);
    }
    args.push(img);
    ok(run("qemu-io", &args), "qemu-io");
}

/// The raw text of top-level key `key`'s value in pretty JSON (first occurrence).
fn field(json: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\": ");
    let at = json.find(&pat)? + pat.len();
    let rest = &json[at..];
    let end = rest.find([',', '\n']).unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

const KEYS: &[&str] = &[
    "virtual-size",
    "format",
    "cluster-size",
    "backing-filename",
    "backing-filename-format",
    "compat",
    "lazy-refcounts",
    "refcount-bits",
];

/// `qemu-img compare` finds `a` and `b` identical.
fn assert_identical(a: &str, b: &str, what: &str) {
    let o = qemu(&["compare", a, b]);
    assert_eq!(code(&o), 0, "{what}: {}", stdout(&o));
}

fn assert_qemu_check_clean(img: &str) {
    let o = qemu(&["check", img]);
    assert_eq!(code(&o), 0, "qemu-img check {img}: {}", stdout(&o));
}

#[test]
fn created_images_satisfy_qemu_img() {
    if !qemu_or_skip("created_images_satisfy_qemu_img") {
        return;
    }
    let d = Dir::new("create");
    let base = d.path("base.raw");
    let out = ok(tandem(&["create", "-f", "raw", &base, "4M"]), "create raw");
    assert_eq!(out, format!("Formatting '{base}', fmt=raw size=4194304\n"));
    let cases: Vec<(String, Vec<String>)> = vec![
        ("v2.qcow2".into(), vec!["-o".into(), "compat=0.10".into()]),
        (
            "v3.qcow2".into(),
            vec!["-o".into(), "compat=1.1,cluster_size=4k".into()],
        ),
        (
            "lazy.qcow2".into(),
            vec!["-o".into(), "lazy_refcounts=on,refcount_bits=8".into()],
        ),
        (
            "overlay.qcow2".into(),
            vec!["-b".into(), base.clone(), "-F".into(), "raw".into()],
        ),
    ];
    for (name, opts) in &cases {
        let img = d.path(name);
        let mut args = vec!["create", "-f", "qcow2"];
        args.extend(opts.iter().map(String::as_str));
        args.push(&img);
        if !name.starts_with("overlay") {
            args.push("3M");
        }
        let line = ok(tandem(&args), name);
        assert!(
            line.starts_with(&format!("Formatting '{img}', fmt=qcow2 ")),
            "{line}"
        );
        assert_qemu_check_clean(&img);
        let theirs = ok(qemu(&["info", "--output=json", &img]), "qemu-img info");
        let ours = ok(tandem(&["info", "--output", "json", &img]), "tandem info");
        for k in KEYS {
            assert_eq!(field(&ours, k), field(&theirs, k), "{name}: {k}");
        }
        // A qemu-img write and its check show the image's metadata is usable.
        qemu_io(&img, "qcow2", &["write -P 0x5a 64k 128k"]);
        assert_qemu_check_clean(&img);
    }
    let theirs = ok(qemu(&["info", "--output=json", &base]), "qemu-img info raw");
    let ours = ok(tandem(&["info", "--output=json", &base]), "tandem info raw");
    assert_eq!(field(&ours, "virtual-size"), field(&theirs, "virtual-size"));
    assert_eq!(field(&ours, "format"), Some("\"raw\"".into()));
}

#[test]
fn info_and_map_match_qemu_img_on_its_images() {
    if !qemu_or_skip("info_and_map_match_qemu_img_on_its_images") {
        return;
    }
    let d = Dir::new("info");
    let (base, v2, v3, top) = (
        d.path("base.qcow2"),
        d.path("v2.qcow2"),
        d.path("v3.qcow2"),
        d.path("top.qcow2"),
    );
    ok(
        qemu(&["create", "-q", "-f", "qcow2", &base, "8M"]),
        "create",
    );
    qemu_io(&base, "qcow2", &["write -P 1 0 1M", "write -P 2 3M 64k"]);
    ok(qemu(&["snapshot", "-c", "snap1", &base]), "snapshot");
    ok(
        qemu(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "compat=0.10",
            &v2,
            "5M",
        ]),
        "create",
    );
    ok(
        qemu(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "cluster_size=4096,lazy_refcounts=on",
            &v3,
            "1G",
        ]),
        "create",
    );
    ok(
        qemu(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            &top,
        ]),
        "create",
    );
    qemu_io(&top, "qcow2", &["write -P 3 512k 1M", "write -z 6M 64k"]);
    for img in [&base, &v2, &v3, &top] {
        for args in [
            vec!["info", "--output=json"],
            vec!["info"],
            vec!["info", "--output=json", "--backing-chain"],
            vec!["map", "--output=json"],
            vec!["map"],
            vec!["check"],
            vec!["check", "--output=json"],
        ] {
            let mut a = args.clone();
            a.push(img);
            let theirs = ok(qemu(&a), "qemu-img");
            let ours = ok(tandem(&a), "tandem img");
            assert_eq!(ours, theirs, "{a:?}");
        }
    }
}

/// The offset of the first refcount block, the cluster size, and the file's length.
fn layout(img: &str) -> (u64, u64, u64) {
    let b = std::fs::read(img).expect("image");
    let be64 = |o: usize| u64::from_be_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let cs = 1u64 << u32::from_be_bytes(b[20..24].try_into().expect("4 bytes"));
    let reftable = be64(48) as usize;
    (be64(reftable), cs, b.len() as u64)
}

/// Sets the 16-bit refcount of host cluster `cluster` (in the first refcount block).
fn poke_refcount(img: &str, cluster: u64, value: u16) {
    use std::os::unix::fs::FileExt;
    let (block, _, _) = layout(img);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(img)
        .expect("open");
    f.write_all_at(&value.to_be_bytes(), block + cluster * 2)
        .expect("write refcount");
}

#[test]
fn check_exit_statuses_match_qemu_img() {
    if !qemu_or_skip("check_exit_statuses_match_qemu_img") {
        return;
    }
    let d = Dir::new("check");
    let mk = |name: &str| {
        let img = d.path(name);
        ok(
            tandem(&["create", "-q", "-f", "qcow2", &img, "4M"]),
            "create",
        );
        qemu_io(&img, "qcow2", &["write -P 7 0 256k"]);
        img
    };
    let clean = mk("clean.qcow2");
    // A leak: one cluster past the end counted but referenced by nothing.
    let leaky = mk("leaky.qcow2");
    let (_, cs, len) = layout(&leaky);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&leaky)
        .expect("open");
    f.set_len(len.div_ceil(cs) * cs + cs).expect("grow");
    poke_refcount(&leaky, len.div_ceil(cs), 1);
    // A corruption: a data cluster in use with refcount 0.
    let corrupt = mk("corrupt.qcow2");
    let map = ok(qemu(&["map", "--output=json", &corrupt]), "map");
    let data: u64 = field(&map, "offset")
        .and_then(|v| v.trim_end_matches('}').parse().ok())
        .expect("offset");
    poke_refcount(&corrupt, data / cs, 0);
    for (img, want) in [(&clean, 0), (&leaky, 3), (&corrupt, 2)] {
        let theirs = qemu(&["check", img]);
        let ours = tandem(&["check", img]);
        assert_eq!(code(&theirs), want, "qemu-img check {img}");
        assert_eq!(
            code(&ours),
            want,
            "tandem img check {img}: {}",
            stdout(&ours)
        );
        // The first line names the finding; the block layer counts a corrupt cluster once
        // where QEMU also counts its COPIED flag, so only the wording is compared.
        let first = |o: &Output| {
            let text = stdout(o);
            let line = text
                .lines()
                .find(|l| !l.is_empty())
                .unwrap_or("")
                .to_string();
            line.split_once(' ')
                .map(|(_, rest)| rest.to_string())
                .unwrap_or(line)
        };
        assert_eq!(first(&ours), first(&theirs), "{img}");
        let json = tandem(&["check", "--output=json", img]);
        assert_eq!(code(&json), want);
    }
    assert!(stdout(&tandem(&["check", &leaky]))
        .contains("This means waste of disk space, but no harm to data."));
    // -r leaks repairs the leak; both then see a clean image.
    let fixed = tandem(&["check", "-r", "leaks", &leaky]);
    assert_eq!(code(&fixed), 0, "{}", stdout(&fixed));
    assert!(stdout(&fixed).contains("The following inconsistencies were found and repaired:"));
    assert_qemu_check_clean(&leaky);
    // raw: no checks, status 63.
    let raw = d.path("x.raw");
    ok(
        tandem(&["create", "-q", "-f", "raw", &raw, "1M"]),
        "create raw",
    );
    let o = tandem(&["check", &raw]);
    assert_eq!(code(&o), 63);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("This image format does not support checks")
    );
}

#[test]
fn convert_gives_identical_images() {
    if !qemu_or_skip("convert_gives_identical_images") {
        return;
    }
    let d = Dir::new("convert");
    let src = d.path("src.qcow2");
    ok(qemu(&["create", "-q", "-f", "qcow2", &src, "6M"]), "create");
    qemu_io(
        &src,
        "qcow2",
        &[
            "write -P 0x11 0 1M",
            "write -P 0x22 2100k 100k",
            "write -z 3M 512k",
            "write -P 0 4M 64k",
            "write -P 0x33 6080k 64k",
        ],
    );
    let raw = d.path("out.raw");
    let cases: &[(&str, &[&str])] = &[
        ("out.raw", &["-O", "raw"]),
        ("plain.qcow2", &["-O", "qcow2"]),
        ("v2.qcow2", &["-O", "qcow2", "-o", "compat=0.10"]),
        ("c.qcow2", &["-O", "qcow2", "-c"]),
        ("c4k.qcow2", &["-O", "qcow2", "-c", "-o", "cluster_size=4k"]),
    ];
    for (name, opts) in cases {
        let out = d.path(name);
        let mut args = vec!["convert"];
        args.extend_from_slice(opts);
        args.extend([src.as_str(), out.as_str()]);
        ok(tandem(&args), name);
        assert_identical(&src, &out, name);
        if name.ends_with(".qcow2") {
            assert_qemu_check_clean(&out);
            // Holes stay holes: the zero and unwritten ranges are not allocated.
            let map = ok(qemu(&["map", "--output=json", &out]), "map");
            assert!(
                map.contains(
                    "\"start\": 4194304, \"length\": 65536, \"depth\": 0, \"present\": false"
                ) || map.contains("\"data\": false"),
                "{name}: {map}"
            );
        }
    }
    // Raw output is sparse.
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&raw).expect("raw output");
    assert!(m.blocks() * 512 < m.len() / 2, "raw output is not sparse");
    // And back: raw to qcow2 (plain and compressed), with progress.
    for (name, extra) in [("back.qcow2", None), ("backc.qcow2", Some("-c"))] {
        let out = d.path(name);
        let mut args = vec!["convert", "-p", "-f", "raw", "-O", "qcow2"];
        args.extend(extra);
        args.extend([raw.as_str(), out.as_str()]);
        let text = ok(tandem(&args), name);
        assert!(text.contains("    (100.00/100%)"), "{text:?}");
        assert_identical(&raw, &out, name);
        assert_qemu_check_clean(&out);
    }
    // -B: only the top image is copied, over the new backing file.
    let top = d.path("top.qcow2");
    ok(
        qemu(&[
            "create", "-q", "-f", "qcow2", "-b", "out.raw", "-F", "raw", &top,
        ]),
        "overlay",
    );
    qemu_io(&top, "qcow2", &["write -P 0x44 64k 64k", "write -z 0 64k"]);
    let rebased = d.path("rebased.qcow2");
    ok(
        tandem(&[
            "convert", "-O", "qcow2", "-B", "out.raw", "-F", "raw", &top, &rebased,
        ]),
        "convert -B",
    );
    assert_identical(&top, &rebased, "convert -B");
    let info = ok(qemu(&["info", "--output=json", &rebased]), "info");
    assert_eq!(
        field(&info, "backing-filename").as_deref(),
        Some("\"out.raw\"")
    );
    assert_qemu_check_clean(&rebased);
}

#[test]
fn convert_compressed_with_one_bit_refcounts() {
    if !qemu_or_skip("convert_compressed_with_one_bit_refcounts") {
        return;
    }
    // With 1-bit refcounts a host cluster holds one compressed stream at most; qemu-img
    // manages, so must we.
    let d = Dir::new("convert1");
    let (src, out) = (d.path("src.qcow2"), d.path("out.qcow2"));
    ok(qemu(&["create", "-q", "-f", "qcow2", &src, "1M"]), "create");
    qemu_io(
        &src,
        "qcow2",
        &["write -P 0x11 0 256k", "write -P 0x22 512k 64k"],
    );
    ok(
        tandem(&[
            "convert",
            "-O",
            "qcow2",
            "-c",
            "-o",
            "refcount_bits=1",
            &src,
            &out,
        ]),
        "convert -c refcount_bits=1",
    );
    assert_identical(&src, &out, "convert -c");
    assert_qemu_check_clean(&out);
}

#[test]
fn snapshots_round_trip_with_qemu_img() {
    if !qemu_or_skip("snapshots_round_trip_with_qemu_img") {
        return;
    }
    let d = Dir::new("snap");
    let img = d.path("s.qcow2");
    let copy = d.path("copy.qcow2");
    ok(
        tandem(&["create", "-q", "-f", "qcow2", &img, "2M"]),
        "create",
    );
    qemu_io(&img, "qcow2", &["write -P 1 0 1M"]);
    ok(tandem(&["snapshot", "-c", "first", &img]), "snapshot -c");
    ok(qemu(&["convert", "-O", "qcow2", &img, &copy]), "copy");
    qemu_io(&img, "qcow2", &["write -P 2 0 512k"]);
    let theirs = ok(qemu(&["snapshot", "-l", &img]), "qemu-img snapshot -l");
    assert!(theirs.contains(" first "), "{theirs}");
    assert_eq!(
        ok(tandem(&["snapshot", "-l", &img]), "tandem snapshot -l"),
        theirs
    );
    ok(tandem(&["snapshot", "-a", "first", &img]), "snapshot -a");
    assert_identical(&img, &copy, "apply reverts the data");
    ok(tandem(&["snapshot", "-d", "first", &img]), "snapshot -d");
    assert_eq!(ok(qemu(&["snapshot", "-l", &img]), "list"), "");
    assert_qemu_check_clean(&img);
    let o = tandem(&["snapshot", "-a", "nosuch", &img]);
    assert_eq!(code(&o), 1);
}

#[test]
fn resize_and_commit() {
    if !qemu_or_skip("resize_and_commit") {
        return;
    }
    let d = Dir::new("resize");
    let base = d.path("base.qcow2");
    let top = d.path("top.qcow2");
    ok(
        tandem(&["create", "-q", "-f", "qcow2", &base, "2M"]),
        "create",
    );
    assert_eq!(
        ok(tandem(&["resize", &base, "+2M"]), "grow"),
        "Image resized.\n"
    );
    let info = ok(qemu(&["info", "--output=json", &base]), "info");
    assert_eq!(field(&info, "virtual-size").as_deref(), Some("4194304"));
    assert_eq!(
        code(&tandem(&["resize", &base, "-1M"])),
        1,
        "shrinking needs --shrink"
    );
    assert_qemu_check_clean(&base);
    ok(
        tandem(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            &top,
        ]),
        "overlay",
    );
    qemu_io(&top, "qcow2", &["write -P 9 1M 128k"]);
    assert_eq!(
        ok(tandem(&["commit", &top]), "commit"),
        "Image committed.\n"
    );
    assert_identical(&top, &base, "commit");
    assert_qemu_check_clean(&base);
}

#[test]
fn errors_are_one_line_and_exit_1() {
    let o = tandem(&["info", "/nonexistent/x.qcow2"]);
    assert_eq!(code(&o), 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("tandem img: /nonexistent/x.qcow2: "),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    for args in [
        vec!["frobnicate"],
        vec!["check", "-r", "some", "x"],
        vec!["info", "--output=xml", "x"],
        vec!["create", "-f", "qcow2", "x", "12Q"],
    ] {
        let o = tandem(&args);
        assert_eq!(code(&o), 1, "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).starts_with("tandem img: "),
            "{args:?}"
        );
    }
    assert!(Path::new(env!("CARGO_BIN_EXE_tandem")).exists());
}
