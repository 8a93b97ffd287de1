//! Changing the backing file a qcow2 image records (rebase -u): qemu-img info shows the new
//! names, qemu-img check stays clean, other header extensions survive, and tandem reads
//! through the new chain at once.

mod common;

use common::*;
use tandem_block::{open, OpenOptions};

/// `qemu-img info --output=json`'s (backing-filename, backing-filename-format).
fn qemu_backing(img: &std::path::Path) -> (Option<String>, Option<String>) {
    let out = qemu_img(&["info", "--output=json", s(img)]);
    let field = |key: &str| {
        let k = format!("\"{key}\": \"");
        out.find(&k).map(|at| {
            let rest = &out[at + k.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
    };
    (field("backing-filename"), field("backing-filename-format"))
}

/// Where the overlay has data of its own: whole clusters of every size tested.
const W: u64 = 128 << 10;
const WLEN: usize = 64 << 10;

#[test]
fn rebase_unsafe_through_qemu_img_info() {
    if !qemu_img_or_skip("rebase_unsafe_through_qemu_img_info") {
        return;
    }
    let dir = TempDir::new("setbacking");
    let base1 = dir.join("base1.raw");
    let data1 = patterned_raw(&base1, 1 << 20, 31);
    let base2 = dir.join("base2.raw");
    let data2 = patterned_raw(&base2, 1 << 20, 32);
    qemu_convert_raw("qcow2", None, &base2, &dir.join("base2.qcow2"));
    for (version, cs) in [("1.1", "65536"), ("0.10", "4096"), ("1.1", "512")] {
        let top = dir.join(&format!("top-{version}-{cs}.qcow2"));
        let o = format!("compat={version},cluster_size={cs}");
        qemu_create(
            "qcow2",
            Some(o.as_str()),
            Some(("base1.raw", "raw")),
            &top,
            None,
        );
        let mut model = data1.clone();
        let mut d = open(&top, OpenOptions::default()).unwrap();
        d.write_at(W, &[9u8; WLEN]).unwrap();
        model[W as usize..W as usize + WLEN].fill(9);
        let what = format!("compat={version} cs={cs}");

        // Another file and format: the overlay now shows base2 where it has no data.
        d.set_backing(Some("base2.qcow2"), Some("qcow2")).unwrap();
        let mut want = data2.clone();
        want[W as usize..W as usize + WLEN].fill(9);
        assert_same(&what, &read_all(d.as_mut()), &want);
        assert_eq!(
            qemu_backing(&top),
            (Some("base2.qcow2".into()), Some("qcow2".into())),
            "{what}"
        );
        assert_qemu_check_clean(&top);
        assert_same(&what, &qemu_raw(&top, &dir), &want);

        // A format left to probing.
        d.set_backing(Some("base1.raw"), None).unwrap();
        assert_eq!(qemu_backing(&top), (Some("base1.raw".into()), None));
        assert_same(&what, &read_all(d.as_mut()), &model);

        // No backing file at all: holes read as zeroes.
        d.set_backing(None, None).unwrap();
        assert_eq!(qemu_backing(&top), (None, None));
        assert_qemu_check_clean(&top);
        let mut zeroes = vec![0u8; 1 << 20];
        zeroes[W as usize..W as usize + WLEN].fill(9);
        assert_same(&what, &read_all(d.as_mut()), &zeroes);

        // A name that does not open is recorded; reads that reach it fail with one line.
        d.set_backing(Some("missing.raw"), Some("raw")).unwrap();
        assert_eq!(
            qemu_backing(&top),
            (Some("missing.raw".into()), Some("raw".into()))
        );
        let mut buf = [0u8; 512];
        d.read_at(W, &mut buf).unwrap();
        let e = d.read_at(0, &mut buf).unwrap_err().to_string();
        assert!(
            e.contains("missing.raw") && !e.contains('\n'),
            "{what}: {e}"
        );
        assert!(d.set_backing(None, Some("raw")).is_err());
        d.set_backing(Some("base1.raw"), Some("raw")).unwrap();
        drop(d);
        assert_eq!(
            qemu_backing(&top),
            (Some("base1.raw".into()), Some("raw".into()))
        );
        assert_same(&what, &qemu_raw(&top, &dir), &model);
        // qemu-img's own feature name table (v3) is still in the header cluster.
        let head = std::fs::read(&top).unwrap();
        let head = &head[..head.len().min(65536)];
        if version == "1.1" && cs != "512" {
            assert!(
                head.windows(14).any(|w| w == b"lazy refcounts"),
                "{what}: feature table lost"
            );
        }
        let mut d = open(&top, OpenOptions::default()).unwrap();
        assert_same(&what, &read_all(d.as_mut()), &model);
        // A name too long for a 512-byte header cluster is refused, the header untouched.
        if cs == "512" {
            let long = "x".repeat(600);
            assert!(d.set_backing(Some(&long), None).is_err());
            drop(d);
            assert_eq!(qemu_backing(&top).0, Some("base1.raw".into()));
        }
    }
    // Raw images have no backing file.
    let mut d = open(&base1, OpenOptions::default()).unwrap();
    assert!(d.set_backing(Some("x"), None).is_err());
}
