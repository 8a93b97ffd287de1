//! `qemu-img check` for QED (QEMU's qed-check.c): walk the L1 table and every L2 table, count
//! entries outside the file (corruptions) and clusters referenced twice, then every cluster
//! of the file that nothing references (leaks, the harmless residue of an interrupted
//! allocation). A repair clears the bad entries, as QEMU's does, and then the need-check bit;
//! leaks stay (QED cannot free a cluster).

use super::{table_from_bytes, table_to_bytes, Qed, CLUSTER_ZERO, F_NEED_CHECK};
use crate::{BlockError, CheckReport};

/// One bit per cluster of the file.
struct Used {
    bits: Vec<u64>,
    cs: u64,
}

impl Used {
    /// Marks `n` clusters from byte `off` used; false (and a corruption counted) if one was
    /// already.
    fn mark(&mut self, rep: &mut CheckReport, off: u64, n: u64, what: &str) -> bool {
        let mut fine = true;
        for c in off / self.cs..off / self.cs + n {
            let (w, b) = ((c / 64) as usize, c % 64);
            let Some(word) = self.bits.get_mut(w) else {
                continue;
            };
            if *word & (1 << b) != 0 {
                rep.corruptions += 1;
                rep.messages.push(format!(
                    "ERROR cluster at {:#x} ({what}) is referenced twice",
                    c * self.cs
                ));
                fine = false;
            }
            *word |= 1 << b;
        }
        fine
    }

    fn is_used(&self, c: u64) -> bool {
        self.bits
            .get((c / 64) as usize)
            .is_some_and(|w| w & (1 << (c % 64)) != 0)
    }
}

impl Qed {
    /// Checks the image; with `fix`, clears entries that point outside the file and, when
    /// nothing is left broken, the need-check bit.
    pub(super) fn check_impl(&mut self, fix: bool) -> Result<CheckReport, BlockError> {
        let cs = self.cs;
        let nclusters = self.file_size / cs;
        let mut rep = CheckReport {
            total_clusters: self.h.image_size.div_ceil(cs),
            ..Default::default()
        };
        let mut used = Used {
            bits: vec![0u64; nclusters.div_ceil(64) as usize],
            cs,
        };
        used.mark(
            &mut rep,
            self.h.l1_table_offset,
            self.h.table_size,
            "the L1 table",
        );
        let mut l1_fixed = false;
        for i in 0..self.l1.len() {
            let e = self.l1[i];
            if e == 0 {
                continue;
            }
            if !self.table_ok(e) {
                self.bad_entry(
                    &mut rep,
                    fix,
                    format!("L1 entry {i}: L2 table offset {e:#x}"),
                );
                if fix {
                    self.l1[i] = 0;
                    l1_fixed = true;
                }
                continue;
            }
            if !used.mark(&mut rep, e, self.h.table_size, "an L2 table") {
                continue;
            }
            let mut raw = vec![0u8; self.table_bytes as usize];
            if let Err(err) = self.file.read_at(e, &mut raw) {
                rep.check_errors += 1;
                rep.messages
                    .push(format!("ERROR reading the L2 table at {e:#x}: {err}"));
                continue;
            }
            let mut table = table_from_bytes(&raw);
            let mut l2_fixed = false;
            for (j, o) in table.iter_mut().enumerate() {
                if *o == 0 || *o == CLUSTER_ZERO {
                    continue;
                }
                rep.allocated_clusters += 1;
                if !self.cluster_ok(*o) {
                    let gc = i as u64 * self.entries + j as u64;
                    self.bad_entry(
                        &mut rep,
                        fix,
                        format!("guest offset {:#x}: data cluster offset {o:#x}", gc * cs),
                    );
                    if fix {
                        *o = 0;
                        l2_fixed = true;
                    }
                    continue;
                }
                used.mark(&mut rep, *o, 1, "a data cluster");
            }
            if l2_fixed {
                let bytes = table_to_bytes(&table);
                self.file.write_at(e, &bytes)?;
                let _ = self.l2_cache.insert(e, bytes);
            }
        }
        if l1_fixed {
            let bytes = table_to_bytes(&self.l1);
            self.file.write_at(self.h.l1_table_offset, &bytes)?;
            self.l2_tables = self.l1.iter().copied().filter(|e| *e != 0).collect();
        }
        if rep.check_errors == 0 {
            for c in self.h.header_size..nclusters {
                if !used.is_used(c) {
                    rep.leaks += 1;
                    rep.messages
                        .push(format!("Leaked cluster at {:#x}", c * cs));
                }
            }
        }
        if fix
            && rep.corruptions == 0
            && rep.check_errors == 0
            && self.h.features & F_NEED_CHECK != 0
        {
            self.clear_need_check()?;
        }
        Ok(rep)
    }

    fn bad_entry(&self, rep: &mut CheckReport, fix: bool, what: String) {
        if fix {
            rep.corruptions_fixed += 1;
            rep.messages
                .push(format!("Repairing {what} outside the file"));
        } else {
            rep.corruptions += 1;
            rep.messages
                .push(format!("ERROR {what} is outside the file"));
        }
    }
}
