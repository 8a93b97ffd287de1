//! Resizing raw and qcow2 images: qemu-img sees the new size, `qemu-img check` stays clean, the
//! data below the smaller of the two sizes is kept and grown areas read as zeroes.

mod common;

use common::*;
use tandem_block::{create, open, CreateOptions, OpenOptions};

/// The virtual size `qemu-img info` reports.
fn qemu_size(img: &std::path::Path) -> u64 {
    let out = qemu_img(&["info", "--output=json", s(img)]);
    json_u64(&out, "virtual-size").expect("virtual-size in qemu-img info")
}

fn rw() -> OpenOptions {
    OpenOptions::default()
}

/// Resizes `img` through tandem, mirrors it into `model` and compares with qemu-img's view.
fn resize_and_compare(img: &std::path::Path, dir: &TempDir, model: &mut Vec<u8>, new: u64) {
    {
        let mut d = open(img, rw()).unwrap();
        d.resize(new).unwrap();
        assert_eq!(d.size(), new);
        model.resize(new as usize, 0);
        assert_same("tandem after resize", &read_all(d.as_mut()), model);
    }
    let what = format!("{} resized to {new}", img.display());
    assert_eq!(qemu_size(img), new, "{what}");
    if img.extension().is_some_and(|e| e == "qcow2") {
        let (code, out) = qemu_check(img);
        assert_eq!(code, 0, "{what}: {out}");
    }
    assert_same(&what, &qemu_raw(img, dir), model);
}

#[test]
fn raw_grows_and_shrinks() {
    if !qemu_img_or_skip("raw_grows_and_shrinks") {
        return;
    }
    let dir = TempDir::new("resize-raw");
    let img = dir.join("r.raw");
    let mut model = patterned_raw(&img, 1 << 20, 9);
    resize_and_compare(&img, &dir, &mut model, 3 << 20);
    resize_and_compare(&img, &dir, &mut model, 100 << 10);
    let mut d = open(&img, ro()).unwrap();
    assert!(d.resize(1 << 20).is_err(), "read-only images refuse");
}

#[test]
fn qcow2_grows_with_l1_relocation_and_in_place() {
    if !qemu_img_or_skip("qcow2_grows_with_l1_relocation_and_in_place") {
        return;
    }
    let dir = TempDir::new("resize-grow");
    let mut rng = Rng(21);
    // (version, cluster size, old size, new size): 512-byte clusters cover 32 KiB per L1
    // entry, so 1 MiB -> 8 MiB needs a bigger L1 table (relocated); 64 KiB clusters cover
    // 512 MiB per entry and grow in place.
    let cases: &[(u32, u32, u64, u64)] = &[
        (3, 512, 1 << 20, 8 << 20),
        (2, 512, (1 << 20) + 1536, (3 << 20) + 512),
        (3, 65536, (1 << 20) + 512, 2 << 30),
        (3, 4096, 0, 1 << 20),
    ];
    for &(version, cs, old, new) in cases {
        let img = dir.join(&format!("g-{version}-{cs}.qcow2"));
        create(
            &img,
            &CreateOptions {
                size: Some(old),
                cluster_size: cs,
                version,
                ..Default::default()
            },
        )
        .unwrap();
        let mut model = vec![0u8; old as usize];
        if old > 0 {
            let mut d = open(&img, rw()).unwrap();
            rng.fill(&mut model);
            d.write_at(0, &model).unwrap();
        }
        if new > 64 << 20 {
            // Too big to compare whole: check the head and the new tail.
            let mut d = open(&img, rw()).unwrap();
            d.resize(new).unwrap();
            let mut head = vec![0u8; old as usize];
            d.read_at(0, &mut head).unwrap();
            assert_same("head", &head, &model);
            let mut tail = vec![1u8; 1 << 20];
            d.read_at(new - (1 << 20), &mut tail).unwrap();
            assert!(tail.iter().all(|b| *b == 0));
            d.write_at(new - 4096, &[7u8; 4096]).unwrap();
            drop(d);
            assert_qemu_check_clean(&img);
            assert_eq!(qemu_size(&img), new);
            continue;
        }
        resize_and_compare(&img, &dir, &mut model, new);
        // Writes into the grown area land and qemu-img sees them.
        let mut d = open(&img, rw()).unwrap();
        let mut buf = vec![0u8; 70_000];
        rng.fill(&mut buf);
        let off = new as usize - buf.len();
        d.write_at(off as u64, &buf).unwrap();
        drop(d);
        model[off..].copy_from_slice(&buf);
        assert_qemu_check_clean(&img);
        assert_same("grown writes", &qemu_raw(&img, &dir), &model);
    }
}

#[test]
fn qcow2_shrinks_as_qemu_img_shrink_does() {
    if !qemu_img_or_skip("qcow2_shrinks_as_qemu_img_shrink_does") {
        return;
    }
    let dir = TempDir::new("resize-shrink");
    let mut rng = Rng(22);
    for (cs, snapshot) in [(512u32, false), (4096, true), (65536, false)] {
        let img = dir.join(&format!("s-{cs}.qcow2"));
        let size = 4u64 << 20;
        create(
            &img,
            &CreateOptions {
                size: Some(size),
                cluster_size: cs,
                ..Default::default()
            },
        )
        .unwrap();
        let mut model = vec![0u8; size as usize];
        rng.fill(&mut model);
        {
            let mut d = open(&img, rw()).unwrap();
            d.write_at(0, &model).unwrap();
            if snapshot {
                d.snapshot_create("before").unwrap();
                d.write_at(3 << 20, &[5u8; 8192]).unwrap();
                model[3 << 20..(3 << 20) + 8192].fill(5);
            }
        }
        let before = std::fs::metadata(&img).unwrap().len();
        // Not cluster aligned: the boundary cluster stays, its tail beyond the end unseen.
        let new = (1 << 20) + 1536;
        resize_and_compare(&img, &dir, &mut model, new);
        let after = std::fs::metadata(&img).unwrap().len();
        if !snapshot {
            assert!(
                after < before / 2,
                "cs={cs}: file not truncated ({before} -> {after})"
            );
        }
        // Growing again shows zeroes, not the old bytes.
        resize_and_compare(&img, &dir, &mut model, 2 << 20);
        let mut d = open(&img, rw()).unwrap();
        assert!(d.resize(1000).is_err(), "sizes are multiples of 512");
        if snapshot {
            assert_eq!(d.snapshot_list().unwrap().len(), 1);
        }
    }
}

#[test]
fn qcow2_grown_over_a_longer_backing_file_reads_zeroes() {
    if !qemu_img_or_skip("qcow2_grown_over_a_longer_backing_file_reads_zeroes") {
        return;
    }
    let dir = TempDir::new("resize-backing");
    let base = dir.join("base.raw");
    let base_data = patterned_raw(&base, 3 << 20, 4);
    for version in ["1.1", "0.10"] {
        let top = dir.join(&format!("top-{version}.qcow2"));
        let o = format!("compat={version},cluster_size=4096");
        qemu_create(
            "qcow2",
            Some(o.as_str()),
            Some(("base.raw", "raw")),
            &top,
            Some("1000K"),
        );
        let mut model = base_data[..1000 << 10].to_vec();
        resize_and_compare(&top, &dir, &mut model, 2 << 20);
    }
}
