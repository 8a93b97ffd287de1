//! `qemu-img check` for qcow2 (QEMU's qcow2-refcount.c, qcow2_check_refcounts): count every
//! reference from the header, the L1 tables (active and snapshots), their L2 tables, the
//! snapshot table and the refcount structures, compare with the stored refcounts, and report
//! corruptions (stored lower than referenced, wrong COPIED flags, tables outside the file) and
//! leaks (stored higher). Repair fixes leaks in place; fixing corruptions rebuilds the whole
//! refcount structure past the end of the image and switches the header to it, as QEMU's
//! rebuild_refcount_structure does. The same rebuild runs when a dirty image is opened.

use super::header::INCOMPAT_CORRUPT;
use super::{
    bytes_to_u64s, header, Mapping, Qcow2, COMPRESSED, COPIED, L1E_OFFSET_MASK, REFT_OFFSET_MASK,
};
use crate::{BlockError, CheckReport, Repair};

/// References counted per host cluster.
struct Refs {
    /// u32 (saturating) to halve the memory of a check: one entry per cluster of the file.
    counts: Vec<u32>,
    cs: u64,
}

impl Refs {
    /// Counts one reference to every cluster of `[off, off + len)`; a range beyond the file
    /// is a corruption.
    fn add(&mut self, rep: &mut CheckReport, off: u64, len: u64, what: &str) {
        if len == 0 {
            return;
        }
        let first = off / self.cs;
        let last = off.saturating_add(len - 1) / self.cs;
        if last >= self.counts.len() as u64 {
            rep.corruptions += 1;
            rep.messages.push(format!(
                "ERROR {what} at {off:#x} is beyond the end of the image"
            ));
            return;
        }
        for c in first..=last {
            self.counts[c as usize] = self.counts[c as usize].saturating_add(1);
        }
    }
}

impl Qcow2 {
    fn read_l2_direct(&mut self, off: u64) -> Result<Vec<u64>, BlockError> {
        let mut raw = vec![0u8; self.cs as usize];
        self.file.read_at(off, &mut raw)?;
        Ok(bytes_to_u64s(&raw))
    }

    /// Counts the references of one L1 tree; `active` also counts allocated guest clusters.
    fn count_tree(
        &mut self,
        refs: &mut Refs,
        rep: &mut CheckReport,
        l1: &[u64],
        active: bool,
    ) -> Result<(), BlockError> {
        let cs = self.cs;
        for (i, e) in l1.iter().enumerate() {
            let off = e & L1E_OFFSET_MASK;
            if off == 0 {
                continue;
            }
            if !off.is_multiple_of(cs) {
                rep.corruptions += 1;
                rep.messages.push(format!(
                    "ERROR L2 table offset {off:#x} of L1 entry {i} is not cluster aligned"
                ));
                continue;
            }
            let before = rep.corruptions;
            refs.add(rep, off, cs, "L2 table");
            if rep.corruptions != before {
                continue;
            }
            for (j, le) in self.read_l2_direct(off)?.into_iter().enumerate() {
                if le & COMPRESSED == 0 && !(le & super::L2E_OFFSET_MASK).is_multiple_of(cs) {
                    rep.corruptions += 1;
                    rep.messages.push(format!("ERROR offset {le:#x} in L2 table {off:#x} entry {j} is not cluster aligned"));
                    continue;
                }
                let m = match self.classify(le) {
                    Ok(m) => m,
                    Err(e) => {
                        rep.corruptions += 1;
                        rep.messages.push(format!("ERROR {e}"));
                        continue;
                    }
                };
                match m {
                    Mapping::Compressed { offset, len } => {
                        if active && le & COPIED != 0 {
                            rep.corruptions += 1;
                            rep.messages.push(format!(
                                "ERROR compressed cluster entry {le:#x} has the COPIED flag"
                            ));
                        }
                        refs.add(rep, offset, len, "compressed cluster");
                        if active {
                            rep.allocated_clusters += 1;
                        }
                    }
                    Mapping::Data(h) | Mapping::ZeroAlloc(h) => {
                        refs.add(rep, h, cs, "data cluster");
                        if active && matches!(m, Mapping::Data(_)) {
                            rep.allocated_clusters += 1;
                        }
                    }
                    Mapping::Zero | Mapping::Unallocated => {}
                }
            }
        }
        Ok(())
    }

    /// Counts every reference; `with_refcounts` includes the refcount table and blocks.
    fn count_refs(
        &mut self,
        rep: &mut CheckReport,
        with_refcounts: bool,
    ) -> Result<Refs, BlockError> {
        let cs = self.cs;
        let nclusters = self.file.len()?.div_ceil(cs);
        let mut refs = Refs {
            counts: vec![0; nclusters as usize],
            cs,
        };
        refs.add(rep, 0, cs, "header");
        refs.add(
            rep,
            self.h.l1_table_offset,
            self.l1.len() as u64 * 8,
            "L1 table",
        );
        let l1 = self.l1.clone();
        self.count_tree(&mut refs, rep, &l1, true)?;
        for i in 0..self.snapshots.len() {
            let (off, size) = (self.snapshots[i].l1_offset, self.snapshots[i].l1_size);
            refs.add(rep, off, size as u64 * 8, "snapshot L1 table");
            let mut raw = vec![0u8; size as usize * 8];
            self.file.read_at(off, &mut raw)?;
            self.count_tree(&mut refs, rep, &bytes_to_u64s(&raw), false)?;
        }
        if self.h.nb_snapshots > 0 {
            let len = super::snapshot::table_len(&self.snapshots);
            refs.add(rep, self.h.snapshots_offset, len, "snapshot table");
        }
        if with_refcounts {
            refs.add(
                rep,
                self.h.refcount_table_offset,
                self.h.refcount_table_clusters as u64 * cs,
                "refcount table",
            );
            for e in self.rc_table.clone() {
                let off = e & REFT_OFFSET_MASK;
                if off != 0 {
                    refs.add(rep, off, cs, "refcount block");
                }
            }
        }
        Ok(refs)
    }

    /// Compares the COPIED flags of the active tree with the references; fixes them if `fix`.
    fn check_copied(
        &mut self,
        refs: &Refs,
        rep: &mut CheckReport,
        fix: bool,
    ) -> Result<(), BlockError> {
        let cs = self.cs;
        let want = |refs: &Refs, off: u64| refs.counts.get((off / cs) as usize).copied() == Some(1);
        for i in 0..self.l1.len() {
            let e = self.l1[i];
            let off = e & L1E_OFFSET_MASK;
            if off == 0 || !off.is_multiple_of(cs) || off / cs >= refs.counts.len() as u64 {
                continue;
            }
            if (e & COPIED != 0) != want(refs, off) {
                rep.corruptions += 1;
                rep.messages.push(format!(
                    "ERROR OFLAG_COPIED L2 cluster: l1_index={i} l1_entry={e:x} refcount={}",
                    refs.counts[(off / cs) as usize]
                ));
                if fix {
                    self.set_l1(i, e ^ COPIED)?;
                    rep.corruptions -= 1;
                    rep.corruptions_fixed += 1;
                }
            }
            let mut table = self.read_l2_direct(off)?;
            let mut changed = false;
            for le in table.iter_mut() {
                let h = match self.classify(*le) {
                    Ok(Mapping::Data(h) | Mapping::ZeroAlloc(h)) => h,
                    _ => continue,
                };
                if h / cs >= refs.counts.len() as u64 {
                    continue;
                }
                if (*le & COPIED != 0) != want(refs, h) {
                    rep.corruptions += 1;
                    rep.messages.push(format!(
                        "ERROR OFLAG_COPIED data cluster: l2_entry={:x} refcount={}",
                        *le,
                        refs.counts[(h / cs) as usize]
                    ));
                    if fix {
                        *le ^= COPIED;
                        changed = true;
                        rep.corruptions -= 1;
                        rep.corruptions_fixed += 1;
                    }
                }
            }
            if changed {
                self.l2_write_all(off, &table)?;
            }
        }
        Ok(())
    }

    /// qemu-img check, with repairs as `repair` allows.
    pub(super) fn check_impl(&mut self, repair: Repair) -> Result<CheckReport, BlockError> {
        if repair != Repair::None {
            self.check_writable_for_repair()?;
        }
        self.flush_refcounts()?;
        let mut rep = CheckReport {
            total_clusters: self.h.size.div_ceil(self.cs),
            ..Default::default()
        };
        let refs = self.count_refs(&mut rep, true)?;
        let per = self.rc_per_block();
        let mut leaks = Vec::new();
        let mut low = 0u64;
        let max_c = (self.rc_table.len() as u64 * per).max(refs.counts.len() as u64);
        let mut c = 0u64;
        while c < max_c {
            let g = c / per;
            let has_block = self
                .rc_table
                .get(g as usize)
                .is_some_and(|e| e & REFT_OFFSET_MASK != 0);
            if !has_block && c >= refs.counts.len() as u64 {
                c = (g + 1) * per;
                continue;
            }
            let stored = if has_block { self.refcount(c)? } else { 0 };
            let counted = refs.counts.get(c as usize).copied().unwrap_or(0) as u64;
            if stored != counted {
                if stored < counted {
                    low += 1;
                    rep.corruptions += 1;
                    rep.messages.push(format!(
                        "ERROR cluster {c} refcount={stored} reference={counted}"
                    ));
                } else {
                    rep.leaks += 1;
                    rep.messages.push(format!(
                        "Leaked cluster {c} refcount={stored} reference={counted}"
                    ));
                    leaks.push((c, counted));
                }
            }
            c += 1;
        }
        let fix_errors = repair == Repair::All;
        if fix_errors && low > 0 {
            self.rebuild_refcounts()?;
            rep.corruptions -= low;
            rep.corruptions_fixed += low;
            rep.leaks_fixed += rep.leaks;
            rep.leaks = 0;
        } else if repair != Repair::None && !leaks.is_empty() {
            for (c, counted) in leaks {
                self.adjust_refcount_to(c, counted)?;
                rep.leaks -= 1;
                rep.leaks_fixed += 1;
            }
        }
        // COPIED flags are judged against the references, after any rebuild.
        let refs = if fix_errors && low > 0 {
            self.count_refs(&mut CheckReport::default(), true)?
        } else {
            refs
        };
        self.check_copied(&refs, &mut rep, fix_errors)?;
        if repair != Repair::None {
            self.flush_refcounts()?;
            self.file.flush()?;
            if rep.corruptions_fixed + rep.leaks_fixed > 0 {
                // Report what is left, as qemu-img does after repairing.
                let again = self.check_impl(Repair::None)?;
                rep.corruptions = again.corruptions;
                rep.leaks = again.leaks;
                rep.check_errors = again.check_errors;
                rep.messages.extend(again.messages);
            }
            if fix_errors && rep.corruptions == 0 && self.h.incompatible & INCOMPAT_CORRUPT != 0 {
                self.h.incompatible &= !INCOMPAT_CORRUPT;
                self.file
                    .write_at(header::OFF_INCOMPAT, &self.h.incompatible.to_be_bytes())?;
                self.file.flush()?;
            }
        }
        Ok(rep)
    }

    fn check_writable_for_repair(&self) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        Ok(())
    }

    /// Sets a stored refcount (its block exists) to `v`.
    fn adjust_refcount_to(&mut self, c: u64, v: u64) -> Result<(), BlockError> {
        let cur = self.refcount(c)?;
        if cur > v {
            self.adjust_refcount(c, -((cur - v) as i64))?;
        }
        Ok(())
    }

    /// Replaces the refcount structure with one computed from the references, written past
    /// the end of the file; the header switches to it in one write.
    pub(super) fn rebuild_refcounts(&mut self) -> Result<(), BlockError> {
        let cs = self.cs;
        let per = self.rc_per_block();
        let per_cluster = cs / 8;
        let mut scratch = CheckReport::default();
        let refs = self.count_refs(&mut scratch, false)?;
        let max = self.rc_max();
        let mut counts = refs.counts;
        let start = counts.len() as u64;
        let groups_with_refs: Vec<u64> = counts
            .chunks(per as usize)
            .enumerate()
            .filter(|(_, ch)| ch.iter().any(|v| *v != 0))
            .map(|(g, _)| g as u64)
            .collect();
        // Fixpoint: the new table and blocks must be counted in blocks of their own.
        let mut tc = 1u64;
        let mut groups;
        loop {
            groups = groups_with_refs.clone();
            let mut nb = groups.len() as u64;
            loop {
                let end = start + tc + nb;
                let mut gs = groups_with_refs.clone();
                gs.extend(start / per..=(end - 1) / per);
                gs.sort_unstable();
                gs.dedup();
                if gs.len() as u64 == nb {
                    groups = gs;
                    break;
                }
                nb = gs.len() as u64;
            }
            let entries =
                (groups.last().copied().unwrap_or(0) + 1).div_ceil(per_cluster) * per_cluster;
            let need_tc = entries * 8 / cs;
            if need_tc <= tc {
                break;
            }
            tc = need_tc;
        }
        let nb = groups.len() as u64;
        let end = start + tc + nb;
        if tc * cs > header::MAX_REFTABLE_BYTES {
            return Err(self.corrupt("rebuilt refcount table would exceed 8 MiB"));
        }
        counts.resize(
            end.max((groups.last().copied().unwrap_or(0) + 1) * per) as usize,
            0,
        );
        for c in start..end {
            counts[c as usize] = 1;
        }
        let order = self.h.refcount_order;
        let mut table = vec![0u64; (tc * per_cluster) as usize];
        for (k, g) in groups.iter().enumerate() {
            let b = start + tc + k as u64;
            let mut block = vec![0u8; cs as usize];
            for i in 0..per {
                let v = counts[(g * per + i) as usize];
                if v != 0 {
                    super::refcount::set_entry(&mut block, i, order, (v as u64).min(max));
                }
            }
            self.file.write_at(b * cs, &block)?;
            table[*g as usize] = b * cs;
        }
        let raw: Vec<u8> = table.iter().flat_map(|e| e.to_be_bytes()).collect();
        self.file.write_at(start * cs, &raw)?;
        self.file.flush()?;
        let mut hdr = [0u8; 12];
        hdr[..8].copy_from_slice(&(start * cs).to_be_bytes());
        hdr[8..].copy_from_slice(&(tc as u32).to_be_bytes());
        self.file.write_at(header::OFF_REFTABLE, &hdr)?;
        self.file.flush()?;
        self.h.refcount_table_offset = start * cs;
        self.h.refcount_table_clusters = tc as u32;
        self.rc_table = table;
        self.rc_cache.clear();
        self.refblocks = self.rc_table.iter().filter(|e| **e != 0).copied().collect();
        for r in self
            .fixed
            .iter_mut()
            .filter(|r| r.what == "the refcount table")
        {
            r.start = start * cs;
            r.end = (start + tc) * cs;
        }
        self.fixed.sort_by_key(|r| r.start);
        self.free_hint = 0;
        Ok(())
    }
}
