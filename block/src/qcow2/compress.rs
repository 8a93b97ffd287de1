//! Compressed cluster writes (qemu-img convert -c; QEMU's qcow2_co_pwritev_compressed and
//! qcow2_alloc_bytes).
//!
//! A cluster is deflated as a raw stream (no zlib header, as QEMU writes it); one that does
//! not shrink below the cluster size is written plainly. Compressed streams are packed end to
//! end into host clusters: every host cluster a stream touches gets one reference from it, so
//! a host cluster's refcount is the number of streams in it and it is freed with the last.
//! The L2 entry holds the stream's host byte offset and its length as a count of 512-byte
//! sectors beyond the first (qcow2.txt, "Compressed Clusters Descriptor").
//!
//! Warts: QEMU deflates with a 4 KiB window and inflates the whole cluster in one call; the
//! pure-Rust deflater uses a 32 KiB window, which such an inflate accepts because back
//! references within one call are served from its own output (the interop tests check it).

use super::{Mapping, Qcow2, COMPRESSED};
use crate::{check_range, BlockError};

/// Raw-deflates `data`; `None` unless the stream is shorter than `data`.
fn deflate(data: &[u8]) -> Option<Vec<u8>> {
    let mut c = flate2::Compress::new(flate2::Compression::default(), false);
    let mut out = vec![0u8; data.len().saturating_sub(1)];
    match c.compress(data, &mut out, flate2::FlushCompress::Finish) {
        Ok(flate2::Status::StreamEnd) => {
            out.truncate(c.total_out() as usize);
            Some(out)
        }
        _ => None,
    }
}

impl Qcow2 {
    pub(super) fn write_compressed_impl(
        &mut self,
        offset: u64,
        data: &[u8],
    ) -> Result<(), BlockError> {
        check_range(self.h.size, offset, data.len() as u64)?;
        self.check_writable()?;
        let cs = self.cs;
        let end = offset + data.len() as u64;
        if !offset.is_multiple_of(cs) || !(end.is_multiple_of(cs) || end == self.h.size) {
            return Err(BlockError::InvalidArgument(format!(
                "compressed writes cover whole {cs}-byte clusters (offset {offset:#x}, {} bytes)",
                data.len()
            )));
        }
        for (i, chunk) in data.chunks(cs as usize).enumerate() {
            let off = offset + i as u64 * cs;
            let mut cluster = chunk.to_vec();
            // The disk's last cluster may be partial: it is compressed zero-padded.
            cluster.resize(cs as usize, 0);
            match deflate(&cluster) {
                Some(z) => self.put_compressed(off / cs, &z)?,
                None => self.write_impl(off, chunk)?,
            }
        }
        Ok(())
    }

    /// Stores the deflate stream `z` as guest cluster `gc`.
    fn put_compressed(&mut self, gc: u64, z: &[u8]) -> Result<(), BlockError> {
        let cs = self.cs;
        let len = z.len() as u64;
        // Refcounts first, then the data, then the reference.
        // A partly used host cluster is shared only while its refcount can count one more
        // stream (with 1-bit refcounts never: each stream then starts a cluster, as in QEMU).
        let max = u64::MAX >> (64 - (1u32 << self.h.refcount_order));
        let mut tail = self.free_byte_offset.filter(|o| !o.is_multiple_of(cs));
        if let Some(o) = tail {
            if self.refcount(o / cs)? >= max {
                tail = None;
            }
        }
        let host = match tail {
            Some(o) if len <= cs - o % cs => {
                self.adjust_refcount(o / cs, 1)?;
                o
            }
            Some(o) if self.spill_cluster_free(o / cs + 1)? => {
                // Continue into the next cluster: written (so it is inside the file) before
                // its refcount is raised from zero.
                self.file.write_at(o, z)?;
                self.adjust_refcount(o / cs, 1)?;
                self.adjust_refcount(o / cs + 1, 1)?;
                o
            }
            _ => self.alloc_clusters(1)?,
        };
        self.file.write_at(host, z)?;
        self.free_byte_offset = Some(host + len);
        self.decompressed = None;
        let sectors = ((host + len - 1) >> 9) - (host >> 9);
        let entry = COMPRESSED | (sectors << self.csize_shift) | host;
        let l2 = self.l2_for_write((gc >> self.l2_bits) as usize)?;
        let idx = gc & (self.l2_entries() - 1);
        let old = self.l2_get(l2, idx)?;
        let old = self.classify(old)?;
        self.l2_set(l2, idx, entry)?;
        if old != Mapping::Unallocated {
            self.release(old)?;
        }
        Ok(())
    }

    /// Whether host cluster `c` is free to continue a stream into.
    fn spill_cluster_free(&mut self, c: u64) -> Result<bool, BlockError> {
        Ok(self.refcount(c)? == 0 && self.metadata_overlap(c * self.cs, self.cs).is_none())
    }
}
