//! QED against the real qemu-img: images qemu-img makes read back bit for bit (and map as it
//! maps them), images tandem writes pass `qemu-img check` and convert back identically,
//! backing chains in both directions, the need-check bit and its repair, resize and
//! set_backing, and hostile headers refused with one line.

mod common;

use std::path::Path;

use common::*;
use tandem_block::qed::create_with_table_size;
use tandem_block::{create, open, BlockDriver, CreateOptions, OpenOptions, Repair};

fn qed_opts() -> OpenOptions {
    OpenOptions {
        format: Some("qed".into()),
        ..Default::default()
    }
}

fn qed_create(path: &Path, size: u64, cs: u32, ts: u32) {
    create_with_table_size(
        path,
        &CreateOptions {
            format: "qed".into(),
            size: Some(size),
            cluster_size: cs,
            ..Default::default()
        },
        ts,
    )
    .unwrap();
}

/// A number from `qemu-img check --output=json` (0 when absent, as qemu-img leaves it out).
fn qemu_check_field(img: &Path, key: &str) -> u64 {
    let out = std::process::Command::new("qemu-img")
        .args(["check", "--output=json", s(img)])
        .output()
        .unwrap();
    json_u64(&String::from_utf8_lossy(&out.stdout), key).unwrap_or(0)
}

fn features(img: &Path) -> u64 {
    let b = std::fs::read(img).unwrap();
    u64::from_le_bytes(b[16..24].try_into().unwrap())
}

fn le64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// Random writes and zeroes, mirrored into `model`.
fn random_io(d: &mut dyn BlockDriver, model: &mut [u8], rng: &mut Rng, ops: usize) {
    let size = d.size();
    for _ in 0..ops {
        let len = (1 + rng.below(150_000)).min(size);
        let off = rng.below(size - len + 1);
        let (off, len) = if rng.below(3) != 0 {
            (off & !511, ((len + 511) & !511).min(size - (off & !511)))
        } else {
            (off, len)
        };
        if rng.below(8) == 0 {
            d.write_zeroes(off, len).unwrap();
            model[off as usize..(off + len) as usize].fill(0);
        } else {
            let mut buf = vec![0u8; len as usize];
            rng.fill(&mut buf);
            d.write_at(off, &buf).unwrap();
            model[off as usize..(off + len) as usize].copy_from_slice(&buf);
        }
    }
}

#[test]
fn images_made_by_qemu_img_read_back_and_map_alike() {
    if !qemu_img_or_skip("images_made_by_qemu_img_read_back_and_map_alike") {
        return;
    }
    let dir = TempDir::new("qed-read");
    let raw = dir.join("src.raw");
    let size = (3 << 20) + 1536;
    let mut want = patterned_raw(&raw, size, 41);
    for (cs, ts) in [(4096u32, 2u32), (65536, 4), (16384, 16)] {
        let img = dir.join(&format!("q-{cs}-{ts}.qed"));
        let o = format!("cluster_size={cs},table_size={ts}");
        qemu_convert_raw("qed", Some(o.as_str()), &raw, &img);
        // Zero clusters as qemu writes them.
        let z = format!("write -z {} {}", 2 * cs, 2 * cs);
        qemu_io(&img, "qed", &[&z]);
        want[2 * cs as usize..4 * cs as usize].fill(0);
        let mut d = open(&img, ro()).unwrap();
        assert_eq!(d.format_name(), "qed", "probed");
        assert_same(&o, &read_all(d.as_mut()), &want);
        let ours = d.map(0, d.size()).unwrap();
        let theirs = qemu_img(&["map", "--output=json", s(&img)]);
        let lines: Vec<&str> = theirs.lines().collect();
        assert_eq!(ours.len(), lines.len(), "{o}: {ours:?}\n{theirs}");
        for (e, l) in ours.iter().zip(&lines) {
            let f = |k: &str, v: String| l.contains(&format!("\"{k}\": {v}"));
            assert!(
                f("start", e.start.to_string())
                    && f("length", e.length.to_string())
                    && f("present", e.present.to_string())
                    && f("zero", e.zero.to_string())
                    && f("data", e.data.to_string())
                    && e.offset.is_none_or(|x| f("offset", x.to_string())),
                "{o}: {e:?} vs {l}"
            );
        }
        let mut d = open(&img, qed_opts()).unwrap();
        let rep = d.check(Repair::None).unwrap();
        assert!(rep.is_clean(), "{o}: {rep:?}");
        assert_eq!(
            rep.allocated_clusters,
            qemu_check_field(&img, "allocated-clusters")
        );
        assert_eq!(rep.total_clusters, qemu_check_field(&img, "total-clusters"));
        want = patterned_raw(&raw, size, 41);
    }
}

#[test]
fn images_written_by_tandem_pass_qemu_img_check() {
    if !qemu_img_or_skip("images_written_by_tandem_pass_qemu_img_check") {
        return;
    }
    let dir = TempDir::new("qed-write");
    let mut rng = Rng(42);
    for (cs, ts, size) in [
        (4096u32, 2u32, (2u64 << 20) + 512),
        (65536, 4, 3 << 20),
        (8192, 1, 1 << 20),
    ] {
        let img = dir.join(&format!("w-{cs}-{ts}.qed"));
        qed_create(&img, size, cs, ts);
        let what = format!("cs={cs} ts={ts}");
        let mut model = vec![0u8; size as usize];
        {
            let mut d = open(&img, qed_opts()).unwrap();
            random_io(d.as_mut(), &mut model, &mut rng, 40);
            assert_ne!(
                features(&img) & 2,
                0,
                "{what}: need-check set while allocating"
            );
            d.flush().unwrap();
            assert_eq!(
                features(&img) & 2,
                0,
                "{what}: need-check cleared by a flush"
            );
            random_io(d.as_mut(), &mut model, &mut rng, 10);
            assert_same(&what, &read_all(d.as_mut()), &model);
            assert!(d.check(Repair::None).unwrap().is_clean());
        }
        assert_eq!(features(&img) & 2, 0, "{what}: need-check cleared on close");
        if ts == 1 {
            // QEMU cannot open one-cluster tables (see the driver's warts): tandem only.
            let mut d = open(&img, ro()).unwrap();
            assert_same(&what, &read_all(d.as_mut()), &model);
            continue;
        }
        assert_qemu_check_clean(&img);
        assert_same(&what, &qemu_raw(&img, &dir), &model);
        let info = qemu_img(&["info", s(&img)]);
        assert!(info.contains("file format: qed"), "{info}");
    }
}

#[test]
fn qed_create_matches_qemu_img_create() {
    if !qemu_img_or_skip("qed_create_matches_qemu_img_create") {
        return;
    }
    let dir = TempDir::new("qed-create");
    let base = dir.join("base.raw");
    patterned_raw(&base, 1 << 20, 43);
    for (opts, backing) in [
        ("cluster_size=4096,table_size=2", None),
        ("cluster_size=65536,table_size=4", Some(("base.raw", "raw"))),
    ] {
        let theirs = dir.join("theirs.qed");
        let ours = dir.join("ours.qed");
        qemu_create("qed", Some(opts), backing, &theirs, Some("1M"));
        let cs: u32 = opts[13..opts.find(',').unwrap()].parse().unwrap();
        let ts: u32 = opts[opts.len() - 1..].parse().unwrap();
        create_with_table_size(
            &ours,
            &CreateOptions {
                format: "qed".into(),
                size: Some(1 << 20),
                cluster_size: cs,
                backing_file: backing.map(|b| b.0.to_string()),
                backing_fmt: backing.map(|b| b.1.to_string()),
                ..Default::default()
            },
            ts,
        )
        .unwrap();
        assert_eq!(
            std::fs::read(&ours).unwrap(),
            std::fs::read(&theirs).unwrap(),
            "{opts}: tandem's image differs from qemu-img's"
        );
    }
    let bad = CreateOptions {
        format: "qed".into(),
        size: Some(1 << 20),
        ..Default::default()
    };
    for (o, ts) in [
        (
            CreateOptions {
                cluster_size: 2048,
                ..bad.clone()
            },
            4,
        ),
        (bad.clone(), 3),
        (bad.clone(), 32),
        (bad.clone(), 0),
        (
            CreateOptions {
                size: Some(u64::MAX / 2),
                ..bad.clone()
            },
            4,
        ),
        (
            CreateOptions {
                size: None,
                ..bad.clone()
            },
            4,
        ),
    ] {
        let r = create_with_table_size(&dir.join("bad.qed"), &o, ts);
        assert!(r.is_err(), "{o:?} table_size={ts}");
    }
    // The registry's create takes qemu-img's default table size.
    create(dir.join("default.qed"), &bad).unwrap();
    let b = std::fs::read(dir.join("default.qed")).unwrap();
    assert_eq!(u32::from_le_bytes(b[8..12].try_into().unwrap()), 4);
}

#[test]
fn backing_chains_both_ways() {
    if !qemu_img_or_skip("backing_chains_both_ways") {
        return;
    }
    let dir = TempDir::new("qed-chain");
    let base = dir.join("base.raw");
    let size = 2 << 20;
    let mut model = patterned_raw(&base, size, 44);
    // base.raw <- mid.qed (qemu-img, raw "no probe") <- top.qed (tandem, probed) <- over.qcow2
    let mid = dir.join("mid.qed");
    qemu_create(
        "qed",
        Some("cluster_size=4096"),
        Some(("base.raw", "raw")),
        &mid,
        None,
    );
    qemu_io(
        &mid,
        "qed",
        &["write -P 0x55 5000 70000", "write -z 262144 65536"],
    );
    model[5000..75000].fill(0x55);
    model[262144..327680].fill(0);
    let top = dir.join("top.qed");
    create(
        &top,
        &CreateOptions {
            format: "qed".into(),
            cluster_size: 16384,
            backing_file: Some("mid.qed".into()),
            backing_fmt: Some("qed".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let mut rng = Rng(45);
    {
        let mut d = open(&top, OpenOptions::default()).unwrap();
        assert_eq!(d.size(), size as u64);
        random_io(d.as_mut(), &mut model, &mut rng, 20);
        assert_same("top via tandem", &read_all(d.as_mut()), &model);
        let map = d.map(0, size as u64).unwrap();
        assert!(
            map.iter().any(|e| e.depth == 2),
            "reaches base.raw: {map:?}"
        );
    }
    assert_qemu_check_clean(&top);
    assert_same("top via qemu", &qemu_raw(&top, &dir), &model);
    let over = dir.join("over.qcow2");
    qemu_create("qcow2", None, Some(("top.qed", "qed")), &over, None);
    qemu_io(&over, "qcow2", &["write -P 0x66 1000000 3000"]);
    model[1000000..1003000].fill(0x66);
    let mut d = open(&over, ro()).unwrap();
    assert_same("qcow2 over qed", &read_all(d.as_mut()), &model);
}

#[test]
fn need_check_repairs_tables_pointing_beyond_the_file() {
    if !qemu_img_or_skip("need_check_repairs_tables_pointing_beyond_the_file") {
        return;
    }
    let dir = TempDir::new("qed-needcheck");
    let img = dir.join("n.qed");
    let (cs, size) = (4096u64, 1u64 << 20);
    qed_create(&img, size, cs as u32, 2);
    let mut model = vec![0u8; size as usize];
    let mut d = open(&img, qed_opts()).unwrap();
    let mut rng = Rng(46);
    random_io(d.as_mut(), &mut model, &mut rng, 10);
    // A crash: the driver never closes, the need-check bit stays.
    std::mem::forget(d);
    assert_ne!(features(&img) & 2, 0);
    // Consistent after all: qemu-img finds nothing, and tandem's repair only clears the bit.
    assert_eq!(qemu_check(&img).0, 0);
    // Damage: an L2 entry and an L1 entry pointing far beyond the file, and a leaked cluster.
    let mut b = std::fs::read(&img).unwrap();
    let l1 = le64(&b, 40) as usize;
    let l2 = le64(&b, l1) as usize;
    assert_ne!(l2, 0, "guest cluster 0 has an L2 table");
    let victim = (0..1024).find(|i| le64(&b, l2 + i * 8) > 1).unwrap();
    b[l2 + victim * 8..l2 + victim * 8 + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let spare_l1 = (0..1024).rev().find(|i| le64(&b, l1 + i * 8) == 0).unwrap();
    b[l1 + spare_l1 * 8..l1 + spare_l1 * 8 + 8].copy_from_slice(&(1u64 << 41).to_le_bytes());
    b.extend_from_slice(&[0xaa; 4096]);
    std::fs::write(&img, &b).unwrap();
    // What qemu-img and tandem count agree.
    let mut d = open(&img, ro()).unwrap();
    let rep = d.check(Repair::None).unwrap();
    assert_eq!(
        rep.corruptions,
        qemu_check_field(&img, "corruptions"),
        "{rep:?}"
    );
    assert_eq!(rep.leaks, qemu_check_field(&img, "leaks"), "{rep:?}");
    // Leaks: the appended cluster, and the victim's old cluster nothing points to now.
    assert_eq!((rep.corruptions, rep.leaks), (2, 2), "{rep:?}");
    // Read-only opens skip the check: the bad entry is a one-line read error.
    let mut buf = vec![0u8; 512];
    let e = d
        .read_at(victim as u64 * cs, &mut buf)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(s(&img)) && e.contains("invalid") && !e.contains('\n'),
        "{e}"
    );
    drop(d);
    // A writable open repairs: the entries cleared, the bit cleared, the leak left.
    let mut d = open(&img, qed_opts()).unwrap();
    model[victim * cs as usize..(victim + 1) * cs as usize].fill(0);
    assert_same("repaired", &read_all(d.as_mut()), &model);
    let rep = d.check(Repair::None).unwrap();
    assert_eq!((rep.corruptions, rep.leaks), (0, 2), "{rep:?}");
    drop(d);
    assert_eq!(features(&img) & 2, 0);
    assert_eq!(qemu_check_field(&img, "corruptions"), 0);
    assert_same("repaired via qemu", &qemu_raw(&img, &dir), &model);
}

#[test]
fn resize_and_set_backing() {
    if !qemu_img_or_skip("resize_and_set_backing") {
        return;
    }
    let dir = TempDir::new("qed-ops");
    let base = dir.join("base.raw");
    let base_data = patterned_raw(&base, 2 << 20, 47);
    let img = dir.join("o.qed");
    qemu_create("qed", None, Some(("base.raw", "raw")), &img, Some("1M"));
    let mut model = base_data[..1 << 20].to_vec();
    {
        let mut d = open(&img, OpenOptions::default()).unwrap();
        d.write_at(100_000, &[3u8; 200_000]).unwrap();
        model[100_000..300_000].fill(3);
        // Growing: the longer backing file does not show through.
        d.resize(3 << 20).unwrap();
        model.resize(3 << 20, 0);
        assert!(d.resize(1 << 20).is_err(), "QED does not shrink");
        assert_same("grown", &read_all(d.as_mut()), &model);
    }
    assert_qemu_check_clean(&img);
    assert_same("grown via qemu", &qemu_raw(&img, &dir), &model);
    let info = qemu_img(&["info", "--output=json", s(&img)]);
    assert!(info.contains("\"virtual-size\": 3145728"), "{info}");
    {
        let mut d = open(&img, OpenOptions::default()).unwrap();
        d.set_backing(None, None).unwrap();
    }
    let info = qemu_img(&["info", s(&img)]);
    assert!(!info.contains("backing file"), "{info}");
    qemu_img(&[
        "convert",
        "-O",
        "qcow2",
        s(&base),
        s(&dir.join("base.qcow2")),
    ]);
    {
        let mut d = open(&img, OpenOptions::default()).unwrap();
        d.set_backing(Some("base.qcow2"), Some("qcow2")).unwrap();
    }
    let info = qemu_img(&["info", s(&img)]);
    assert!(info.contains("backing file: base.qcow2"), "{info}");
    assert_qemu_check_clean(&img);
}

#[test]
fn hostile_qed_headers_are_refused_with_one_line() {
    let dir = TempDir::new("qed-hostile");
    let good = dir.join("good.qed");
    qed_create(&good, 1 << 20, 4096, 2);
    let orig = std::fs::read(&good).unwrap();
    let cases: &[(&str, usize, &[u8])] = &[
        ("unknown features", 16, &0x80u64.to_le_bytes()),
        ("cluster size not a power of two", 4, &5000u32.to_le_bytes()),
        ("cluster size too small", 4, &512u32.to_le_bytes()),
        ("cluster size too large", 4, &(1u32 << 30).to_le_bytes()),
        ("table size zero", 8, &0u32.to_le_bytes()),
        ("table size 32", 8, &32u32.to_le_bytes()),
        ("header size zero", 12, &0u32.to_le_bytes()),
        ("image size unaligned", 48, &1000u64.to_le_bytes()),
        ("image size huge", 48, &(1u64 << 62).to_le_bytes()),
        ("L1 beyond the file", 40, &(1u64 << 40).to_le_bytes()),
        ("L1 unaligned", 40, &4097u64.to_le_bytes()),
        ("L1 in the header", 40, &0u64.to_le_bytes()),
        ("L1 overflowing", 40, &(u64::MAX - 4095).to_le_bytes()),
        ("backing name beyond the header", 16, &1u64.to_le_bytes()),
    ];
    for (what, off, bytes) in cases {
        let mut b = orig.clone();
        b[*off..*off + bytes.len()].copy_from_slice(bytes);
        if *what == "backing name beyond the header" {
            b[56..60].copy_from_slice(&4000u32.to_le_bytes());
            b[60..64].copy_from_slice(&200u32.to_le_bytes());
        }
        let img = dir.join("bad.qed");
        std::fs::write(&img, &b).unwrap();
        for opts in [OpenOptions::default(), qed_opts(), ro()] {
            let e = open_err(&img, opts);
            assert!(e.starts_with(s(&img)) && !e.contains('\n'), "{what}: {e}");
        }
    }
    // Truncated files.
    for len in [0usize, 10, 63] {
        let img = dir.join("short.qed");
        std::fs::write(&img, &orig[..len]).unwrap();
        let e = open_err(&img, qed_opts());
        assert!(e.contains("too short") && e.starts_with(s(&img)), "{e}");
    }
    // Damaged tables never panic: every read, write and check either works or errs.
    let mut rng = Rng(48);
    for _ in 0..40 {
        let mut b = orig.clone();
        b.resize(64 << 10, 0);
        for _ in 0..8 {
            let i = 4096 + rng.below(16384) as usize;
            b[i..i + 8].copy_from_slice(&rng.next().to_le_bytes());
        }
        let img = dir.join("fuzz.qed");
        std::fs::write(&img, &b).unwrap();
        if let Ok(mut d) = open(&img, qed_opts()) {
            let mut buf = vec![0u8; 70_000];
            for _ in 0..4 {
                let off = rng.below(d.size() - buf.len() as u64);
                let _ = d.read_at(off, &mut buf);
                let _ = d.write_at(off, &buf);
            }
            let _ = d.check(Repair::All);
            let _ = d.map(0, d.size());
        }
    }
}
