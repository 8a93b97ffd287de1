//! Refcounts and cluster allocation (qcow2.txt, "Host cluster management"; QEMU's
//! qcow2-refcount.c).
//!
//! A refcount table points to refcount blocks; a block holds `cluster_size * 8 / refcount_bits`
//! entries, each `refcount_bits` wide (1 to 64): below a byte packed least significant bits
//! first, from a byte on big-endian. A cluster's refcount is the number of references to it
//! from the header's tables, L1 tables (active and snapshots) and L2 tables.
//!
//! Allocation keeps one invariant: a group of clusters with no refcount block is entirely free.
//! So a new refcount block is put inside the group it describes (it counts itself), and only
//! the table's growth needs the self-contained layout QEMU uses (new table and blocks together
//! past the end of the image). Without lazy refcounts every update is written through, before
//! the reference to the cluster is; with them, updates stay in the cache until a flush and the
//! dirty bit covers the gap.

use std::ops::Range;

use super::{header, Qcow2, REFT_OFFSET_MASK};
use crate::BlockError;

/// Reads entry `i` of a refcount block of `1 << order`-bit entries.
pub(super) fn get_entry(block: &[u8], i: u64, order: u32) -> u64 {
    let i = i as usize;
    match order {
        0..=2 => {
            let bits = 1usize << order;
            let per_byte = 8 / bits;
            let shift = (i % per_byte) * bits;
            ((block[i / per_byte] >> shift) as u64) & ((1u64 << bits) - 1)
        }
        3 => block[i] as u64,
        4 => u16::from_be_bytes([block[2 * i], block[2 * i + 1]]) as u64,
        5 => {
            let mut a = [0u8; 4];
            a.copy_from_slice(&block[4 * i..4 * i + 4]);
            u32::from_be_bytes(a) as u64
        }
        _ => {
            let mut a = [0u8; 8];
            a.copy_from_slice(&block[8 * i..8 * i + 8]);
            u64::from_be_bytes(a)
        }
    }
}

/// Writes entry `i` of a refcount block; returns the byte range that changed.
pub(super) fn set_entry(block: &mut [u8], i: u64, order: u32, v: u64) -> Range<usize> {
    let i = i as usize;
    match order {
        0..=2 => {
            let bits = 1usize << order;
            let per_byte = 8 / bits;
            let shift = (i % per_byte) * bits;
            let mask = (((1u16 << bits) - 1) as u8) << shift;
            let b = &mut block[i / per_byte];
            *b = (*b & !mask) | (((v as u8) << shift) & mask);
            i / per_byte..i / per_byte + 1
        }
        3 => {
            block[i] = v as u8;
            i..i + 1
        }
        4 => {
            block[2 * i..2 * i + 2].copy_from_slice(&(v as u16).to_be_bytes());
            2 * i..2 * i + 2
        }
        5 => {
            block[4 * i..4 * i + 4].copy_from_slice(&(v as u32).to_be_bytes());
            4 * i..4 * i + 4
        }
        _ => {
            block[8 * i..8 * i + 8].copy_from_slice(&v.to_be_bytes());
            8 * i..8 * i + 8
        }
    }
}

fn in_excl(excl: &[Range<u64>], c: u64) -> Option<u64> {
    excl.iter().find(|r| r.contains(&c)).map(|r| r.end)
}

impl Qcow2 {
    /// Refcount entries per block.
    pub(super) fn rc_per_block(&self) -> u64 {
        self.cs * 8 / (1u64 << self.h.refcount_order)
    }

    /// The largest refcount the image's width holds.
    pub(super) fn rc_max(&self) -> u64 {
        match self.h.refcount_order {
            6 => u64::MAX,
            o => (1u64 << (1u32 << o)) - 1,
        }
    }

    /// The refcount block offset for group `g`, 0 if none.
    fn rc_block_of(&self, g: u64) -> u64 {
        self.rc_table
            .get(g as usize)
            .map_or(0, |e| e & REFT_OFFSET_MASK)
    }

    fn rc_cache_insert(&mut self, off: u64, data: Vec<u8>) -> Result<(), BlockError> {
        if let Some((o, d)) = self.rc_cache.insert(off, data) {
            self.file.write_at(o, &d)?;
        }
        Ok(())
    }

    fn rc_block_load(&mut self, off: u64) -> Result<(), BlockError> {
        if self.rc_cache.get(off).is_some() {
            return Ok(());
        }
        let mut b = vec![0u8; self.cs as usize];
        self.file.read_at(off, &mut b)?;
        self.rc_cache_insert(off, b)
    }

    /// The refcount of cluster index `c` (0 where no block covers it).
    pub(super) fn refcount(&mut self, c: u64) -> Result<u64, BlockError> {
        let per = self.rc_per_block();
        let boff = self.rc_block_of(c / per);
        if boff == 0 {
            return Ok(0);
        }
        self.rc_block_load(boff)?;
        let order = self.h.refcount_order;
        let b = self
            .rc_cache
            .get(boff)
            .ok_or_else(|| BlockError::corrupt(&self.path, "refcount cache lost a block"))?;
        Ok(get_entry(b, c % per, order))
    }

    /// Sets the refcount of cluster `c`, whose group must have a block.
    fn set_refcount_raw(&mut self, c: u64, v: u64) -> Result<(), BlockError> {
        let per = self.rc_per_block();
        let boff = self.rc_block_of(c / per);
        if boff == 0 {
            return Err(self.corrupt(format!("no refcount block for cluster {c}")));
        }
        if self.lazy {
            self.mark_dirty()?;
        }
        self.rc_block_load(boff)?;
        let order = self.h.refcount_order;
        let b = self
            .rc_cache
            .get(boff)
            .ok_or_else(|| BlockError::corrupt(&self.path, "refcount cache lost a block"))?;
        let range = set_entry(b, c % per, order, v);
        if self.lazy {
            self.rc_cache.mark_dirty(boff);
            Ok(())
        } else {
            let bytes = b[range.clone()].to_vec();
            self.file.write_at(boff + range.start as u64, &bytes)
        }
    }

    /// Adds `delta` to the refcount of cluster `c`; a cluster reaching zero is free again.
    pub(super) fn adjust_refcount(&mut self, c: u64, delta: i64) -> Result<u64, BlockError> {
        if delta > 0 && c.saturating_mul(self.cs) >= self.file.len()? {
            // A reference to a cluster past the end of the file comes from damaged tables;
            // counting it would grow the refcount structure out to there.
            return Err(self.corrupt(format!(
                "cluster at {:#x} is beyond the end of the file",
                c * self.cs
            )));
        }
        let old = self.refcount(c)?;
        let new = if delta >= 0 {
            old.checked_add(delta as u64)
                .filter(|v| *v <= self.rc_max())
                .ok_or_else(|| BlockError::RefcountOverflow {
                    path: self.path.display().to_string(),
                    offset: c * self.cs,
                    bits: 1 << self.h.refcount_order,
                })?
        } else {
            old.checked_sub(delta.unsigned_abs()).ok_or_else(|| {
                self.corrupt(format!(
                    "refcount of cluster at {:#x} would drop below zero",
                    c * self.cs
                ))
            })?
        };
        if self.rc_block_of(c / self.rc_per_block()) == 0 {
            let mut excl = vec![Range {
                start: c,
                end: c + 1,
            }];
            self.ensure_refblock(c / self.rc_per_block(), &mut excl)?;
        }
        self.set_refcount_raw(c, new)?;
        if new == 0 {
            let off = c * self.cs;
            self.l2_cache.remove(off);
            if self
                .decompressed
                .as_ref()
                .is_some_and(|(o, _)| o / self.cs == c)
            {
                self.decompressed = None;
            }
            self.free_hint = self.free_hint.min(c);
            if self.free_byte_offset.is_some_and(|o| o / self.cs == c) {
                self.free_byte_offset = None;
            }
        }
        Ok(new)
    }

    /// Decrements the refcount of every cluster touching `[off, off + len)`.
    pub(super) fn free_bytes(&mut self, off: u64, len: u64) -> Result<(), BlockError> {
        if len == 0 {
            return Ok(());
        }
        for c in off / self.cs..=(off + len - 1) / self.cs {
            self.adjust_refcount(c, -1)?;
        }
        Ok(())
    }

    /// Finds `n` free contiguous clusters from cluster `from`, skipping `excl`.
    fn find_free_run(&mut self, n: u64, from: u64, excl: &[Range<u64>]) -> Result<u64, BlockError> {
        let limit = (1u64 << 56) / self.cs;
        let mut c = from.max(1);
        let mut start = c;
        let mut len = 0;
        while len < n {
            if c >= limit {
                return Err(self.corrupt("no free clusters left (the image is full)"));
            }
            if let Some(end) = in_excl(excl, c) {
                c = end;
                len = 0;
                continue;
            }
            // A cluster is free if nothing counts it and it is no known metadata (a hostile
            // image's refcounts may be missing for its own tables).
            if self.refcount(c)? == 0 && self.metadata_overlap(c * self.cs, self.cs).is_none() {
                if len == 0 {
                    start = c;
                }
                len += 1;
            } else {
                len = 0;
            }
            c += 1;
        }
        Ok(start)
    }

    /// Allocates `n` contiguous clusters (refcount 1); returns the byte offset of the first.
    pub(super) fn alloc_clusters(&mut self, n: u64) -> Result<u64, BlockError> {
        let start = self.find_free_run(n, self.free_hint, &[])?;
        let mut excl = vec![Range {
            start,
            end: start + n,
        }];
        let per = self.rc_per_block();
        for g in start / per..=(start + n - 1) / per {
            self.ensure_refblock(g, &mut excl)?;
        }
        for c in start..start + n {
            self.set_refcount_raw(c, 1)?;
        }
        if self.free_hint >= start || n == 1 {
            self.free_hint = self.free_hint.max(start + n);
        }
        Ok(start * self.cs)
    }

    pub(super) fn set_reftable_entry(&mut self, g: u64, v: u64) -> Result<(), BlockError> {
        self.rc_table[g as usize] = v;
        self.file
            .write_at(self.h.refcount_table_offset + g * 8, &v.to_be_bytes())
    }

    /// Makes sure group `g` has a refcount block, keeping clear of the clusters in `excl`
    /// (being allocated, refcounts not yet set).
    fn ensure_refblock(&mut self, g: u64, excl: &mut Vec<Range<u64>>) -> Result<(), BlockError> {
        if g as usize >= self.rc_table.len() {
            self.grow_refcount_table(g + 1, excl)?;
        }
        if self.rc_block_of(g) != 0 {
            return Ok(());
        }
        let per = self.rc_per_block();
        let order = self.h.refcount_order;
        // The whole group is free: put the block in it, counting itself.
        let mut b = g * per;
        while b < (g + 1) * per {
            match in_excl(excl, b) {
                Some(end) => b = end,
                None if self.metadata_overlap(b * self.cs, self.cs).is_some() => b += 1,
                None => break,
            }
        }
        let mut block = vec![0u8; self.cs as usize];
        if b < (g + 1) * per {
            set_entry(&mut block, b - g * per, order, 1);
            self.file.write_at(b * self.cs, &block)?;
            self.rc_cache_insert(b * self.cs, block)?;
            self.refblocks.insert(b * self.cs);
            return self.set_reftable_entry(g, b * self.cs);
        }
        // The group is all being allocated: the block goes elsewhere, counted there.
        let b = self.find_free_run(1, (g + 1) * per, excl)?;
        excl.push(b..b + 1);
        self.ensure_refblock(b / per, excl)?;
        self.file.write_at(b * self.cs, &block)?;
        self.rc_cache_insert(b * self.cs, block)?;
        self.refblocks.insert(b * self.cs);
        self.set_reftable_entry(g, b * self.cs)?;
        self.set_refcount_raw(b, 1)
    }

    /// Replaces the refcount table with one of at least `min_entries` entries, placed with the
    /// refcount blocks describing it past everything in use.
    fn grow_refcount_table(
        &mut self,
        min_entries: u64,
        excl: &[Range<u64>],
    ) -> Result<(), BlockError> {
        let cs = self.cs;
        let per = self.rc_per_block();
        let per_cluster = cs / 8;
        let old_len = self.rc_table.len() as u64;
        let mut entries = min_entries
            .max(old_len + old_len / 2 + 1)
            .div_ceil(per_cluster)
            * per_cluster;
        let file_end = self.file.len()?.div_ceil(cs);
        let mut from = excl.iter().map(|r| r.end).fold(file_end, u64::max);
        let (start, tc, lacking) = loop {
            let tc = entries * 8 / cs;
            let start = self.find_free_run(tc, from, excl)?;
            let mut lacking: Vec<u64> = Vec::new();
            loop {
                let end = start + tc + lacking.len() as u64;
                let now: Vec<u64> = (start / per..=(end - 1) / per)
                    .filter(|g| self.rc_block_of(*g) == 0)
                    .collect();
                if now.len() == lacking.len() {
                    break;
                }
                lacking = now;
            }
            let total = tc + lacking.len() as u64;
            if self.find_free_run(total, start, excl)? != start {
                from = start + 1;
                continue;
            }
            let last_group = (start + total - 1) / per;
            if last_group + 1 > entries {
                entries = (last_group + 1).div_ceil(per_cluster) * per_cluster;
                continue;
            }
            break (start, tc, lacking);
        };
        if entries * 8 > header::MAX_REFTABLE_BYTES {
            return Err(self.corrupt("refcount table would exceed 8 MiB (the image is too large)"));
        }
        let end = start + tc + lacking.len() as u64;
        let mut table = self.rc_table.clone();
        table.resize(entries as usize, 0);
        let order = self.h.refcount_order;
        for (k, g) in lacking.iter().enumerate() {
            let b = start + tc + k as u64;
            let mut block = vec![0u8; cs as usize];
            for c in (start..end).filter(|c| c / per == *g) {
                set_entry(&mut block, c - g * per, order, 1);
            }
            self.file.write_at(b * cs, &block)?;
            self.rc_cache_insert(b * cs, block)?;
            self.refblocks.insert(b * cs);
            table[*g as usize] = b * cs;
        }
        for c in (start..end).filter(|c| !lacking.contains(&(c / per))) {
            self.set_refcount_raw(c, 1)?;
        }
        let mut raw: Vec<u8> = table.iter().flat_map(|e| e.to_be_bytes()).collect();
        raw.resize((tc * cs) as usize, 0);
        self.file.write_at(start * cs, &raw)?;
        self.flush_refcounts()?;
        self.file.flush()?;
        let mut hdr = [0u8; 12];
        hdr[..8].copy_from_slice(&(start * cs).to_be_bytes());
        hdr[8..].copy_from_slice(&(tc as u32).to_be_bytes());
        self.file.write_at(header::OFF_REFTABLE, &hdr)?;
        let old_off = self.h.refcount_table_offset;
        let old_tc = self.h.refcount_table_clusters as u64;
        self.h.refcount_table_offset = start * cs;
        self.h.refcount_table_clusters = tc as u32;
        self.rc_table = table;
        for r in self
            .fixed
            .iter_mut()
            .filter(|r| r.what == "the refcount table")
        {
            r.start = start * cs;
            r.end = (start + tc) * cs;
        }
        self.fixed.sort_by_key(|r| r.start);
        for c in old_off / cs..old_off / cs + old_tc {
            self.adjust_refcount(c, -1)?;
        }
        Ok(())
    }

    /// Writes every deferred refcount update.
    pub(super) fn flush_refcounts(&mut self) -> Result<(), BlockError> {
        for (off, data) in self.rc_cache.take_dirty() {
            self.file.write_at(off, &data)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_of_every_width_round_trip() {
        for order in 0..=6u32 {
            let bits = 1u32 << order;
            let max = if bits == 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            let mut block = vec![0u8; 512];
            let n = 512 * 8 / bits as u64;
            for i in 0..n {
                set_entry(&mut block, i, order, (i * 7 + 3) & max);
            }
            for i in 0..n {
                assert_eq!(
                    get_entry(&block, i, order),
                    (i * 7 + 3) & max,
                    "order {order} entry {i}"
                );
            }
        }
        // Sub-byte entries are packed least significant bits first, as QEMU packs them.
        let mut block = vec![0u8; 1];
        set_entry(&mut block, 0, 0, 1);
        set_entry(&mut block, 3, 0, 1);
        assert_eq!(block[0], 0b1001);
    }
}
