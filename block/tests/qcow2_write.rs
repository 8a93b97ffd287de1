//! Images tandem writes pass `qemu-img check` and read back through qemu-img exactly as tandem
//! wrote them: random writes, backing files, snapshots, lazy refcounts after a crash, leaks.

mod common;

use common::*;
use tandem_block::{create, open, BlockDriver, CreateOptions, OpenOptions, Repair};

/// Random writes (and some zeroes and discards) of random sizes, mirrored into `model`.
fn random_io(d: &mut dyn BlockDriver, model: &mut [u8], rng: &mut Rng, ops: usize, max_len: u64) {
    let size = d.size();
    for _ in 0..ops {
        let len = 1 + rng.below(max_len);
        let len = len.min(size);
        let off = rng.below(size - len + 1);
        // Sector-aligned most of the time, as guests do; sometimes not.
        let (off, len) = if rng.below(4) != 0 {
            (off & !511, (len + 511) & !511)
        } else {
            (off, len)
        };
        let len = len.min(size - off);
        match rng.below(10) {
            0 => {
                d.write_zeroes(off, len).unwrap();
                model[off as usize..(off + len) as usize].fill(0);
            }
            _ => {
                let mut buf = vec![0u8; len as usize];
                rng.fill(&mut buf);
                d.write_at(off, &buf).unwrap();
                model[off as usize..(off + len) as usize].copy_from_slice(&buf);
            }
        }
    }
}

#[test]
fn random_writes_pass_qemu_check() {
    if !qemu_img_or_skip("random_writes_pass_qemu_check") {
        return;
    }
    let dir = TempDir::new("rw");
    let mut rng = Rng(11);
    let cases: &[(u32, u32, u32, bool)] = &[
        // (version, cluster size, refcount bits, lazy)
        (2, 65536, 16, false),
        (3, 512, 1, false),
        (3, 512, 64, false),
        (3, 1024, 2, false),
        (3, 4096, 4, true),
        (3, 8192, 8, false),
        (3, 65536, 32, false),
        (3, 2 << 20, 16, false),
    ];
    for &(version, cs, rb, lazy) in cases {
        let img = dir.join(&format!("w-{version}-{cs}-{rb}.qcow2"));
        let size = (3 << 20) + 512 * 7;
        let o = CreateOptions {
            size: Some(size),
            cluster_size: cs,
            version,
            refcount_bits: rb,
            lazy_refcounts: lazy,
            ..Default::default()
        };
        create(&img, &o).unwrap();
        assert_qemu_check_clean(&img);
        let mut model = vec![0u8; size as usize];
        {
            let mut d = open(
                &img,
                OpenOptions {
                    format: Some("qcow2".into()),
                    ..Default::default()
                },
            )
            .unwrap();
            random_io(d.as_mut(), &mut model, &mut rng, 60, 200_000);
            d.flush().unwrap();
            assert_same("tandem before close", &read_all(d.as_mut()), &model);
        }
        let what = format!("v{version} cs={cs} rb={rb} lazy={lazy}");
        let (code, out) = qemu_check(&img);
        assert_eq!(code, 0, "{what}: {out}");
        assert_same(&what, &qemu_raw(&img, &dir), &model);
        let mut d = open(&img, OpenOptions::default()).unwrap();
        assert!(d.check(Repair::None).unwrap().is_clean());
        assert_same(&what, &read_all(d.as_mut()), &model);
    }
}

#[test]
fn refcount_table_grows() {
    if !qemu_img_or_skip("refcount_table_grows") {
        return;
    }
    // 512-byte clusters with 64-bit refcounts: a block covers 64 clusters and the table
    // 4096 of them, so filling 4 MiB (8192 clusters + tables) grows the table.
    let dir = TempDir::new("grow");
    let img = dir.join("g.qcow2");
    let size = 4u64 << 20;
    create(
        &img,
        &CreateOptions {
            size: Some(size),
            cluster_size: 512,
            refcount_bits: 64,
            ..Default::default()
        },
    )
    .unwrap();
    let mut rng = Rng(5);
    let mut model = vec![0u8; size as usize];
    rng.fill(&mut model);
    {
        let mut d = open(&img, OpenOptions::default()).unwrap();
        for chunk in 0..(size / 262_144) {
            let off = chunk * 262_144;
            d.write_at(off, &model[off as usize..(off + 262_144) as usize])
                .unwrap();
        }
    }
    let head = std::fs::read(&img).unwrap();
    let table_clusters = u32::from_be_bytes([head[56], head[57], head[58], head[59]]);
    assert!(
        table_clusters > 1,
        "the refcount table grew ({table_clusters} clusters)"
    );
    assert_qemu_check_clean(&img);
    assert_same("grown", &qemu_raw(&img, &dir), &model);
}

#[test]
fn writes_over_a_backing_chain() {
    if !qemu_img_or_skip("writes_over_a_backing_chain") {
        return;
    }
    let dir = TempDir::new("wchain");
    let base = dir.join("base.raw");
    let mut model = patterned_raw(&base, 2 << 20, 21);
    let mid = dir.join("mid.qcow2");
    qemu_create(
        "qcow2",
        Some("cluster_size=16384"),
        Some(("base.raw", "raw")),
        &mid,
        None,
    );
    if have_qemu_io() {
        qemu_io(&mid, "qcow2", &["write -P 0x77 30000 100000"]);
        model[30000..130000].fill(0x77);
    }
    // A bigger overlay than its backing: the tail reads as zeroes.
    model.resize(3 << 20, 0);
    let backing_model = model.clone();
    // Version 2 overlays have no zero flag: zeroes over a backing file are written as data.
    for version in [2u32, 3] {
        let top = dir.join(&format!("top{version}.qcow2"));
        let mut model = backing_model.clone();
        let o = CreateOptions {
            size: Some(3 << 20),
            cluster_size: 4096,
            version,
            backing_file: Some("mid.qcow2".into()),
            backing_fmt: Some("qcow2".into()),
            ..Default::default()
        };
        create(&top, &o).unwrap();
        let mut rng = Rng(99 + version as u64);
        {
            let mut d = open(&top, OpenOptions::default()).unwrap();
            assert_same("fresh overlay", &read_all(d.as_mut()), &model);
            random_io(d.as_mut(), &mut model, &mut rng, 50, 50_000);
            if version == 3 {
                // Discarding whole clusters of a v3 overlay leaves zeroes, not the backing's.
                d.discard(65536, 65536).unwrap();
                model[65536..131072].fill(0);
            }
            assert_same("tandem view", &read_all(d.as_mut()), &model);
        }
        assert_qemu_check_clean(&top);
        assert_same(
            &format!("qemu view v{version}"),
            &qemu_raw(&top, &dir),
            &model,
        );
    }
    let top = dir.join("top3.qcow2");
    let info = qemu_img(&["info", s(&top)]);
    assert!(
        info.contains("backing file: mid.qcow2") && info.contains("backing file format: qcow2"),
        "{info}"
    );
}

#[test]
fn snapshots_create_apply_delete() {
    if !qemu_img_or_skip("snapshots_create_apply_delete") {
        return;
    }
    let dir = TempDir::new("snap");
    for (cs, rb) in [(4096u32, 16u32), (512, 4), (65536, 64), (2 << 20, 8)] {
        let img = dir.join(&format!("s-{cs}-{rb}.qcow2"));
        let size = 2u64 << 20;
        create(
            &img,
            &CreateOptions {
                size: Some(size),
                cluster_size: cs,
                refcount_bits: rb,
                ..Default::default()
            },
        )
        .unwrap();
        let mut rng = Rng(cs as u64 + rb as u64);
        let mut model = vec![0u8; size as usize];
        let mut d = open(&img, OpenOptions::default()).unwrap();
        random_io(d.as_mut(), &mut model, &mut rng, 20, 100_000);
        let s1 = model.clone();
        d.snapshot_create("one").unwrap();
        random_io(d.as_mut(), &mut model, &mut rng, 20, 100_000);
        let s2 = model.clone();
        let info = d.snapshot_create("two").unwrap();
        assert_eq!((info.id.as_str(), info.disk_size), ("2", size));
        assert!(
            d.snapshot_create("two").is_err(),
            "duplicate names are refused"
        );
        random_io(d.as_mut(), &mut model, &mut rng, 20, 100_000);
        d.flush().unwrap();
        let what = format!("cs={cs} rb={rb}");
        // Check each state through qemu-img: the live disk and both snapshots.
        assert_qemu_check_clean(&img);
        assert_same(&what, &qemu_raw(&img, &dir), &model);
        let snap_raw = |name: &str| {
            let out = dir.join("snap.raw");
            qemu_img(&[
                "convert",
                "-l",
                &format!("snapshot.name={name}"),
                "-O",
                "raw",
                s(&img),
                s(&out),
            ]);
            std::fs::read(&out).unwrap()
        };
        assert_same(&format!("{what} one"), &snap_raw("one"), &s1);
        assert_same(&format!("{what} two"), &snap_raw("two"), &s2);
        d.snapshot_apply("one").unwrap();
        assert_same(&format!("{what} applied one"), &read_all(d.as_mut()), &s1);
        model = s1.clone();
        random_io(d.as_mut(), &mut model, &mut rng, 20, 100_000);
        d.snapshot_delete("two").unwrap();
        d.flush().unwrap();
        assert_qemu_check_clean(&img);
        assert_same(
            &format!("{what} after delete"),
            &qemu_raw(&img, &dir),
            &model,
        );
        let list = qemu_img(&["snapshot", "-l", s(&img)]);
        assert!(list.contains("one") && !list.contains("two"), "{list}");
        d.snapshot_apply("1").unwrap();
        d.snapshot_delete("one").unwrap();
        assert!(d.snapshot_list().unwrap().is_empty());
        drop(d);
        assert_qemu_check_clean(&img);
        assert_same(&format!("{what} back at one"), &qemu_raw(&img, &dir), &s1);
    }
}

#[test]
fn refcount_width_one_refuses_snapshots_cleanly() {
    if !qemu_img_or_skip("refcount_width_one_refuses_snapshots_cleanly") {
        return;
    }
    let dir = TempDir::new("rb1");
    let img = dir.join("r.qcow2");
    create(
        &img,
        &CreateOptions {
            size: Some(1 << 20),
            refcount_bits: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let mut d = open(&img, OpenOptions::default()).unwrap();
    d.write_at(0, &[1u8; 70000]).unwrap();
    let e = d.snapshot_create("s").unwrap_err().to_string();
    assert!(e.contains("refcount"), "{e}");
    drop(d);
    assert_qemu_check_clean(&img);
}

#[test]
fn lazy_refcounts_rebuilt_after_a_crash() {
    if !qemu_img_or_skip("lazy_refcounts_rebuilt_after_a_crash") {
        return;
    }
    let dir = TempDir::new("lazy");
    let img = dir.join("l.qcow2");
    create(
        &img,
        &CreateOptions {
            size: Some(2 << 20),
            cluster_size: 4096,
            lazy_refcounts: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut model = vec![0u8; 2 << 20];
    let mut rng = Rng(3);
    let mut d = open(&img, OpenOptions::default()).unwrap();
    random_io(d.as_mut(), &mut model, &mut rng, 40, 100_000);
    // An unclean stop: nothing flushed, nothing closed.
    std::mem::forget(d);
    let info = qemu_img(&["info", "--output=json", s(&img)]);
    assert!(info.contains("\"dirty-flag\": true"), "{info}");
    let (code, _) = qemu_check(&img);
    assert_ne!(code, 0, "stale refcounts are visible before the repair");
    let mut d = open(&img, OpenOptions::default()).unwrap();
    assert_same("after rebuild", &read_all(d.as_mut()), &model);
    drop(d);
    assert_qemu_check_clean(&img);
    assert!(qemu_img(&["info", "--output=json", s(&img)]).contains("\"dirty-flag\": false"));
    assert_same("qemu after rebuild", &qemu_raw(&img, &dir), &model);
}

#[test]
fn check_counts_and_repairs_leaks_like_qemu_img() {
    if !qemu_img_or_skip("check_counts_and_repairs_leaks_like_qemu_img") {
        return;
    }
    let dir = TempDir::new("leak");
    let img = dir.join("k.qcow2");
    create(
        &img,
        &CreateOptions {
            size: Some(1 << 20),
            cluster_size: 4096,
            ..Default::default()
        },
    )
    .unwrap();
    {
        let mut d = open(&img, OpenOptions::default()).unwrap();
        d.write_at(0, &[7u8; 20000]).unwrap();
    }
    // Leak three clusters: give them refcounts, referenced by nothing (16-bit refcounts;
    // the refcount block is the third cluster of a new image).
    let len = std::fs::metadata(&img).unwrap().len();
    let mut bytes = std::fs::read(&img).unwrap();
    let first = len / 4096;
    bytes.resize((len + 3 * 4096) as usize, 0);
    for c in first..first + 3 {
        bytes[(2 * 4096 + 2 * c) as usize + 1] = 1;
    }
    std::fs::write(&img, &bytes).unwrap();
    let (code, out) = qemu_check(&img);
    assert_eq!(code, 3, "qemu-img sees the leaks: {out}");
    assert!(out.contains("3 leaked clusters"), "{out}");
    let mut d = open(&img, OpenOptions::default()).unwrap();
    let rep = d.check(Repair::None).unwrap();
    assert_eq!((rep.leaks, rep.corruptions), (3, 0), "{rep:?}");
    let rep = d.check(Repair::Leaks).unwrap();
    assert_eq!((rep.leaks, rep.leaks_fixed), (0, 3), "{rep:?}");
    drop(d);
    assert_qemu_check_clean(&img);
}

#[test]
fn corrupt_bit_allows_read_only_only() {
    if !qemu_img_or_skip("corrupt_bit_allows_read_only_only") {
        return;
    }
    let dir = TempDir::new("cbit");
    let img = dir.join("c.qcow2");
    create(
        &img,
        &CreateOptions {
            size: Some(1 << 20),
            ..Default::default()
        },
    )
    .unwrap();
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[79] |= 2; // incompatible_features bit 1
    std::fs::write(&img, &bytes).unwrap();
    let e = open_err(&img, OpenOptions::default());
    assert!(e.contains("corrupt") && e.contains(s(&img)), "{e}");
    let mut d = open(&img, ro()).unwrap();
    assert_eq!(read_all(d.as_mut()), vec![0u8; 1 << 20]);
    assert_eq!(
        std::fs::read(&img).unwrap(),
        bytes,
        "refusal leaves the file unchanged"
    );
}

#[test]
fn qcow2_in_every_cache_mode() {
    if !qemu_img_or_skip("qcow2_in_every_cache_mode") {
        return;
    }
    let dir = TempDir::new("qcache");
    for mode in ["none", "writethrough", "directsync", "unsafe"] {
        let img = dir.join(&format!("{mode}.qcow2"));
        let size = 1u64 << 20;
        create(
            &img,
            &CreateOptions {
                size: Some(size),
                cluster_size: 4096,
                ..Default::default()
            },
        )
        .unwrap();
        let mut model = vec![0u8; size as usize];
        let mut rng = Rng(mode.len() as u64);
        {
            let opts = OpenOptions {
                cache: mode.parse().unwrap(),
                ..Default::default()
            };
            let mut d = open(&img, opts).unwrap();
            random_io(d.as_mut(), &mut model, &mut rng, 15, 30_000);
            d.snapshot_create("s").unwrap();
            random_io(d.as_mut(), &mut model, &mut rng, 5, 30_000);
        }
        assert_qemu_check_clean(&img);
        assert_same(mode, &qemu_raw(&img, &dir), &model);
    }
}
