//! Internal snapshots (qcow2.txt, "Snapshots"; QEMU's qcow2-snapshot.c): the snapshot table,
//! and create, apply (goto) and delete with QEMU's refcount bookkeeping.
//!
//! A snapshot is a copy of the active L1 table. Taking one adds one reference to every L2
//! table and data cluster the active L1 reaches (so a cluster's refcount is the number of L1
//! tables that reach it), clearing COPIED flags so the next guest write copies. Applying adds
//! the snapshot's references, overwrites the active L1 with the snapshot's, then drops the old
//! active references; deleting drops the snapshot's references and frees its L1 copy. After
//! each, the active tree's COPIED flags are recomputed from the refcounts.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::header::{self, Header};
use super::{bytes_to_u64s, u64s_to_bytes, Mapping, Qcow2, Region, COPIED};
use crate::file::HostFile;
use crate::{BlockError, SnapshotInfo};

/// QEMU's limits on one entry's extra data and on the whole table.
const MAX_EXTRA_DATA: u32 = 1024;
const MAX_TABLE_BYTES: u64 = 64 << 20;
/// The extra data this crate writes: vm_state_size_large, disk_size, icount.
const EXTRA_DATA_LEN: usize = 24;

/// One snapshot table entry.
#[derive(Debug, Clone)]
pub(super) struct Snapshot {
    pub l1_offset: u64,
    pub l1_size: u32,
    pub id: String,
    pub name: String,
    pub date_sec: u32,
    pub date_nsec: u32,
    pub vm_clock_nsec: u64,
    pub vm_state_size: u64,
    pub disk_size: Option<u64>,
    /// Extra data beyond the three fields this crate knows, kept as is.
    pub extra_tail: Vec<u8>,
    pub icount: u64,
}

impl Snapshot {
    pub fn info(&self) -> SnapshotInfo {
        SnapshotInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            vm_state_size: self.vm_state_size,
            date_sec: self.date_sec,
            date_nsec: self.date_nsec,
            vm_clock_nsec: self.vm_clock_nsec,
            disk_size: self.disk_size.unwrap_or(0),
        }
    }

    fn entry_len(&self) -> u64 {
        let extra = (EXTRA_DATA_LEN + self.extra_tail.len()) as u64;
        (40 + extra + self.id.len() as u64 + self.name.len() as u64).div_ceil(8) * 8
    }

    fn serialize(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.l1_offset.to_be_bytes());
        out.extend_from_slice(&self.l1_size.to_be_bytes());
        out.extend_from_slice(&(self.id.len() as u16).to_be_bytes());
        out.extend_from_slice(&(self.name.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.date_sec.to_be_bytes());
        out.extend_from_slice(&self.date_nsec.to_be_bytes());
        out.extend_from_slice(&self.vm_clock_nsec.to_be_bytes());
        out.extend_from_slice(&(self.vm_state_size.min(u32::MAX as u64) as u32).to_be_bytes());
        out.extend_from_slice(&((EXTRA_DATA_LEN + self.extra_tail.len()) as u32).to_be_bytes());
        out.extend_from_slice(&self.vm_state_size.to_be_bytes());
        out.extend_from_slice(&self.disk_size.unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&self.icount.to_be_bytes());
        out.extend_from_slice(&self.extra_tail);
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(self.name.as_bytes());
        let len = out.len() - start;
        out.resize(start + len.div_ceil(8) * 8, 0);
    }
}

/// The byte length of a table holding `snaps`.
pub(super) fn table_len(snaps: &[Snapshot]) -> u64 {
    snaps.iter().map(Snapshot::entry_len).sum()
}

fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn be64(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_be_bytes(a)
}

/// Reads and validates the snapshot table.
pub(super) fn read_table(
    file: &mut HostFile,
    h: &Header,
    file_len: u64,
) -> Result<Vec<Snapshot>, BlockError> {
    let path = file.path().to_path_buf();
    let bad = |r: String| BlockError::corrupt(&path, r);
    let cs = h.cluster_size();
    let mut out = Vec::new();
    let mut off = h.snapshots_offset;
    for i in 0..h.nb_snapshots {
        let within = |off: u64, len: u64| off.checked_add(len).is_some_and(|e| e <= file_len);
        if off - h.snapshots_offset + 40 > MAX_TABLE_BYTES || !within(off, 40) {
            return Err(bad(format!(
                "snapshot table entry {i} at {off:#x} is beyond the end of the file"
            )));
        }
        let mut e = [0u8; 40];
        file.read_at(off, &mut e)?;
        let extra_len = be32(&e, 36);
        if extra_len > MAX_EXTRA_DATA {
            return Err(bad(format!(
                "snapshot {i} has {extra_len} bytes of extra data (too many)"
            )));
        }
        let id_len = u16::from_be_bytes([e[12], e[13]]) as u64;
        let name_len = u16::from_be_bytes([e[14], e[15]]) as u64;
        let var_len = extra_len as u64 + id_len + name_len;
        if !within(off + 40, var_len) {
            return Err(bad(format!(
                "snapshot table entry {i} at {off:#x} is beyond the end of the file"
            )));
        }
        let mut var = vec![0u8; var_len as usize];
        file.read_at(off + 40, &mut var)?;
        let extra = &var[..extra_len as usize];
        let id =
            String::from_utf8_lossy(&var[extra_len as usize..(extra_len as u64 + id_len) as usize])
                .into_owned();
        let name =
            String::from_utf8_lossy(&var[(extra_len as u64 + id_len) as usize..]).into_owned();
        let mut vm_state_size = be32(&e, 32) as u64;
        let mut disk_size = None;
        let mut icount = u64::MAX;
        if extra.len() >= 8 {
            vm_state_size = be64(extra, 0);
        }
        if extra.len() >= 16 {
            disk_size = Some(be64(extra, 8));
        }
        if extra.len() >= 24 {
            icount = be64(extra, 16);
        }
        let extra_tail = extra.get(EXTRA_DATA_LEN..).unwrap_or(&[]).to_vec();
        let sn = Snapshot {
            l1_offset: be64(&e, 0),
            l1_size: be32(&e, 8),
            id,
            name,
            date_sec: be32(&e, 16),
            date_nsec: be32(&e, 20),
            vm_clock_nsec: be64(&e, 24),
            vm_state_size,
            disk_size,
            extra_tail,
            icount,
        };
        let l1_bytes = sn.l1_size as u64 * 8;
        if l1_bytes > header::MAX_L1_BYTES {
            return Err(bad(format!(
                "snapshot {} has an L1 table of {} entries (too large)",
                sn.id, sn.l1_size
            )));
        }
        if sn.l1_size > 0
            && (!sn.l1_offset.is_multiple_of(cs)
                || sn.l1_offset == 0
                || !within(sn.l1_offset, l1_bytes))
        {
            return Err(bad(format!(
                "snapshot {}'s L1 table at {:#x} ({} bytes) is misaligned or beyond the end of the file",
                sn.id, sn.l1_offset, l1_bytes
            )));
        }
        off += 40 + var_len;
        off = off.div_ceil(8) * 8;
        out.push(sn);
    }
    Ok(out)
}

impl Qcow2 {
    fn find_snapshot(&self, id_or_name: &str) -> Result<usize, BlockError> {
        self.snapshots
            .iter()
            .position(|s| s.id == id_or_name)
            .or_else(|| self.snapshots.iter().position(|s| s.name == id_or_name))
            .ok_or_else(|| BlockError::SnapshotNotFound {
                path: self.path.display().to_string(),
                name: id_or_name.to_string(),
            })
    }

    fn read_l1_at(&mut self, off: u64, size: u32) -> Result<Vec<u64>, BlockError> {
        let mut raw = vec![0u8; size as usize * 8];
        self.file.read_at(off, &mut raw)?;
        Ok(bytes_to_u64s(&raw))
    }

    /// Refuses to add one reference to the tree of `l1` if a refcount would overflow.
    fn check_headroom(&mut self, l1: &[u64]) -> Result<(), BlockError> {
        let mut incs: HashMap<u64, u64> = HashMap::new();
        for e in l1 {
            let off = self.l1_entry_table(*e)?;
            if off == 0 {
                continue;
            }
            *incs.entry(off / self.cs).or_default() += 1;
            for le in self.l2_read_all(off)? {
                match self.classify(le)? {
                    Mapping::Data(h) | Mapping::ZeroAlloc(h) => {
                        *incs.entry(h / self.cs).or_default() += 1
                    }
                    Mapping::Compressed { offset, len } => {
                        for c in offset / self.cs..=(offset + len - 1) / self.cs {
                            *incs.entry(c).or_default() += 1;
                        }
                    }
                    Mapping::Zero | Mapping::Unallocated => {}
                }
            }
        }
        let max = self.rc_max();
        for (c, inc) in incs {
            if self.refcount(c)?.checked_add(inc).is_none_or(|v| v > max) {
                return Err(BlockError::RefcountOverflow {
                    path: self.path.display().to_string(),
                    offset: c * self.cs,
                    bits: 1 << self.h.refcount_order,
                });
            }
        }
        Ok(())
    }

    /// Adds `addend` references to every L2 table and cluster reached from `l1`, and sets the
    /// COPIED flags of the L2 entries and of the returned L1 entries from the new refcounts
    /// (QEMU's qcow2_update_snapshot_refcount).
    pub(super) fn update_tree(
        &mut self,
        mut l1: Vec<u64>,
        addend: i64,
    ) -> Result<Vec<u64>, BlockError> {
        let cs = self.cs;
        for e in l1.iter_mut() {
            let off = self.l1_entry_table(*e)?;
            if off == 0 {
                continue;
            }
            let mut table = self.l2_read_all(off)?;
            let mut changed = false;
            for le in table.iter_mut() {
                match self.classify(*le)? {
                    Mapping::Compressed { offset, len } => {
                        if addend != 0 {
                            for c in offset / cs..=(offset + len - 1) / cs {
                                self.adjust_refcount(c, addend)?;
                            }
                        }
                    }
                    Mapping::Data(h) | Mapping::ZeroAlloc(h) => {
                        if addend != 0 {
                            self.adjust_refcount(h / cs, addend)?;
                        }
                        let rc = self.refcount(h / cs)?;
                        let new = if rc == 1 { *le | COPIED } else { *le & !COPIED };
                        if new != *le {
                            *le = new;
                            changed = true;
                        }
                    }
                    Mapping::Zero | Mapping::Unallocated => {}
                }
            }
            if changed {
                self.l2_write_all(off, &table)?;
            }
            if addend != 0 {
                self.adjust_refcount(off / cs, addend)?;
            }
            let rc = self.refcount(off / cs)?;
            *e = if rc == 1 { *e | COPIED } else { *e & !COPIED };
        }
        Ok(l1)
    }

    fn write_active_l1(&mut self, l1: Vec<u64>) -> Result<(), BlockError> {
        let mut raw = u64s_to_bytes(&l1);
        raw.resize(self.l1.len() * 8, 0);
        self.file.write_at(self.h.l1_table_offset, &raw)?;
        self.l1 = l1;
        Ok(())
    }

    /// Writes the snapshot table anew, points the header at it and frees the old one
    /// (`old_len` bytes at the old offset).
    fn write_snapshot_table(&mut self, old_len: u64) -> Result<(), BlockError> {
        let cs = self.cs;
        let mut raw = Vec::new();
        for s in &self.snapshots {
            s.serialize(&mut raw);
        }
        let new_off = if raw.is_empty() {
            0
        } else {
            let clusters = (raw.len() as u64).div_ceil(cs);
            let off = self.alloc_clusters(clusters)?;
            raw.resize((clusters * cs) as usize, 0);
            self.file.write_at(off, &raw)?;
            off
        };
        self.flush_refcounts()?;
        self.file.flush()?;
        let mut hdr = [0u8; 12];
        hdr[..4].copy_from_slice(&(self.snapshots.len() as u32).to_be_bytes());
        hdr[4..].copy_from_slice(&new_off.to_be_bytes());
        self.file.write_at(header::OFF_SNAPSHOTS, &hdr)?;
        let old_off = self.h.snapshots_offset;
        let had = self.h.nb_snapshots > 0;
        self.h.nb_snapshots = self.snapshots.len() as u32;
        self.h.snapshots_offset = new_off;
        self.fixed.retain(|r| r.what != "the snapshot table");
        if new_off != 0 {
            self.fixed.push(Region {
                start: new_off,
                end: new_off + raw.len() as u64,
                what: "the snapshot table".into(),
            });
        }
        self.fixed.sort_by_key(|r| r.start);
        if had && old_off != 0 {
            self.free_bytes(old_off, old_len)?;
        }
        Ok(())
    }

    pub(super) fn snapshot_create_impl(&mut self, name: &str) -> Result<SnapshotInfo, BlockError> {
        self.check_writable()?;
        if name.is_empty() || name.len() > u16::MAX as usize {
            return Err(BlockError::InvalidArgument(
                "a snapshot needs a name (at most 65535 bytes)".into(),
            ));
        }
        if self.snapshots.iter().any(|s| s.name == name) {
            return Err(BlockError::InvalidArgument(format!(
                "a snapshot named '{name}' already exists"
            )));
        }
        if self.snapshots.len() as u32 >= header::MAX_SNAPSHOTS {
            return Err(BlockError::InvalidArgument("too many snapshots".into()));
        }
        let l1 = self.l1.clone();
        self.check_headroom(&l1)?;
        let id = self
            .snapshots
            .iter()
            .filter_map(|s| s.id.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        let cs = self.cs;
        let l1_bytes = l1.len() as u64 * 8;
        let l1_offset = if l1_bytes == 0 {
            0
        } else {
            let clusters = l1_bytes.div_ceil(cs);
            let off = self.alloc_clusters(clusters)?;
            let mut raw = u64s_to_bytes(&l1);
            raw.resize((clusters * cs) as usize, 0);
            self.file.write_at(off, &raw)?;
            off
        };
        let new_l1 = self.update_tree(l1, 1)?;
        self.write_active_l1(new_l1)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let sn = Snapshot {
            l1_offset,
            l1_size: self.l1.len() as u32,
            id: id.to_string(),
            name: name.to_string(),
            date_sec: now.as_secs() as u32,
            date_nsec: now.subsec_nanos(),
            vm_clock_nsec: 0,
            vm_state_size: 0,
            disk_size: Some(self.h.size),
            extra_tail: Vec::new(),
            icount: u64::MAX,
        };
        let info = sn.info();
        let old_len = table_len(&self.snapshots);
        if l1_offset != 0 {
            self.fixed.push(Region {
                start: l1_offset,
                end: l1_offset + l1_bytes.div_ceil(cs) * cs,
                what: format!("snapshot {id}'s L1 table"),
            });
        }
        self.snapshots.push(sn);
        self.write_snapshot_table(old_len)?;
        self.flush_refcounts()?;
        self.file.flush()?;
        Ok(info)
    }

    pub(super) fn snapshot_apply_impl(&mut self, id_or_name: &str) -> Result<(), BlockError> {
        self.check_writable()?;
        let i = self.find_snapshot(id_or_name)?;
        let sn = self.snapshots[i].clone();
        if sn.disk_size.is_some_and(|s| s != self.h.size) {
            return Err(BlockError::unsupported(
                &self.path,
                format!("applying snapshot '{}' of a different disk size", sn.name),
            ));
        }
        let mut sn_l1 = self.read_l1_at(sn.l1_offset, sn.l1_size)?;
        if sn_l1.iter().skip(self.l1.len()).any(|e| *e != 0) {
            return Err(BlockError::unsupported(
                &self.path,
                format!("applying snapshot '{}' with a larger L1 table", sn.name),
            ));
        }
        sn_l1.resize(self.l1.len(), 0);
        self.check_headroom(&sn_l1)?;
        let sn_l1 = self.update_tree(sn_l1, 1)?;
        let old = self.l1.clone();
        let raw = u64s_to_bytes(&sn_l1);
        self.file.write_at(self.h.l1_table_offset, &raw)?;
        self.update_tree(old, -1)?;
        self.l1 = sn_l1.clone();
        let fixed = self.update_tree(sn_l1, 0)?;
        self.write_active_l1(fixed)?;
        self.decompressed = None;
        self.flush_refcounts()?;
        self.file.flush()
    }

    pub(super) fn snapshot_delete_impl(&mut self, id_or_name: &str) -> Result<(), BlockError> {
        self.check_writable()?;
        let i = self.find_snapshot(id_or_name)?;
        let old_len = table_len(&self.snapshots);
        let sn = self.snapshots.remove(i);
        self.write_snapshot_table(old_len)?;
        let what = format!("snapshot {}'s L1 table", sn.id);
        self.fixed.retain(|r| r.what != what);
        let sn_l1 = self.read_l1_at(sn.l1_offset, sn.l1_size)?;
        self.update_tree(sn_l1, -1)?;
        self.free_bytes(sn.l1_offset, sn.l1_size as u64 * 8)?;
        let active = self.l1.clone();
        let fixed = self.update_tree(active, 0)?;
        self.write_active_l1(fixed)?;
        self.flush_refcounts()?;
        self.file.flush()
    }
}
