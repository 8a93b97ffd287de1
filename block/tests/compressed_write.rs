//! Compressed cluster writes: qemu-img check stays clean, qemu-img reads the data back
//! exactly, qemu-img map and check see compressed clusters, and streams packed into shared
//! host clusters survive overwrites, snapshots and frees.

mod common;

use common::*;
use tandem_block::{create, open, CreateOptions, OpenOptions};

/// A disk of mixed clusters: text-like (compressible), random (not), zero, and a random 8 KiB
/// block repeated (back references longer than QEMU's 4 KiB deflate window).
fn mixed_data(size: usize, cs: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut v = vec![0u8; size];
    let mut rep = vec![0u8; 8192];
    rng.fill(&mut rep);
    for (i, chunk) in v.chunks_mut(cs).enumerate() {
        match i % 5 {
            0 | 3 => {
                for b in chunk.iter_mut() {
                    *b = b"qcow2 compressed "[rng.below(17) as usize];
                }
            }
            1 => rng.fill(chunk),
            2 => {}
            _ => {
                for (j, b) in chunk.iter_mut().enumerate() {
                    *b = rep[j % rep.len()];
                }
            }
        }
    }
    v
}

#[test]
fn compressed_writes_read_back_through_qemu_img() {
    if !qemu_img_or_skip("compressed_writes_read_back_through_qemu_img") {
        return;
    }
    let dir = TempDir::new("cwrite");
    for (cs, version) in [(512u32, 3u32), (4096, 2), (65536, 3), (2 << 20, 3)] {
        let img = dir.join(&format!("c-{cs}.qcow2"));
        // Not a whole number of clusters: the last one is compressed zero-padded.
        let size = (5u64 << 20) + 1536;
        create(
            &img,
            &CreateOptions {
                size: Some(size),
                cluster_size: cs,
                version,
                ..Default::default()
            },
        )
        .unwrap();
        let mut model = mixed_data(size as usize, cs as usize, cs as u64);
        let what = format!("cs={cs} v{version}");
        {
            let mut d = open(&img, OpenOptions::default()).unwrap();
            assert_eq!(d.compression_unit(), Some(cs as u64));
            // Several clusters per call, as convert does, in uneven runs.
            let step = cs as usize * 3;
            for off in (0..model.len()).step_by(step) {
                let end = (off + step).min(model.len());
                d.write_compressed(off as u64, &model[off..end]).unwrap();
            }
            assert!(
                d.write_compressed(256, &model[..cs as usize]).is_err(),
                "{what}: unaligned compressed write accepted"
            );
            let map = d.map(0, size).unwrap();
            assert!(map.iter().any(|e| e.compressed), "{what}: {map:?}");
            assert_same(&what, &read_all(d.as_mut()), &model);
        }
        let (code, out) = qemu_check(&img);
        assert_eq!(code, 0, "{what}: {out}");
        assert!(
            !out.contains(" 0.00% compressed"),
            "{what}: qemu-img sees no compressed clusters: {out}"
        );
        assert_same(&what, &qemu_raw(&img, &dir), &model);
        // qemu-img map: compressed data has no plain host offset.
        let map = qemu_img(&["map", "--output=json", s(&img)]);
        assert!(
            map.lines()
                .any(|l| l.contains("\"data\": true") && !l.contains("\"offset\"")),
            "{what}: {map}"
        );

        if cs as u64 * 26 > size {
            continue;
        }
        // Overwrites: plain writes over compressed clusters, compressed over compressed and
        // over plain, a snapshot sharing streams; every freed stream is accounted for.
        let mut rng = Rng(cs as u64 + 1);
        {
            let mut d = open(&img, OpenOptions::default()).unwrap();
            let mut buf = vec![0u8; 3 * cs as usize + 100];
            rng.fill(&mut buf);
            d.write_at(cs as u64 / 2, &buf).unwrap();
            let o = cs as usize / 2;
            model[o..o + buf.len()].copy_from_slice(&buf);
            if version == 3 {
                d.snapshot_create("s").unwrap();
            }
            let again = mixed_data(4 * cs as usize, cs as usize, 99);
            d.write_compressed(0, &again).unwrap();
            model[..again.len()].copy_from_slice(&again);
            let at = 10 * cs as usize;
            d.write_compressed(at as u64, &again[..cs as usize])
                .unwrap();
            model[at..at + cs as usize].copy_from_slice(&again[..cs as usize]);
            if version == 3 {
                d.snapshot_delete("s").unwrap();
            }
            d.write_zeroes(20 * cs as u64, 5 * cs as u64).unwrap();
            model[20 * cs as usize..25 * cs as usize].fill(0);
            assert_same(&what, &read_all(d.as_mut()), &model);
        }
        let (code, out) = qemu_check(&img);
        assert_eq!(code, 0, "{what} after overwrites: {out}");
        assert_same(&what, &qemu_raw(&img, &dir), &model);
    }
}

#[test]
fn raw_has_no_compressed_writes() {
    let dir = TempDir::new("craw");
    let img = dir.join("r.raw");
    std::fs::write(&img, vec![0u8; 65536]).unwrap();
    let mut d = open(&img, OpenOptions::default()).unwrap();
    assert_eq!(d.compression_unit(), None);
    assert!(d.write_compressed(0, &[0u8; 65536]).is_err());
}
