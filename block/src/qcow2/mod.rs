//! The qcow2 format, versions 2 and 3 (QEMU's docs/interop/qcow2.txt is the spec cited
//! throughout): a two-level table (L1, L2) maps guest clusters to host clusters; refcounts say
//! how many references each host cluster has, which is what lets internal snapshots share
//! clusters and copy on write.
//!
//! Split by concern, as QEMU's block/qcow2*.c are: `header` (header and extensions), `cache`
//! (the bounded L2 and refcount-block caches), `refcount` (refcounts, cluster allocation, the
//! refcount table's growth), `snapshot` (the snapshot table and its operations), `check`
//! (qemu-img check, refcount rebuild), `create`, `resize`, `backing` (changing the recorded
//! backing file), `compress` (compressed cluster writes). This file holds the open, the mapping
//! of guest clusters and the read and write paths.
//!
//! Known warts: requests are served cluster by cluster (no request merging beyond contiguous
//! data reads); metadata updates are ordered refcount-before-reference by writing refcounts
//! through (without lazy refcounts), but with no flush between them, so only a flush makes a
//! write crash-safe, as the guest expects anyway; compressed clusters are written only by
//! `write_compressed` (a guest write to one decompresses it into a plain cluster);
//! extended L2 entries, external data files, encryption and zstd are refused at open; a
//! snapshot whose disk size differs from the current one cannot be applied.

mod backing;
mod check;
mod compress;
mod create;
mod header;
mod refcount;
mod resize;
mod snapshot;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub use create::create;

use crate::cache::TableCache;
use crate::file::HostFile;
use crate::registry::{CacheMode, OpenOptions};
use crate::{
    check_range, push_extent, BlockDriver, BlockError, CheckReport, MapEntry, Repair, SnapshotInfo,
};
use header::{Header, INCOMPAT_CORRUPT, INCOMPAT_DIRTY};
use snapshot::Snapshot;

/// L1 entry: the L2 table's offset.
const L1E_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// L2 entry (standard cluster): the host cluster's offset.
const L2E_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// Refcount table entry: the refcount block's offset.
const REFT_OFFSET_MASK: u64 = 0xffff_ffff_ffff_fe00;
/// L1/L2 entry bit 63: the cluster's refcount is exactly 1 (writable in place).
const COPIED: u64 = 1 << 63;
/// L2 entry bit 62: the cluster is compressed.
const COMPRESSED: u64 = 1 << 62;
/// L2 entry bit 0 (v3): the cluster reads as zeroes.
const ZERO: u64 = 1;

/// Budget for the L2 table cache, in bytes (at least two tables are always cached).
const L2_CACHE_BYTES: u64 = 4 << 20;
/// Budget for the refcount block cache, in bytes.
const RC_CACHE_BYTES: u64 = 1 << 20;

/// Where a guest cluster's data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mapping {
    /// Not allocated here: the backing image's, or zeroes.
    Unallocated,
    /// Reads as zeroes (v3 zero flag).
    Zero,
    /// Reads as zeroes, with a host cluster kept allocated.
    ZeroAlloc(u64),
    /// A host cluster.
    Data(u64),
    /// A deflate stream at this host byte range.
    Compressed { offset: u64, len: u64 },
}

/// A metadata structure at a fixed place, for overlap checks.
#[derive(Debug, Clone)]
struct Region {
    start: u64,
    end: u64,
    what: String,
}

/// An open qcow2 image.
pub struct Qcow2 {
    file: HostFile,
    path: PathBuf,
    h: Header,
    cs: u64,
    l2_bits: u32,
    read_only: bool,
    l1: Vec<u64>,
    l2_cache: TableCache,
    rc_table: Vec<u64>,
    rc_cache: TableCache,
    refblocks: HashSet<u64>,
    fixed: Vec<Region>,
    snapshots: Vec<Snapshot>,
    backing: Option<Box<dyn BlockDriver>>,
    cache: CacheMode,
    lazy: bool,
    dirty_marked: bool,
    free_hint: u64,
    decompressed: Option<(u64, Vec<u8>)>,
    /// Where the next compressed stream may go (QEMU's free_byte_offset).
    free_byte_offset: Option<u64>,
    csize_shift: u32,
    csize_mask: u64,
    coffset_mask: u64,
}

impl std::fmt::Debug for Qcow2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qcow2")
            .field("path", &self.path)
            .field("size", &self.h.size)
            .finish()
    }
}

fn be64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i * 8..i * 8 + 8]);
    u64::from_be_bytes(a)
}

fn bytes_to_u64s(b: &[u8]) -> Vec<u64> {
    (0..b.len() / 8).map(|i| be64_at(b, i)).collect()
}

fn u64s_to_bytes(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

impl Qcow2 {
    /// Opens the qcow2 image on `file`: validates the header and every table it points to
    /// against the file (anything hostile is refused before anything is written), opens the
    /// backing chain read-only, and on a writable open of a dirty image rebuilds the refcounts.
    pub(crate) fn open(
        mut file: HostFile,
        options: &OpenOptions,
        chain: &mut Vec<PathBuf>,
    ) -> Result<Self, BlockError> {
        let path = file.path().to_path_buf();
        let file_len = file.len()?;
        if file_len < header::V3_HEADER_MIN_LEN as u64 {
            return Err(BlockError::corrupt(
                &path,
                format!("file of {file_len} bytes is too short for a qcow2 header"),
            ));
        }
        let mut head = vec![0u8; header::V3_HEADER_MIN_LEN as usize];
        file.read_at(0, &mut head)?;
        if head[0..4] != *crate::probe::QCOW2_MAGIC {
            return Err(BlockError::corrupt(&path, "not a qcow2 image (bad magic)"));
        }
        let bits = u32::from_be_bytes([head[20], head[21], head[22], head[23]]);
        let cs_guess = if (header::MIN_CLUSTER_BITS..=header::MAX_CLUSTER_BITS).contains(&bits) {
            1usize << bits
        } else {
            head.len()
        };
        let mut first = vec![0u8; cs_guess.max(head.len())];
        file.read_at(0, &mut first)?;
        let h = Header::parse(&path, &first)?;
        let cs = h.cluster_size();
        let bad = |r: String| BlockError::corrupt(&path, r);

        // Fixed metadata: inside the file and not overlapping one another.
        let mut fixed = vec![Region {
            start: 0,
            end: cs,
            what: "the header".into(),
        }];
        let l1_bytes = h.l1_size as u64 * 8;
        if h.l1_size > 0 {
            fixed.push(Region {
                start: h.l1_table_offset,
                end: h.l1_table_offset + l1_bytes.div_ceil(cs) * cs,
                what: "the L1 table".into(),
            });
        }
        let rt_bytes = h.refcount_table_clusters as u64 * cs;
        fixed.push(Region {
            start: h.refcount_table_offset,
            end: h.refcount_table_offset.saturating_add(rt_bytes),
            what: "the refcount table".into(),
        });
        for r in &fixed {
            let len = if r.what == "the L1 table" {
                l1_bytes
            } else {
                r.end - r.start
            };
            if r.start.checked_add(len).is_none_or(|e| e > file_len) {
                return Err(bad(format!(
                    "{} at {:#x} ({} bytes) is beyond the end of the file ({} bytes)",
                    r.what, r.start, len, file_len
                )));
            }
        }
        let snapshots = snapshot::read_table(&mut file, &h, file_len)?;
        if h.nb_snapshots > 0 {
            let len = snapshot::table_len(&snapshots);
            fixed.push(Region {
                start: h.snapshots_offset,
                end: h.snapshots_offset + len.div_ceil(cs) * cs,
                what: "the snapshot table".into(),
            });
        }
        for s in &snapshots {
            if s.l1_size > 0 {
                fixed.push(Region {
                    start: s.l1_offset,
                    end: s.l1_offset + (s.l1_size as u64 * 8).div_ceil(cs) * cs,
                    what: format!("snapshot {}'s L1 table", s.id),
                });
            }
        }
        check_overlaps(&path, &mut fixed)?;

        // The L1 and refcount tables.
        let mut l1_raw = vec![0u8; l1_bytes as usize];
        file.read_at(h.l1_table_offset, &mut l1_raw)?;
        let l1 = bytes_to_u64s(&l1_raw);
        let mut rt_raw = vec![0u8; rt_bytes as usize];
        file.read_at(h.refcount_table_offset, &mut rt_raw)?;
        let rc_table = bytes_to_u64s(&rt_raw);
        let mut refblocks = HashSet::new();
        for (i, e) in rc_table.iter().enumerate() {
            if *e == 0 {
                continue;
            }
            let off = e & REFT_OFFSET_MASK;
            if e & !REFT_OFFSET_MASK != 0 || !off.is_multiple_of(cs) {
                return Err(bad(format!(
                    "refcount block {i} offset {e:#x} is not cluster aligned"
                )));
            }
            if off.checked_add(cs).is_none_or(|end| end > file_len) {
                return Err(bad(format!(
                    "refcount block {i} at {off:#x} is beyond the end of the file"
                )));
            }
            if let Some(r) = find_region(&fixed, off, cs) {
                return Err(bad(format!(
                    "refcount block {i} at {off:#x} overlaps {}",
                    r.what
                )));
            }
            if !refblocks.insert(off) {
                return Err(bad(format!(
                    "refcount block {i} at {off:#x} is referenced twice (a loop)"
                )));
            }
        }

        if h.incompatible & INCOMPAT_CORRUPT != 0 && !options.read_only {
            return Err(BlockError::MarkedCorrupt {
                path: path.display().to_string(),
            });
        }

        // The backing chain, read-only.
        let backing = match &h.backing_file {
            None => None,
            Some(name) => Some(crate::backing::open(
                &path,
                name,
                h.backing_fmt.as_deref(),
                options.cache,
                chain,
            )?),
        };

        let cluster_bits = h.cluster_bits;
        let csize_shift = 62 - (cluster_bits - 8);
        let l2_cap = (L2_CACHE_BYTES / cs).clamp(2, 64) as usize;
        let rc_cap = (RC_CACHE_BYTES / cs).clamp(2, 32) as usize;
        let lazy = h.compatible & header::COMPAT_LAZY_REFCOUNTS != 0;
        let mut q = Qcow2 {
            file,
            path,
            cs,
            l2_bits: cluster_bits - 3,
            read_only: options.read_only,
            l1,
            l2_cache: TableCache::new(l2_cap),
            rc_table,
            rc_cache: TableCache::new(rc_cap),
            refblocks,
            fixed,
            snapshots,
            backing,
            cache: options.cache,
            lazy,
            dirty_marked: false,
            free_hint: 0,
            decompressed: None,
            free_byte_offset: None,
            csize_shift,
            csize_mask: (1u64 << (cluster_bits - 8)) - 1,
            coffset_mask: (1u64 << csize_shift) - 1,
            h,
        };
        if !q.read_only {
            if q.h.incompatible & INCOMPAT_DIRTY != 0 {
                // An unclean stop with lazy refcounts: rebuild them from the tables.
                q.check_impl(Repair::All)?;
                q.dirty_marked = true;
                q.mark_clean()?;
            }
            if q.h.autoclear != 0 {
                // Autoclear features this driver does not maintain (bitmaps) become invalid.
                q.h.autoclear = 0;
                q.file
                    .write_at(header::OFF_AUTOCLEAR, &0u64.to_be_bytes())?;
            }
        }
        Ok(q)
    }

    /// The image's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn corrupt(&self, reason: impl Into<String>) -> BlockError {
        BlockError::corrupt(&self.path, reason)
    }

    fn cluster_bits(&self) -> u32 {
        self.h.cluster_bits
    }

    fn l2_entries(&self) -> u64 {
        1 << self.l2_bits
    }

    /// Refuses writes to read-only or corrupt images.
    fn check_writable(&self) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        if self.h.incompatible & INCOMPAT_CORRUPT != 0 {
            return Err(BlockError::MarkedCorrupt {
                path: self.path.display().to_string(),
            });
        }
        Ok(())
    }

    /// Sets the corrupt bit after finding inconsistent metadata during a write, and returns
    /// the error to report (QEMU's qcow2_signal_corruption).
    fn signal_corruption(&mut self, reason: String) -> BlockError {
        if !self.read_only && self.h.incompatible & INCOMPAT_CORRUPT == 0 {
            self.h.incompatible |= INCOMPAT_CORRUPT;
            let _ = self
                .file
                .write_at(header::OFF_INCOMPAT, &self.h.incompatible.to_be_bytes());
            let _ = self.file.flush();
        }
        self.corrupt(format!("{reason}; image marked corrupt"))
    }

    /// Sets the dirty bit before the first deferred refcount update (lazy refcounts).
    fn mark_dirty(&mut self) -> Result<(), BlockError> {
        if self.dirty_marked || !self.lazy {
            return Ok(());
        }
        self.h.incompatible |= INCOMPAT_DIRTY;
        self.file
            .write_at(header::OFF_INCOMPAT, &self.h.incompatible.to_be_bytes())?;
        self.file.flush()?;
        self.dirty_marked = true;
        Ok(())
    }

    /// Writes every deferred refcount and clears the dirty bit.
    fn mark_clean(&mut self) -> Result<(), BlockError> {
        self.flush_refcounts()?;
        if self.dirty_marked {
            self.file.flush()?;
            self.h.incompatible &= !INCOMPAT_DIRTY;
            self.file
                .write_at(header::OFF_INCOMPAT, &self.h.incompatible.to_be_bytes())?;
            self.dirty_marked = false;
        }
        self.file.flush()
    }

    /// The fixed metadata region overlapping `[off, off + len)`, or a refcount block there.
    fn metadata_overlap(&self, off: u64, len: u64) -> Option<String> {
        if let Some(r) = find_region(&self.fixed, off, len) {
            return Some(r.what.clone());
        }
        let first = off / self.cs;
        let last = (off + len - 1) / self.cs;
        (first..=last)
            .find(|c| self.refblocks.contains(&(c * self.cs)))
            .map(|c| format!("a refcount block at {:#x}", c * self.cs))
    }

    // ---- L2 tables ----

    /// Loads the L2 table at `off` into the cache, validating where it is.
    fn l2_load(&mut self, off: u64) -> Result<(), BlockError> {
        if self.l2_cache.get(off).is_some() {
            return Ok(());
        }
        if !off.is_multiple_of(self.cs) {
            return Err(self.corrupt(format!("L2 table offset {off:#x} is not cluster aligned")));
        }
        if let Some(what) = self.metadata_overlap(off, self.cs) {
            return Err(self.corrupt(format!("L2 table at {off:#x} overlaps {what}")));
        }
        if off + self.cs > self.file.len()? {
            return Err(self.corrupt(format!(
                "L2 table at {off:#x} is beyond the end of the file"
            )));
        }
        let mut t = vec![0u8; self.cs as usize];
        self.file.read_at(off, &mut t)?;
        self.l2_cache.insert(off, t);
        Ok(())
    }

    fn l2_get(&mut self, off: u64, idx: u64) -> Result<u64, BlockError> {
        self.l2_load(off)?;
        let t = self
            .l2_cache
            .get(off)
            .ok_or_else(|| BlockError::corrupt(&self.path, "L2 cache lost a table"))?;
        Ok(be64_at(t, idx as usize))
    }

    fn l2_set(&mut self, off: u64, idx: u64, v: u64) -> Result<(), BlockError> {
        self.l2_load(off)?;
        if let Some(t) = self.l2_cache.get(off) {
            t[idx as usize * 8..idx as usize * 8 + 8].copy_from_slice(&v.to_be_bytes());
        }
        self.file.write_at(off + idx * 8, &v.to_be_bytes())
    }

    fn l2_read_all(&mut self, off: u64) -> Result<Vec<u64>, BlockError> {
        self.l2_load(off)?;
        let t = self
            .l2_cache
            .get(off)
            .ok_or_else(|| BlockError::corrupt(&self.path, "L2 cache lost a table"))?;
        Ok(bytes_to_u64s(t))
    }

    fn l2_write_all(&mut self, off: u64, entries: &[u64]) -> Result<(), BlockError> {
        let bytes = u64s_to_bytes(entries);
        self.file.write_at(off, &bytes)?;
        self.l2_cache.insert(off, bytes);
        Ok(())
    }

    fn set_l1(&mut self, idx: usize, v: u64) -> Result<(), BlockError> {
        self.l1[idx] = v;
        self.file
            .write_at(self.h.l1_table_offset + idx as u64 * 8, &v.to_be_bytes())
    }

    /// The L2 table offset of an L1 entry, checked.
    fn l1_entry_table(&self, e: u64) -> Result<u64, BlockError> {
        let off = e & L1E_OFFSET_MASK;
        if !off.is_multiple_of(self.cs) {
            return Err(self.corrupt(format!("L2 table offset {off:#x} is not cluster aligned")));
        }
        Ok(off)
    }

    /// Decodes an L2 entry.
    fn classify(&self, e: u64) -> Result<Mapping, BlockError> {
        if e & COMPRESSED != 0 {
            let offset = e & self.coffset_mask;
            let sectors = ((e >> self.csize_shift) & self.csize_mask) + 1;
            let len = sectors * 512 - (offset & 511);
            return Ok(Mapping::Compressed { offset, len });
        }
        let host = e & L2E_OFFSET_MASK;
        if !host.is_multiple_of(self.cs) {
            return Err(self.corrupt(format!(
                "data cluster offset {host:#x} is not cluster aligned"
            )));
        }
        if e & ZERO != 0 {
            if self.h.version < 3 {
                return Err(self.corrupt("zero cluster entry in a version 2 image"));
            }
            return Ok(if host != 0 {
                Mapping::ZeroAlloc(host)
            } else {
                Mapping::Zero
            });
        }
        Ok(if host == 0 {
            Mapping::Unallocated
        } else {
            Mapping::Data(host)
        })
    }

    /// The raw L2 entry of guest cluster `gc` (0 when its L2 table is unallocated).
    fn l2_entry(&mut self, gc: u64) -> Result<u64, BlockError> {
        let l1i = (gc >> self.l2_bits) as usize;
        let Some(&e) = self.l1.get(l1i) else {
            return Ok(0);
        };
        let off = self.l1_entry_table(e)?;
        if off == 0 {
            return Ok(0);
        }
        self.l2_get(off, gc & (self.l2_entries() - 1))
    }

    fn lookup(&mut self, gc: u64) -> Result<Mapping, BlockError> {
        let e = self.l2_entry(gc)?;
        self.classify(e)
    }

    // ---- reading ----

    fn read_backing(&mut self, off: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        crate::backing::read(self.backing.as_mut(), off, buf)
    }

    /// Inflates the compressed cluster at `[offset, offset + len)` into `self.decompressed`.
    fn decompress(&mut self, offset: u64, len: u64) -> Result<&[u8], BlockError> {
        if self.decompressed.as_ref().is_none_or(|(o, _)| *o != offset) {
            let mut input = vec![0u8; len as usize];
            self.file.read_at(offset, &mut input)?;
            let mut out = vec![0u8; self.cs as usize];
            let mut d = flate2::Decompress::new(false);
            let status = d.decompress(&input, &mut out, flate2::FlushDecompress::Finish);
            if status.is_err() || d.total_out() != self.cs {
                return Err(self.corrupt(format!(
                    "compressed cluster at {offset:#x} does not inflate"
                )));
            }
            self.decompressed = Some((offset, out));
        }
        Ok(self
            .decompressed
            .as_ref()
            .map(|(_, d)| d.as_slice())
            .unwrap_or(&[]))
    }

    /// Reads `buf` (within one guest cluster whose mapping is `m`) at guest offset `off`.
    fn read_mapped(&mut self, m: Mapping, off: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let in_off = (off & (self.cs - 1)) as usize;
        match m {
            Mapping::Unallocated => self.read_backing(off, buf),
            Mapping::Zero | Mapping::ZeroAlloc(_) => {
                buf.fill(0);
                Ok(())
            }
            Mapping::Data(h) => self.file.read_at(h + in_off as u64, buf),
            Mapping::Compressed { offset, len } => {
                let n = buf.len();
                let data = self.decompress(offset, len)?;
                buf.copy_from_slice(&data[in_off..in_off + n]);
                Ok(())
            }
        }
    }

    fn read_impl(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let cs = self.cs;
        let mut done = 0usize;
        // A run of guest clusters stored contiguously on the host, read with one pread.
        let mut run: Option<(u64, usize, usize)> = None; // (host offset, buf start, len)
        while done < buf.len() {
            let off = offset + done as u64;
            let in_off = off & (cs - 1);
            let n = ((cs - in_off) as usize).min(buf.len() - done);
            let m = self.lookup(off >> self.cluster_bits())?;
            if let Mapping::Data(h) = m {
                let host = h + in_off;
                match &mut run {
                    Some((rh, _, rl)) if *rh + *rl as u64 == host => *rl += n,
                    _ => {
                        if let Some((rh, rs, rl)) = run.take() {
                            self.file.read_at(rh, &mut buf[rs..rs + rl])?;
                        }
                        run = Some((host, done, n));
                    }
                }
            } else {
                if let Some((rh, rs, rl)) = run.take() {
                    self.file.read_at(rh, &mut buf[rs..rs + rl])?;
                }
                self.read_mapped(m, off, &mut buf[done..done + n])?;
            }
            done += n;
        }
        if let Some((rh, rs, rl)) = run {
            self.file.read_at(rh, &mut buf[rs..rs + rl])?;
        }
        Ok(())
    }

    // ---- writing ----

    /// The L2 table for L1 index `l1i`, allocated or copied (from a snapshot's shared table)
    /// so that it may be written in place.
    fn l2_for_write(&mut self, l1i: usize) -> Result<u64, BlockError> {
        let e = *self
            .l1
            .get(l1i)
            .ok_or_else(|| self.corrupt("guest offset beyond the L1 table"))?;
        let old = self.l1_entry_table(e)?;
        if old != 0 && e & COPIED != 0 {
            self.l2_load(old)?;
            return Ok(old);
        }
        let table = if old != 0 {
            self.l2_read_all(old)?
        } else {
            vec![0u64; self.l2_entries() as usize]
        };
        let new = self.alloc_clusters(1)?;
        self.l2_write_all(new, &table)?;
        self.set_l1(l1i, new | COPIED)?;
        if old != 0 {
            self.adjust_refcount(old / self.cs, -1)?;
        }
        Ok(new)
    }

    /// Drops the reference an L2 entry held (after the entry was replaced).
    fn release(&mut self, m: Mapping) -> Result<(), BlockError> {
        match m {
            Mapping::Data(h) | Mapping::ZeroAlloc(h) => {
                self.adjust_refcount(h / self.cs, -1)?;
            }
            Mapping::Compressed { offset, len } => {
                let first = offset / self.cs;
                let last = (offset + len - 1) / self.cs;
                for c in first..=last {
                    self.adjust_refcount(c, -1)?;
                }
            }
            Mapping::Unallocated | Mapping::Zero => {}
        }
        Ok(())
    }

    /// Writes `data` into guest cluster `gc` at `in_off`.
    fn write_cluster(&mut self, gc: u64, in_off: u64, data: &[u8]) -> Result<(), BlockError> {
        let l2 = self.l2_for_write((gc >> self.l2_bits) as usize)?;
        let idx = gc & (self.l2_entries() - 1);
        let e = self.l2_get(l2, idx)?;
        let m = self.classify(e)?;
        if let Mapping::Data(h) = m {
            if e & COPIED != 0 {
                if let Some(what) = self.metadata_overlap(h, self.cs) {
                    return Err(self.signal_corruption(format!(
                        "data cluster at {h:#x} of guest offset {:#x} overlaps {what}",
                        gc * self.cs
                    )));
                }
                if h >= self.file.len()? {
                    return Err(self.signal_corruption(format!(
                        "data cluster at {h:#x} of guest offset {:#x} is beyond the end of the file",
                        gc * self.cs
                    )));
                }
                return self.file.write_at(h + in_off, data);
            }
        }
        // Copy on write: a new cluster with the old contents around the new data.
        let mut cluster;
        let content: &[u8] = if data.len() as u64 == self.cs {
            data
        } else {
            cluster = vec![0u8; self.cs as usize];
            if m != Mapping::Zero && !(m == Mapping::Unallocated && self.backing.is_none()) {
                self.read_mapped(m, gc * self.cs, &mut cluster)?;
            }
            cluster[in_off as usize..in_off as usize + data.len()].copy_from_slice(data);
            &cluster
        };
        let new = self.alloc_clusters(1)?;
        self.file.write_at(new, content)?;
        self.l2_set(l2, idx, new | COPIED)?;
        self.release(m)
    }

    fn write_impl(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        self.check_writable()?;
        let cs = self.cs;
        let mut done = 0usize;
        while done < data.len() {
            let off = offset + done as u64;
            let in_off = off & (cs - 1);
            let n = ((cs - in_off) as usize).min(data.len() - done);
            self.write_cluster(off >> self.cluster_bits(), in_off, &data[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Makes whole clusters of `[offset, offset + len)` read as zeroes by metadata alone (v3
    /// zero flag, or unallocation when nothing shows through), `discard` or `write_zeroes`.
    /// Partial clusters are written with zeroes (write_zeroes) or left alone (discard).
    fn zero_range(&mut self, offset: u64, len: u64, discard: bool) -> Result<(), BlockError> {
        check_range(self.h.size, offset, len)?;
        self.check_writable()?;
        let cs = self.cs;
        let end = offset + len;
        let mut off = offset;
        while off < end {
            let in_off = off & (cs - 1);
            let n = (cs - in_off).min(end - off);
            let whole = in_off == 0 && (n == cs || off + n == self.h.size);
            if !whole {
                if !discard {
                    self.write_impl(off, &vec![0u8; n as usize])?;
                }
                off += n;
                continue;
            }
            let gc = off >> self.cluster_bits();
            let cur = self.lookup(gc)?;
            let nothing_below = self.backing.is_none();
            let new_entry = if self.h.version >= 3 {
                if cur == Mapping::Zero || (cur == Mapping::Unallocated && nothing_below) {
                    None
                } else {
                    Some(ZERO)
                }
            } else if cur == Mapping::Unallocated && (nothing_below || discard) {
                None
            } else if discard || nothing_below {
                Some(0)
            } else {
                self.write_impl(off, &vec![0u8; n as usize])?;
                None
            };
            if let Some(v) = new_entry {
                let l2 = self.l2_for_write((gc >> self.l2_bits) as usize)?;
                self.l2_set(l2, gc & (self.l2_entries() - 1), v)?;
                self.release(cur)?;
            }
            off += n;
        }
        Ok(())
    }

    fn map_impl(&mut self, offset: u64, len: u64) -> Result<Vec<MapEntry>, BlockError> {
        check_range(self.h.size, offset, len)?;
        let cs = self.cs;
        let end = offset + len;
        let mut out: Vec<MapEntry> = Vec::new();
        let mut off = offset;
        while off < end {
            let in_off = off & (cs - 1);
            let n = (cs - in_off).min(end - off);
            let base = MapEntry {
                start: off,
                length: n,
                depth: 0,
                present: true,
                zero: false,
                data: false,
                compressed: false,
                offset: None,
            };
            match self.lookup(off >> self.cluster_bits())? {
                Mapping::Data(h) => push_extent(
                    &mut out,
                    MapEntry {
                        data: true,
                        offset: Some(h + in_off),
                        ..base
                    },
                ),
                Mapping::Zero | Mapping::ZeroAlloc(_) => {
                    push_extent(&mut out, MapEntry { zero: true, ..base })
                }
                Mapping::Compressed { .. } => push_extent(
                    &mut out,
                    MapEntry {
                        data: true,
                        compressed: true,
                        ..base
                    },
                ),
                Mapping::Unallocated => {
                    crate::backing::map(self.backing.as_mut(), off, n, &mut out)?
                }
            }
            off += n;
        }
        Ok(out)
    }
}

/// Refuses overlapping fixed metadata (sorts `regions` by start).
fn check_overlaps(path: &Path, regions: &mut [Region]) -> Result<(), BlockError> {
    regions.sort_by_key(|r| r.start);
    for w in regions.windows(2) {
        if w[1].start < w[0].end {
            return Err(BlockError::corrupt(
                path,
                format!(
                    "{} at {:#x} overlaps {} at {:#x}",
                    w[1].what, w[1].start, w[0].what, w[0].start
                ),
            ));
        }
    }
    Ok(())
}

/// The region of `regions` (sorted, disjoint) overlapping `[off, off + len)`.
fn find_region(regions: &[Region], off: u64, len: u64) -> Option<&Region> {
    let end = off.saturating_add(len);
    regions.iter().find(|r| r.start < end && off < r.end)
}

impl BlockDriver for Qcow2 {
    fn format_name(&self) -> &'static str {
        "qcow2"
    }

    fn size(&self) -> u64 {
        self.h.size
    }

    fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_range(self.h.size, offset, buf.len() as u64)?;
        self.read_impl(offset, buf)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        check_range(self.h.size, offset, data.len() as u64)?;
        self.write_impl(offset, data)
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        if self.read_only {
            return Ok(());
        }
        self.flush_refcounts()?;
        self.file.flush()
    }

    fn discard(&mut self, offset: u64, len: u64) -> Result<(), BlockError> {
        self.zero_range(offset, len, true)
    }

    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), BlockError> {
        self.zero_range(offset, len, false)
    }

    fn snapshot_list(&mut self) -> Result<Vec<SnapshotInfo>, BlockError> {
        Ok(self.snapshots.iter().map(Snapshot::info).collect())
    }

    fn snapshot_create(&mut self, name: &str) -> Result<SnapshotInfo, BlockError> {
        self.snapshot_create_impl(name)
    }

    fn snapshot_apply(&mut self, id_or_name: &str) -> Result<(), BlockError> {
        self.snapshot_apply_impl(id_or_name)
    }

    fn snapshot_delete(&mut self, id_or_name: &str) -> Result<(), BlockError> {
        self.snapshot_delete_impl(id_or_name)
    }

    fn check(&mut self, repair: Repair) -> Result<CheckReport, BlockError> {
        if repair != Repair::None && self.read_only {
            return Err(BlockError::ReadOnly);
        }
        self.check_impl(repair)
    }

    fn map(&mut self, offset: u64, len: u64) -> Result<Vec<MapEntry>, BlockError> {
        self.map_impl(offset, len)
    }

    fn resize(&mut self, new_size: u64) -> Result<(), BlockError> {
        self.resize_impl(new_size)
    }

    fn set_backing(&mut self, file: Option<&str>, format: Option<&str>) -> Result<(), BlockError> {
        self.set_backing_impl(file, format)
    }

    fn write_compressed(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        self.write_compressed_impl(offset, data)
    }

    fn compression_unit(&self) -> Option<u64> {
        Some(self.cs)
    }
}

impl Drop for Qcow2 {
    fn drop(&mut self) {
        if !self.read_only && self.h.incompatible & INCOMPAT_CORRUPT == 0 {
            let _ = self.mark_clean();
        }
    }
}
