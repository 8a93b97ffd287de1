//! Resizing (qemu-img resize; QEMU's qcow2_co_truncate).
//!
//! Growing enlarges the L1 table when the new size needs more entries (in place when its
//! clusters have room, else copied to new clusters that the header then points to, the old
//! ones freed), then makes the new area read as zeroes: the tail of a partial last cluster and
//! whatever a longer backing file would show through are zeroed, as QEMU does since 5.1.
//!
//! Shrinking has `qemu-img resize --shrink` semantics: every cluster wholly beyond the new end
//! is freed (L2 tables wholly beyond it are dropped from the L1 table), the L1 table keeps its
//! size, and the file is truncated after its last cluster in use. The partial cluster at the
//! new end keeps its bytes beyond the end; a later grow zeroes them.
//!
//! Sizes must be multiples of 512, as QEMU requires. Snapshots keep their own disk size.

use super::{header, Mapping, Qcow2, Region, COPIED, REFT_OFFSET_MASK};
use crate::BlockError;

impl Qcow2 {
    pub(super) fn resize_impl(&mut self, new_size: u64) -> Result<(), BlockError> {
        self.check_writable()?;
        if !new_size.is_multiple_of(512) {
            return Err(BlockError::InvalidArgument(format!(
                "size {new_size} is not a multiple of 512"
            )));
        }
        let need = header::l1_entries_for(new_size, self.cluster_bits());
        if new_size > i64::MAX as u64 || need * 8 > header::MAX_L1_BYTES {
            return Err(BlockError::InvalidArgument(format!(
                "size {new_size} is too large for {}-byte clusters",
                self.cs
            )));
        }
        let old = self.h.size;
        if new_size > old {
            if need > self.l1.len() as u64 {
                self.grow_l1(need)?;
            }
            self.set_size(new_size)?;
            self.zero_grown(old, new_size)?;
        } else if new_size < old {
            self.shrink(old, new_size)?;
        }
        self.flush_refcounts()?;
        self.file.flush()
    }

    /// Writes the virtual size into the header.
    fn set_size(&mut self, size: u64) -> Result<(), BlockError> {
        self.file.write_at(24, &size.to_be_bytes())?;
        self.h.size = size;
        Ok(())
    }

    /// Makes the L1 table `need` entries long.
    fn grow_l1(&mut self, need: u64) -> Result<(), BlockError> {
        let cs = self.cs;
        let old_len = self.l1.len() as u64;
        let old_off = self.h.l1_table_offset;
        let room = (old_len * 8).div_ceil(cs) * cs;
        if old_len > 0 && need * 8 <= room {
            // The table's last cluster has room: the new entries (whatever the cluster held
            // there) are zeroed before the header admits them.
            let zeroes = vec![0u8; ((need - old_len) * 8) as usize];
            self.file.write_at(old_off + old_len * 8, &zeroes)?;
            self.file.flush()?;
            self.file.write_at(36, &(need as u32).to_be_bytes())?;
        } else {
            let clusters = (need * 8).div_ceil(cs);
            let new_off = self.alloc_clusters(clusters)?;
            let mut raw = super::u64s_to_bytes(&self.l1);
            raw.resize((clusters * cs) as usize, 0);
            self.file.write_at(new_off, &raw)?;
            self.flush_refcounts()?;
            self.file.flush()?;
            let mut hdr = [0u8; 12];
            hdr[..4].copy_from_slice(&(need as u32).to_be_bytes());
            hdr[4..].copy_from_slice(&new_off.to_be_bytes());
            self.file.write_at(36, &hdr)?;
            self.file.flush()?;
            self.h.l1_table_offset = new_off;
            self.fixed.retain(|r| r.what != "the L1 table");
            self.fixed.push(Region {
                start: new_off,
                end: new_off + clusters * cs,
                what: "the L1 table".into(),
            });
            self.fixed.sort_by_key(|r| r.start);
            if old_len > 0 {
                self.free_bytes(old_off, old_len * 8)?;
            }
        }
        self.l1.resize(need as usize, 0);
        self.h.l1_size = need as u32;
        Ok(())
    }

    /// Makes `[old, new)` read as zeroes after a grow.
    fn zero_grown(&mut self, old: u64, new: u64) -> Result<(), BlockError> {
        let cs = self.cs;
        let backing_size = self.backing.as_ref().map_or(0, |b| b.size());
        let aligned = old.div_ceil(cs) * cs;
        if aligned > old {
            // The old last cluster may hold bytes past the old end (from a shrink), or let a
            // longer backing file show through.
            let stale = match self.lookup(old / cs)? {
                Mapping::Zero => false,
                Mapping::Unallocated => backing_size > old,
                _ => true,
            };
            if stale {
                let end = aligned.min(new);
                self.write_impl(old, &vec![0u8; (end - old) as usize])?;
            }
        }
        let end = new.min(backing_size);
        if end > aligned {
            self.zero_range(aligned, end - aligned, false)?;
        }
        Ok(())
    }

    /// Drops everything beyond `new` (`--shrink`) and truncates the file.
    fn shrink(&mut self, old: u64, new: u64) -> Result<(), BlockError> {
        let cs = self.cs;
        let cover = cs << self.l2_bits;
        let first = new.div_ceil(cs);
        let end = old.div_ceil(cs);
        // L2 tables wholly beyond the new end go with everything they reference.
        let first_l1 = new.div_ceil(cover) as usize;
        for i in first_l1..self.l1.len() {
            let e = self.l1[i];
            if self.l1_entry_table(e)? == 0 {
                continue;
            }
            self.update_tree(vec![e & !COPIED], -1)?;
            self.set_l1(i, 0)?;
        }
        // The clusters of the boundary table beyond the new end.
        let mut gc = first;
        while gc < end.min(first_l1 as u64 * (cover / cs)) {
            let l1i = (gc >> self.l2_bits) as usize;
            let cur = self.lookup(gc)?;
            if !matches!(cur, Mapping::Unallocated) {
                let l2 = self.l2_for_write(l1i)?;
                self.l2_set(l2, gc & (self.l2_entries() - 1), 0)?;
                self.release(cur)?;
            }
            gc += 1;
        }
        self.set_size(new)?;
        self.decompressed = None;
        self.flush_refcounts()?;
        self.drop_empty_refblocks()?;
        self.flush_refcounts()?;
        self.file.flush()?;
        self.truncate_to_last_used()
    }

    /// Drops the refcount blocks at the end of the table that count nothing but themselves
    /// (QEMU's qcow2_shrink_reftable), so the file can be truncated before them.
    fn drop_empty_refblocks(&mut self) -> Result<(), BlockError> {
        let cs = self.cs;
        let per = self.rc_per_block();
        for g in (0..self.rc_table.len() as u64).rev() {
            let b = self.rc_table[g as usize] & REFT_OFFSET_MASK;
            if b == 0 {
                continue;
            }
            let own = (b / cs / per == g).then_some(b / cs);
            let used = (g * per..(g + 1) * per).try_fold(false, |used, c| {
                Ok::<bool, BlockError>(used || (Some(c) != own && self.refcount(c)? != 0))
            })?;
            if used
                || self
                    .metadata_overlap(g * per * cs, per * cs)
                    .is_some_and(|w| {
                        // Fixed metadata with a missing refcount (a damaged image): keep the block.
                        !w.starts_with("a refcount block")
                    })
            {
                return Ok(());
            }
            self.set_reftable_entry(g, 0)?;
            self.refblocks.remove(&b);
            self.rc_cache.remove(b);
            if own.is_none() {
                self.adjust_refcount(b / cs, -1)?;
            }
        }
        Ok(())
    }

    /// Cuts the file after its last cluster with a reference (or known metadata).
    fn truncate_to_last_used(&mut self) -> Result<(), BlockError> {
        let cs = self.cs;
        let len = self.file.len()?;
        let mut c = len.div_ceil(cs);
        while c > 1
            && self.refcount(c - 1)? == 0
            && self.metadata_overlap((c - 1) * cs, cs).is_none()
        {
            c -= 1;
        }
        if c * cs < len {
            self.file.set_len(c * cs)?;
            self.free_hint = self.free_hint.min(c);
        }
        Ok(())
    }
}
