//! raw images, the registry's options (format names, read-only, cache modes) and the sector-0
//! rule for probed raw images.

mod common;

use common::*;
use tandem_block::{create, open, BlockError, CacheMode, CreateOptions, OpenOptions};

#[test]
fn raw_read_write_in_every_cache_mode() {
    let dir = TempDir::new("raw");
    let img = dir.join("r.img");
    create(
        &img,
        &CreateOptions {
            format: "raw".into(),
            size: Some(1 << 20),
            ..Default::default()
        },
    )
    .unwrap();
    let mut model = vec![0u8; 1 << 20];
    let mut rng = Rng(17);
    for mode in ["writeback", "none", "writethrough", "directsync", "unsafe"] {
        let cache: CacheMode = mode.parse().unwrap();
        assert_eq!(cache.name(), mode);
        let mut d = open(
            &img,
            OpenOptions {
                format: Some("raw".into()),
                cache,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((d.format_name(), d.size()), ("raw", 1 << 20));
        for _ in 0..20 {
            // Unaligned offsets and lengths, which O_DIRECT needs bounced.
            let len = 1 + rng.below(20000) as usize;
            let off = rng.below((1 << 20) - len as u64) as usize;
            let mut buf = vec![0u8; len];
            rng.fill(&mut buf);
            d.write_at(off as u64, &buf).unwrap();
            model[off..off + len].copy_from_slice(&buf);
        }
        d.flush().unwrap();
        assert_same(mode, &read_all(d.as_mut()), &model);
        // A write at the very end must not grow the file (O_DIRECT writes whole blocks).
        d.write_at((1 << 20) - 3, &[1, 2, 3]).unwrap();
        model[(1 << 20) - 3..].copy_from_slice(&[1, 2, 3]);
        drop(d);
        assert_eq!(std::fs::metadata(&img).unwrap().len(), 1 << 20, "{mode}");
        assert_same(mode, &std::fs::read(&img).unwrap(), &model);
    }
    assert!("bogus".parse::<CacheMode>().is_err());
}

#[test]
fn ranges_read_only_and_unknown_formats() {
    let dir = TempDir::new("raw-opts");
    let img = dir.join("r.img");
    std::fs::write(&img, vec![5u8; 4096]).unwrap();
    let mut d = open(&img, ro()).unwrap();
    assert!(d.is_read_only());
    assert!(matches!(d.write_at(0, &[1]), Err(BlockError::ReadOnly)));
    assert!(matches!(
        d.read_at(4000, &mut [0u8; 97]),
        Err(BlockError::OutOfRange { .. })
    ));
    assert!(matches!(
        d.read_at(u64::MAX, &mut [0u8; 2]),
        Err(BlockError::OutOfRange { .. })
    ));
    assert!(matches!(
        d.snapshot_list(),
        Err(BlockError::NotSupported { .. })
    ));
    let map = d.map(0, 4096).unwrap();
    assert_eq!((map.len(), map[0].data, map[0].offset), (1, true, Some(0)));
    let e = open_err(
        &img,
        OpenOptions {
            format: Some("vhdx".into()),
            ..Default::default()
        },
    );
    assert!(e.contains("vhdx"), "{e}");
    let e = open_err(
        &img,
        OpenOptions {
            format: Some("qcow2".into()),
            ..Default::default()
        },
    );
    assert!(e.contains(s(&img)) && e.contains("not a qcow2"), "{e}");
    let e = open_err(&dir.join("absent.img"), OpenOptions::default());
    assert!(
        e.contains("absent.img") && e.contains("No such file"),
        "{e}"
    );
}

#[test]
fn probed_raw_keeps_its_format() {
    let dir = TempDir::new("sector0");
    let img = dir.join("p.img");
    std::fs::write(&img, vec![0u8; 65536]).unwrap();
    let before = std::fs::read(&img).unwrap();
    let mut d = open(&img, OpenOptions::default()).unwrap();
    assert_eq!(d.format_name(), "raw");
    // A qcow2 or QED magic at sector 0 would change what the image probes as.
    for magic in [&b"QFI\xfb\0\0\0\x03"[..], &b"QED\0"[..]] {
        let e = d.write_at(0, magic).unwrap_err();
        assert!(matches!(e, BlockError::ProbedRawSectorZero { .. }), "{e}");
    }
    // Completing the magic byte by byte is caught as well.
    d.write_at(0, b"Q").unwrap();
    assert!(d.write_at(1, b"FI\xfb").is_err());
    d.write_at(0, &[0]).unwrap();
    assert_eq!(std::fs::read(&img).unwrap(), before);
    // Other data, and other sectors, are fine.
    d.write_at(0, &[0xeb, 0x63, 0x90]).unwrap();
    d.write_at(512, b"QFI\xfb").unwrap();
    drop(d);
    // Named explicitly as raw, the image may become anything.
    let mut d = open(
        &img,
        OpenOptions {
            format: Some("raw".into()),
            ..Default::default()
        },
    )
    .unwrap();
    d.write_at(0, b"QFI\xfb").unwrap();
}

#[test]
fn qcow2_rejects_bad_create_options() {
    let dir = TempDir::new("badcreate");
    let img = dir.join("x.qcow2");
    let bad = [
        CreateOptions {
            size: Some(1 << 20),
            cluster_size: 1000,
            ..Default::default()
        },
        CreateOptions {
            size: Some(1 << 20),
            cluster_size: 256,
            ..Default::default()
        },
        CreateOptions {
            size: Some(1 << 20),
            cluster_size: 4 << 20,
            ..Default::default()
        },
        CreateOptions {
            size: Some(1 << 20),
            version: 4,
            ..Default::default()
        },
        CreateOptions {
            size: Some(1 << 20),
            refcount_bits: 3,
            ..Default::default()
        },
        CreateOptions {
            size: Some(1 << 20),
            refcount_bits: 128,
            ..Default::default()
        },
        CreateOptions {
            size: Some(1 << 20),
            version: 2,
            lazy_refcounts: true,
            ..Default::default()
        },
        CreateOptions {
            size: None,
            ..Default::default()
        },
        CreateOptions {
            size: Some(1 << 62),
            ..Default::default()
        },
        CreateOptions {
            size: Some(1 << 20),
            backing_file: Some("missing.qcow2".into()),
            ..Default::default()
        },
    ];
    for o in bad {
        assert!(create(&img, &o).is_err(), "{o:?}");
    }
    // 512-byte clusters leave no room for a long backing file name in the header cluster.
    create(
        dir.join("b.qcow2"),
        &CreateOptions {
            size: Some(1 << 20),
            ..Default::default()
        },
    )
    .unwrap();
    let long = format!("{}b.qcow2", "./".repeat(300));
    let o = CreateOptions {
        cluster_size: 512,
        backing_file: Some(long),
        ..Default::default()
    };
    assert!(create(&img, &o).is_err());
    // Every size rounds trip, including ones that are not cluster multiples.
    for size in [0u64, 1, 511, 512, 65537, 3 << 20] {
        create(
            &img,
            &CreateOptions {
                size: Some(size),
                cluster_size: 512,
                ..Default::default()
            },
        )
        .unwrap();
        let mut d = open(&img, OpenOptions::default()).unwrap();
        assert_eq!(d.size(), size);
        if size > 0 {
            d.write_at(size - 1, &[9]).unwrap();
            let mut b = [0u8];
            d.read_at(size - 1, &mut b).unwrap();
            assert_eq!(b, [9]);
        }
        assert!(d.check(tandem_block::Repair::None).unwrap().is_clean());
    }
}
