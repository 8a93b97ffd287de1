//! Images made by qemu-img and qemu-io read back through tandem exactly as qemu-img reads them.

mod common;

use common::*;
use tandem_block::{open, OpenOptions};

#[test]
fn qcow2_every_version_cluster_size_and_refcount_width() {
    if !qemu_img_or_skip("qcow2_every_version_cluster_size_and_refcount_width") {
        return;
    }
    let dir = TempDir::new("matrix");
    let raw = dir.join("src.raw");
    let want = patterned_raw(&raw, (3 << 20) + 4096 + 512, 1);
    let mut cases = Vec::new();
    for cs in [512u32, 4096, 65536, 2 << 20] {
        cases.push(("0.10", cs, 16u32));
        for rb in [1u32, 2, 4, 8, 16, 32, 64] {
            // Every width with the smallest clusters; a few with the others.
            if cs == 512 || matches!(rb, 1 | 16 | 64) {
                cases.push(("1.1", cs, rb));
            }
        }
    }
    for (compat, cs, rb) in cases {
        let img = dir.join(&format!("m-{compat}-{cs}-{rb}.qcow2"));
        let o = format!("compat={compat},cluster_size={cs},refcount_bits={rb}");
        qemu_convert_raw("qcow2", Some(o.as_str()), &raw, &img);
        let mut d = open(&img, OpenOptions::default()).unwrap();
        assert_eq!(d.format_name(), "qcow2");
        assert_same(&o, &read_all(d.as_mut()), &want);
        let rep = d.check(tandem_block::Repair::None).unwrap();
        assert!(rep.is_clean(), "{o}: {rep:?}");
    }
}

#[test]
fn compressed_clusters() {
    if !qemu_img_or_skip("compressed_clusters") {
        return;
    }
    let dir = TempDir::new("compressed");
    let raw = dir.join("src.raw");
    // Compressible data: random bytes from a small alphabet, with zero stretches.
    let mut rng = Rng(7);
    let mut want = vec![0u8; 3 << 20];
    for (i, b) in want.iter_mut().enumerate() {
        if (i / 70_000) % 3 != 0 {
            *b = b"tandem!"[rng.below(7) as usize];
        }
    }
    std::fs::write(&raw, &want).unwrap();
    for cs in [512u32, 4096, 65536, 2 << 20] {
        let img = dir.join(&format!("c-{cs}.qcow2"));
        let o = format!("cluster_size={cs}");
        qemu_img(&[
            "convert",
            "-c",
            "-f",
            "raw",
            "-O",
            "qcow2",
            "-o",
            &o,
            s(&raw),
            s(&img),
        ]);
        let mut d = open(&img, ro()).unwrap();
        assert_same(&o, &read_all(d.as_mut()), &want);
        let map = d.map(0, d.size()).unwrap();
        assert!(
            map.iter().any(|e| e.compressed),
            "{o}: no compressed cluster in {map:?}"
        );
    }
}

#[test]
fn backing_chain_with_zero_clusters() {
    if !qemu_img_or_skip("backing_chain_with_zero_clusters") {
        return;
    }
    let dir = TempDir::new("chain");
    let base = dir.join("base.raw");
    patterned_raw(&base, 2 << 20, 3);
    let mid = dir.join("mid.qcow2");
    let top = dir.join("top.qcow2");
    qemu_create(
        "qcow2",
        Some("cluster_size=4096"),
        Some(("base.raw", "raw")),
        &mid,
        None,
    );
    qemu_create(
        "qcow2",
        None,
        Some(("mid.qcow2", "qcow2")),
        &top,
        Some("3M"),
    );
    if have_qemu_io() {
        qemu_io(
            &mid,
            "qcow2",
            &[
                "write -P 0x11 4096 10000",
                "write -z 65536 131072",
                "write -P 0x22 1700000 300000",
            ],
        );
        qemu_io(
            &top,
            "qcow2",
            &[
                "write -P 0x33 0 5000",
                "write -z 1966080 65536",
                "write -P 0x44 2500000 100000",
            ],
        );
    }
    let want = qemu_raw(&top, &dir);
    let mut d = open(&top, ro()).unwrap();
    assert_eq!(d.size(), 3 << 20);
    assert_same("top of chain", &read_all(d.as_mut()), &want);
    // The chain through a probed backing format (no backing_fmt) reads the same.
    let top2 = dir.join("top2.qcow2");
    // (qemu-img 10 refuses to create one; tandem's create records no format when given none.)
    let o = tandem_block::CreateOptions {
        size: Some(3 << 20),
        backing_file: Some("mid.qcow2".into()),
        ..Default::default()
    };
    tandem_block::create(&top2, &o).unwrap();
    let mut d2 = open(&top2, ro()).unwrap();
    assert_same(
        "probed chain",
        &read_all(d2.as_mut()),
        &qemu_raw(&top2, &dir),
    );
}

#[test]
fn map_matches_qemu_img_map() {
    if !qemu_img_or_skip("map_matches_qemu_img_map") || !have_qemu_io() {
        return;
    }
    let dir = TempDir::new("map");
    let base = dir.join("base.qcow2");
    let top = dir.join("top.qcow2");
    qemu_create("qcow2", None, None, &base, Some("2M"));
    qemu_io(
        &base,
        "qcow2",
        &["write -P 1 0 196608", "write -P 2 1048576 65536"],
    );
    qemu_create(
        "qcow2",
        None,
        Some(("base.qcow2", "qcow2")),
        &top,
        Some("2M"),
    );
    qemu_io(
        &top,
        "qcow2",
        &[
            "write -P 3 65536 65536",
            "write -z 131072 65536",
            "write -P 4 1572864 131072",
        ],
    );
    let json = qemu_img(&["map", "--output=json", s(&top)]);
    let mut d = open(&top, ro()).unwrap();
    let ours = d.map(0, d.size()).unwrap();
    // Compare per 64 KiB cluster: (depth, present, zero, data).
    let attrs =
        |start: u64, len: u64, a: (u64, bool, bool, bool), v: &mut Vec<(u64, bool, bool, bool)>| {
            for _ in 0..len / 65536 {
                v.push(a);
            }
            let _ = start;
        };
    let mut want = Vec::new();
    for obj in json.split('{').skip(1) {
        let field = |k: &str| {
            let i = obj.find(&format!("\"{k}\": ")).unwrap() + k.len() + 4;
            obj[i..]
                .split([',', '}'])
                .next()
                .unwrap()
                .trim()
                .to_string()
        };
        let b = |k: &str| field(k) == "true";
        attrs(
            field("start").parse().unwrap(),
            field("length").parse().unwrap(),
            (
                field("depth").parse().unwrap(),
                b("present"),
                b("zero"),
                b("data"),
            ),
            &mut want,
        );
    }
    let mut got = Vec::new();
    for e in &ours {
        attrs(
            e.start,
            e.length,
            (e.depth as u64, e.present, e.zero, e.data),
            &mut got,
        );
    }
    assert_eq!(got, want, "ours: {ours:?}\nqemu: {json}");
}

#[test]
fn snapshots_made_by_qemu_img() {
    if !qemu_img_or_skip("snapshots_made_by_qemu_img") || !have_qemu_io() {
        return;
    }
    let dir = TempDir::new("qsnap");
    let img = dir.join("s.qcow2");
    qemu_create("qcow2", Some("cluster_size=4096"), None, &img, Some("1M"));
    qemu_io(&img, "qcow2", &["write -P 0xa1 0 300000"]);
    qemu_img(&["snapshot", "-c", "first", s(&img)]);
    let first = qemu_raw(&img, &dir);
    qemu_io(
        &img,
        "qcow2",
        &["write -P 0xb2 100000 300000", "write -z 0 8192"],
    );
    qemu_img(&["snapshot", "-c", "second", s(&img)]);
    qemu_io(&img, "qcow2", &["write -P 0xc3 500000 10000"]);
    let now = qemu_raw(&img, &dir);
    {
        let mut d = open(&img, OpenOptions::default()).unwrap();
        assert_same("current state", &read_all(d.as_mut()), &now);
        let names: Vec<String> = d
            .snapshot_list()
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["first", "second"]);
        d.snapshot_apply("first").unwrap();
        assert_same("after applying 'first'", &read_all(d.as_mut()), &first);
    }
    assert_qemu_check_clean(&img);
    assert_same(
        "qemu-img reads the applied snapshot",
        &qemu_raw(&img, &dir),
        &first,
    );
}

#[test]
fn dirty_image_left_by_qemu_is_repaired_on_open() {
    if !qemu_img_or_skip("dirty_image_left_by_qemu_is_repaired_on_open") || !have_qemu_io() {
        return;
    }
    let dir = TempDir::new("qdirty");
    let img = dir.join("d.qcow2");
    qemu_create(
        "qcow2",
        Some("lazy_refcounts=on,cluster_size=4096"),
        None,
        &img,
        Some("1M"),
    );
    // qemu-io killed by SIGKILL after writing: the dirty bit stays set, refcounts are stale.
    let _ = std::process::Command::new("qemu-io")
        .args(["-c", "write -P 0x5a 0 200000", "-c", "sigraise 9", s(&img)])
        .output();
    let want = {
        let mut d = open(&img, ro()).unwrap();
        read_all(d.as_mut())
    };
    assert!(want[..200000].iter().all(|b| *b == 0x5a));
    drop(open(&img, OpenOptions::default()).unwrap());
    assert_qemu_check_clean(&img);
    assert_same("after repair", &qemu_raw(&img, &dir), &want);
}
