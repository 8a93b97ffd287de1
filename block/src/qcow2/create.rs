//! Creating qcow2 images (qemu-img create -f qcow2): header (v2 or v3), refcount table and
//! blocks counting the metadata, and an empty L1 table sized for the disk.

use std::io::Write;
use std::path::Path;

use super::header::{self, Header};
use crate::registry::{open_in_chain, OpenOptions};
use crate::{BlockError, CreateOptions};

/// Creates a qcow2 image at `path` (replacing any file there).
pub fn create(path: &Path, o: &CreateOptions) -> Result<(), BlockError> {
    let arg = |s: String| Err(BlockError::InvalidArgument(s));
    let cs = o.cluster_size as u64;
    if !cs.is_power_of_two() || !(512..=2 << 20).contains(&cs) {
        return arg(format!(
            "cluster size {cs} must be a power of two from 512 to 2097152"
        ));
    }
    if o.version != 2 && o.version != 3 {
        return arg(format!(
            "qcow2 version {} (compat) must be 2 or 3",
            o.version
        ));
    }
    if !o.refcount_bits.is_power_of_two() || o.refcount_bits > 64 {
        return arg(format!(
            "refcount_bits {} must be a power of two up to 64",
            o.refcount_bits
        ));
    }
    if o.version == 2 && (o.refcount_bits != 16 || o.lazy_refcounts) {
        return arg("version 2 images have 16-bit refcounts and no lazy refcounts".into());
    }
    if o.backing_fmt.is_some() && o.backing_file.is_none() {
        return arg("backing_fmt without backing_file".into());
    }
    // The backing file must open (its chain too); it gives the size when none is given.
    let mut size = o.size;
    if let Some(name) = &o.backing_file {
        let bpath = crate::backing::resolve(path, name);
        let opts = OpenOptions {
            format: o.backing_fmt.clone(),
            read_only: true,
            ..Default::default()
        };
        let mut chain = Vec::new();
        if let Ok(me) = std::fs::canonicalize(path) {
            chain.push(me);
        }
        let b = open_in_chain(&bpath, &opts, &mut chain).map_err(|e| BlockError::Backing {
            path: path.display().to_string(),
            backing: name.clone(),
            cause: e.to_string(),
        })?;
        size = Some(size.unwrap_or(b.size()));
    }
    let Some(size) = size else {
        return arg("a qcow2 image needs a size or a backing file".into());
    };
    let cluster_bits = cs.trailing_zeros();
    let l1_entries = header::l1_entries_for(size, cluster_bits);
    if size > i64::MAX as u64 || l1_entries * 8 > header::MAX_L1_BYTES {
        return arg(format!("size {size} is too large for {cs}-byte clusters"));
    }
    let l1_clusters = (l1_entries * 8).div_ceil(cs);
    let per = cs * 8 / o.refcount_bits as u64;
    let (mut rt, mut rb) = (1u64, 1u64);
    loop {
        let total = 1 + rt + rb + l1_clusters;
        let nrb = total.div_ceil(per);
        let nrt = (nrb * 8).div_ceil(cs);
        if (nrb, nrt) == (rb, rt) {
            break;
        }
        (rb, rt) = (nrb.max(rb), nrt.max(rt));
    }
    let total = 1 + rt + rb + l1_clusters;
    let h = Header {
        version: o.version,
        cluster_bits,
        size,
        l1_size: l1_entries as u32,
        l1_table_offset: if l1_entries > 0 {
            (1 + rt + rb) * cs
        } else {
            0
        },
        refcount_table_offset: cs,
        refcount_table_clusters: rt as u32,
        compatible: if o.lazy_refcounts {
            header::COMPAT_LAZY_REFCOUNTS
        } else {
            0
        },
        refcount_order: o.refcount_bits.trailing_zeros(),
        backing_file: o.backing_file.clone(),
        backing_fmt: o.backing_fmt.clone(),
        ..Default::default()
    };
    let Some(head) = h.serialize() else {
        return arg("the backing file's name does not fit in the header cluster".into());
    };
    let mut image = head;
    let mut table = vec![0u8; (rt * cs) as usize];
    for k in 0..rb {
        let off = (1 + rt + k) * cs;
        table[(k * 8) as usize..(k * 8 + 8) as usize].copy_from_slice(&off.to_be_bytes());
    }
    image.extend_from_slice(&table);
    let mut blocks = vec![0u8; (rb * cs) as usize];
    for c in 0..total {
        let (b, i) = (c / per, c % per);
        let block = &mut blocks[(b * cs) as usize..((b + 1) * cs) as usize];
        super::refcount::set_entry(block, i, h.refcount_order, 1);
    }
    image.extend_from_slice(&blocks);
    image.resize((total * cs) as usize, 0);
    let mut f = std::fs::File::create(path).map_err(|e| BlockError::io(path, e))?;
    f.write_all(&image).map_err(|e| BlockError::io(path, e))?;
    f.sync_all().map_err(|e| BlockError::io(path, e))
}
