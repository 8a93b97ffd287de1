//! The QED format (QEMU's docs/interop/qed_spec.txt, cited throughout; block/qed*.c): a
//! header, an L1 table and L2 tables of `table_size` clusters each, and data clusters. A table
//! entry is a host byte offset: 0 is unallocated (the backing file's, or zeroes), 1 a cluster
//! that reads as zeroes, anything else a cluster of the file. There are no refcounts: clusters
//! are allocated at the end of the file and never freed.
//!
//! Consistency rests on the need-check feature bit: it is set (and flushed) before the first
//! allocating write and cleared by a flush or close once the data and tables are durable. An
//! image opened writable with the bit still set was not closed cleanly: it is checked first,
//! table entries pointing outside the file are cleared (QEMU's qed_check) and leaked clusters
//! (allocated but never linked, harmless) are left. Read-only opens skip the check, as QEMU's
//! do, and a bad entry met by a read is an error.
//!
//! Split as `header` (parsing and validation), `check` (qemu-img check and the repair),
//! `create`; this file holds the open, the lookups and the read and write paths.
//!
//! Known warts: one request at a time, served cluster by cluster; discard does nothing (QED
//! has no way to free a cluster); images only grow (as in QEMU); tables above 32 MiB are
//! refused; QEMU itself cannot open images with `table_size=1` (its table offset check treats
//! a one-cluster table as an overflow), which this driver reads and writes.

mod check;
mod create;
mod header;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use create::{create, create_with_table_size, DEFAULT_TABLE_SIZE};

use crate::cache::TableCache;
use crate::file::HostFile;
use crate::registry::{CacheMode, OpenOptions};
use crate::{check_range, push_extent, BlockDriver, BlockError, CheckReport, MapEntry, Repair};
use header::{Header, F_BACKING_FILE, F_BACKING_FORMAT_NO_PROBE, F_NEED_CHECK, HEADER_LEN};

/// A table entry for a cluster that reads as zeroes (QED_CLUSTER_ZERO).
const CLUSTER_ZERO: u64 = 1;
/// Budget for the L2 table cache, in bytes (at least two tables are always cached).
const L2_CACHE_BYTES: u64 = 4 << 20;

/// Where a guest cluster's data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Not allocated here: the backing image's, or zeroes.
    Unallocated,
    /// Reads as zeroes.
    Zero,
    /// A host cluster.
    Data(u64),
}

/// An open QED image.
pub struct Qed {
    file: HostFile,
    path: PathBuf,
    h: Header,
    cs: u64,
    table_bytes: u64,
    entries: u64,
    read_only: bool,
    cache: CacheMode,
    l1: Vec<u64>,
    l2_cache: TableCache,
    /// The host offsets of the L2 tables the L1 table points to, to keep data writes off them.
    l2_tables: BTreeSet<u64>,
    /// Where the next cluster is allocated: the file's length rounded down to a cluster.
    file_size: u64,
    backing: Option<Box<dyn BlockDriver>>,
    backing_file: Option<String>,
}

impl std::fmt::Debug for Qed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qed")
            .field("path", &self.path)
            .field("size", &self.h.image_size)
            .finish()
    }
}

fn le64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i * 8..i * 8 + 8]);
    u64::from_le_bytes(a)
}

fn table_from_bytes(b: &[u8]) -> Vec<u64> {
    (0..b.len() / 8).map(|i| le64_at(b, i)).collect()
}

fn table_to_bytes(t: &[u64]) -> Vec<u8> {
    t.iter().flat_map(|e| e.to_le_bytes()).collect()
}

impl Qed {
    /// Opens the QED image on `file`: validates the header and the L1 table's place, opens
    /// the backing chain read-only, and on a writable open of an image whose need-check bit
    /// is set, checks and repairs it.
    pub(crate) fn open(
        mut file: HostFile,
        options: &OpenOptions,
        chain: &mut Vec<PathBuf>,
    ) -> Result<Self, BlockError> {
        let path = file.path().to_path_buf();
        let file_len = file.len()?;
        if file_len < HEADER_LEN as u64 {
            return Err(BlockError::corrupt(
                &path,
                format!("file of {file_len} bytes is too short for a QED header"),
            ));
        }
        let mut head = [0u8; HEADER_LEN];
        file.read_at(0, &mut head)?;
        let h = Header::parse(&path, &head)?;
        let cs = h.cluster_size;
        let table_bytes = h.table_size * cs;
        let mut q = Qed {
            file,
            path,
            cs,
            table_bytes,
            entries: table_bytes / 8,
            read_only: options.read_only,
            cache: options.cache,
            l1: Vec::new(),
            l2_cache: TableCache::new((L2_CACHE_BYTES / table_bytes).clamp(2, 64) as usize),
            l2_tables: BTreeSet::new(),
            file_size: file_len / cs * cs,
            backing: None,
            backing_file: None,
            h,
        };
        if !q.table_ok(q.h.l1_table_offset) {
            return Err(q.corrupt(format!(
                "L1 table offset {:#x} is invalid (unaligned, in the header or beyond the end of the file)",
                q.h.l1_table_offset
            )));
        }
        if q.h.features & F_BACKING_FILE != 0 {
            let mut name = vec![0u8; q.h.backing_filename_size as usize];
            q.file
                .read_at(q.h.backing_filename_offset as u64, &mut name)?;
            let name =
                String::from_utf8(name).map_err(|_| q.corrupt("backing file name is not UTF-8"))?;
            if !name.is_empty() {
                q.backing_file = Some(name);
            }
        }
        let mut raw = vec![0u8; table_bytes as usize];
        q.file.read_at(q.h.l1_table_offset, &mut raw)?;
        q.l1 = table_from_bytes(&raw);
        q.l2_tables = q.l1.iter().copied().filter(|e| *e != 0).collect();
        if let Some(name) = q.backing_file.clone() {
            let format = (q.h.features & F_BACKING_FORMAT_NO_PROBE != 0).then_some("raw");
            q.backing = Some(crate::backing::open(
                &q.path, &name, format, q.cache, chain,
            )?);
        }
        if !q.read_only {
            if q.h.autoclear_features != 0 {
                // No autoclear feature is known: whatever set them is no longer valid.
                q.h.autoclear_features = 0;
                q.write_header()?;
                q.file.flush()?;
            }
            if q.h.features & F_NEED_CHECK != 0 {
                q.check_impl(true)?;
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

    /// A data cluster offset inside the file, past the header (qed_check_cluster_offset).
    fn cluster_ok(&self, off: u64) -> bool {
        off.is_multiple_of(self.cs) && off >= self.h.header_bytes() && off < self.file_size
    }

    /// A table's offset: its first and last clusters are valid (qed_check_table_offset).
    fn table_ok(&self, off: u64) -> bool {
        off.checked_add(self.table_bytes - self.cs)
            .is_some_and(|last| self.cluster_ok(off) && self.cluster_ok(last))
    }

    fn write_header(&mut self) -> Result<(), BlockError> {
        let b = self.h.serialize();
        self.file.write_at(0, &b)
    }

    /// Sets the need-check bit before the first allocation since the last flush.
    fn set_need_check(&mut self) -> Result<(), BlockError> {
        if self.h.features & F_NEED_CHECK != 0 {
            return Ok(());
        }
        self.h.features |= F_NEED_CHECK;
        self.write_header()?;
        self.file.flush()
    }

    /// Clears the need-check bit once everything before it is durable.
    fn clear_need_check(&mut self) -> Result<(), BlockError> {
        self.file.flush()?;
        if self.h.features & F_NEED_CHECK == 0 {
            return Ok(());
        }
        self.h.features &= !F_NEED_CHECK;
        self.write_header()?;
        self.file.flush()
    }

    fn check_writable(&self) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        Ok(())
    }

    /// Allocates `n` bytes (whole clusters) at the end of the file.
    fn alloc(&mut self, n: u64) -> Result<u64, BlockError> {
        let off = self.file_size;
        self.file_size = off
            .checked_add(n)
            .filter(|e| *e <= 1 << 56)
            .ok_or_else(|| self.corrupt("the file is full"))?;
        Ok(off)
    }

    // ---- tables ----

    /// The L2 table at `off` (validated), loaded into the cache.
    fn l2_load(&mut self, off: u64) -> Result<(), BlockError> {
        if self.l2_cache.get(off).is_some() {
            return Ok(());
        }
        if !self.table_ok(off) {
            return Err(self.corrupt(format!(
                "L2 table offset {off:#x} is invalid (unaligned, in the header or beyond the end of the file)"
            )));
        }
        let mut t = vec![0u8; self.table_bytes as usize];
        self.file.read_at(off, &mut t)?;
        // L2 tables are written through: an evicted one needs no write-back.
        let _ = self.l2_cache.insert(off, t);
        Ok(())
    }

    fn l2_get(&mut self, off: u64, idx: u64) -> Result<u64, BlockError> {
        self.l2_load(off)?;
        let t = self
            .l2_cache
            .get(off)
            .ok_or_else(|| BlockError::corrupt(&self.path, "L2 cache lost a table"))?;
        Ok(le64_at(t, idx as usize))
    }

    /// Where guest cluster `gc` is.
    fn lookup(&mut self, gc: u64) -> Result<Slot, BlockError> {
        // The header's size check keeps guest clusters within the L1 table.
        let l2 = self
            .l1
            .get((gc / self.entries) as usize)
            .copied()
            .unwrap_or(0);
        if l2 == 0 {
            return Ok(Slot::Unallocated);
        }
        let e = self.l2_get(l2, gc % self.entries)?;
        match e {
            0 => Ok(Slot::Unallocated),
            CLUSTER_ZERO => Ok(Slot::Zero),
            h if self.cluster_ok(h) => Ok(Slot::Data(h)),
            h => Err(self.corrupt(format!(
                "data cluster offset {h:#x} of guest offset {:#x} is invalid (unaligned, in the header or beyond the end of the file)",
                gc * self.cs
            ))),
        }
    }

    /// Points guest cluster `gc` at `v` (a host cluster or [`CLUSTER_ZERO`]), allocating its
    /// L2 table if it has none (written whole before the L1 entry points to it).
    fn set_entry(&mut self, gc: u64, v: u64) -> Result<(), BlockError> {
        let l1i = (gc / self.entries) as usize;
        let idx = gc % self.entries;
        let l2 = *self
            .l1
            .get(l1i)
            .ok_or_else(|| self.corrupt("guest offset beyond the L1 table"))?;
        if l2 == 0 {
            let off = self.alloc(self.table_bytes)?;
            let mut t = vec![0u64; self.entries as usize];
            t[idx as usize] = v;
            let bytes = table_to_bytes(&t);
            self.file.write_at(off, &bytes)?;
            let _ = self.l2_cache.insert(off, bytes);
            self.l2_tables.insert(off);
            self.l1[l1i] = off;
            return self
                .file
                .write_at(self.h.l1_table_offset + l1i as u64 * 8, &off.to_le_bytes());
        }
        self.l2_load(l2)?;
        if self.overlaps_l1(l2, self.table_bytes) {
            return Err(self.corrupt(format!("L2 table at {l2:#x} overlaps the L1 table")));
        }
        if let Some(t) = self.l2_cache.get(l2) {
            t[idx as usize * 8..idx as usize * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        self.file.write_at(l2 + idx * 8, &v.to_le_bytes())
    }

    fn overlaps_l1(&self, off: u64, len: u64) -> bool {
        let l1 = self.h.l1_table_offset;
        off < l1 + self.table_bytes && l1 < off + len
    }

    /// Whether a data cluster at `h` lies on the L1 table or an L2 table.
    fn overlaps_tables(&self, h: u64) -> bool {
        self.overlaps_l1(h, self.cs)
            || self
                .l2_tables
                .range(..=h)
                .next_back()
                .is_some_and(|t| h < t + self.table_bytes)
    }

    // ---- reading ----

    /// Reads `buf` (within one cluster whose place is `slot`) at guest offset `off`.
    fn read_slot(&mut self, slot: Slot, off: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        match slot {
            Slot::Unallocated => self.read_backing(off, buf),
            Slot::Zero => {
                buf.fill(0);
                Ok(())
            }
            Slot::Data(h) => self.file.read_at(h + off % self.cs, buf),
        }
    }

    /// The backing file's bytes, zeroes past its end or the image's.
    fn read_backing(&mut self, off: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let n = self.h.image_size.saturating_sub(off).min(buf.len() as u64) as usize;
        buf[n..].fill(0);
        crate::backing::read(self.backing.as_mut(), off, &mut buf[..n])
    }

    fn read_impl(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let mut done = 0usize;
        while done < buf.len() {
            let off = offset + done as u64;
            let n = ((self.cs - off % self.cs) as usize).min(buf.len() - done);
            let slot = self.lookup(off / self.cs)?;
            self.read_slot(slot, off, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    // ---- writing ----

    /// Writes `data` into guest cluster `gc` at byte `in_off`: in place when allocated, else
    /// into a new cluster filled around it from what the guest saw there (copy on write).
    fn write_cluster(&mut self, gc: u64, in_off: u64, data: &[u8]) -> Result<(), BlockError> {
        let slot = self.lookup(gc)?;
        if let Slot::Data(h) = slot {
            if self.overlaps_tables(h) {
                return Err(self.corrupt(format!(
                    "data cluster at {h:#x} of guest offset {:#x} overlaps a table",
                    gc * self.cs
                )));
            }
            return self.file.write_at(h + in_off, data);
        }
        let mut cluster = vec![0u8; self.cs as usize];
        if data.len() as u64 != self.cs {
            self.read_slot(slot, gc * self.cs, &mut cluster)?;
        }
        cluster[in_off as usize..in_off as usize + data.len()].copy_from_slice(data);
        self.set_need_check()?;
        let h = self.alloc(self.cs)?;
        self.file.write_at(h, &cluster)?;
        if self.backing.is_some() {
            // The data must be durable before an entry hides the backing file's: a repair
            // after a crash clears entries beyond the file, not ones to lost data (QEMU's
            // flush before the L2 update).
            self.file.flush()?;
        }
        self.set_entry(gc, h)
    }

    fn write_impl(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        let mut done = 0usize;
        while done < data.len() {
            let off = offset + done as u64;
            let in_off = off % self.cs;
            let n = ((self.cs - in_off) as usize).min(data.len() - done);
            self.write_cluster(off / self.cs, in_off, &data[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Zeroes `[offset, offset + len)`: whole unallocated clusters become zero clusters when
    /// something would show through, allocated ones are zeroed in place (QED cannot free
    /// them), partial ones written.
    fn zero_impl(&mut self, offset: u64, len: u64) -> Result<(), BlockError> {
        let end = offset + len;
        let mut off = offset;
        while off < end {
            let in_off = off % self.cs;
            let n = (self.cs - in_off).min(end - off);
            let whole = in_off == 0 && (n == self.cs || off + n == self.h.image_size);
            let gc = off / self.cs;
            match (whole, self.lookup(gc)?) {
                (true, Slot::Zero) => {}
                (true, Slot::Unallocated) if self.backing.is_none() => {}
                (true, Slot::Unallocated) => {
                    self.set_need_check()?;
                    self.set_entry(gc, CLUSTER_ZERO)?;
                }
                _ => self.write_cluster(gc, in_off, &vec![0u8; n as usize])?,
            }
            off += n;
        }
        Ok(())
    }

    fn map_impl(&mut self, offset: u64, len: u64) -> Result<Vec<MapEntry>, BlockError> {
        let end = offset + len;
        let mut out = Vec::new();
        let mut off = offset;
        while off < end {
            let in_off = off % self.cs;
            let n = (self.cs - in_off).min(end - off);
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
            match self.lookup(off / self.cs)? {
                Slot::Data(h) => push_extent(
                    &mut out,
                    MapEntry {
                        data: true,
                        offset: Some(h + in_off),
                        ..base
                    },
                ),
                Slot::Zero => push_extent(&mut out, MapEntry { zero: true, ..base }),
                Slot::Unallocated => crate::backing::map(self.backing.as_mut(), off, n, &mut out)?,
            }
            off += n;
        }
        Ok(out)
    }

    /// Grows the image (QED images never shrink); the new area reads as zeroes.
    fn resize_impl(&mut self, new_size: u64) -> Result<(), BlockError> {
        self.check_writable()?;
        let old = self.h.image_size;
        if new_size < old {
            return Err(BlockError::NotSupported {
                format: "qed",
                operation: "shrinking",
            });
        }
        header::check_geometry(self.cs, self.h.table_size, new_size)
            .map_err(BlockError::InvalidArgument)?;
        self.h.image_size = new_size;
        self.write_header()?;
        // Bytes past the old end in its last cluster, and a longer backing file, must not
        // show through.
        let aligned = old.div_ceil(self.cs) * self.cs;
        if aligned > old {
            if let Slot::Data(_) = self.lookup(old / self.cs)? {
                let n = aligned.min(new_size) - old;
                self.write_impl(old, &vec![0u8; n as usize])?;
            }
        }
        let backing_size = self.backing.as_ref().map_or(0, |b| b.size());
        let end = new_size.min(backing_size);
        if end > old {
            self.zero_impl(old, end - old)?;
        }
        self.clear_need_check()
    }

    fn set_backing_impl(
        &mut self,
        file: Option<&str>,
        format: Option<&str>,
    ) -> Result<(), BlockError> {
        self.check_writable()?;
        let (file, format) = crate::backing::set_backing_args(file, format)?;
        let mut h = self.h.clone();
        let bytes = h.set_backing(file, format).ok_or_else(|| {
            BlockError::InvalidArgument(format!(
                "backing file name does not fit in the {}-byte header",
                self.h.header_bytes()
            ))
        })?;
        self.file.write_at(0, &bytes)?;
        self.file.flush()?;
        self.h = h;
        self.backing_file = file.map(str::to_string);
        // Only raw is recorded ("no probe"); any other format is probed on open, as QEMU does.
        let format = format.filter(|f| *f == "raw");
        self.backing =
            file.map(|name| crate::backing::reopen(&self.path, name, format, self.cache));
        Ok(())
    }
}

impl BlockDriver for Qed {
    fn format_name(&self) -> &'static str {
        "qed"
    }

    fn size(&self) -> u64 {
        self.h.image_size
    }

    fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_range(self.h.image_size, offset, buf.len() as u64)?;
        self.read_impl(offset, buf)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        check_range(self.h.image_size, offset, data.len() as u64)?;
        self.check_writable()?;
        self.write_impl(offset, data)
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        if self.read_only {
            return Ok(());
        }
        self.clear_need_check()
    }

    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), BlockError> {
        check_range(self.h.image_size, offset, len)?;
        self.check_writable()?;
        self.zero_impl(offset, len)
    }

    fn check(&mut self, repair: Repair) -> Result<CheckReport, BlockError> {
        if repair != Repair::None {
            self.check_writable()?;
        }
        // QED can repair only corruptions (by clearing entries); any repair asks for that.
        self.check_impl(repair != Repair::None)
    }

    fn map(&mut self, offset: u64, len: u64) -> Result<Vec<MapEntry>, BlockError> {
        check_range(self.h.image_size, offset, len)?;
        self.map_impl(offset, len)
    }

    fn resize(&mut self, new_size: u64) -> Result<(), BlockError> {
        self.resize_impl(new_size)
    }

    fn set_backing(&mut self, file: Option<&str>, format: Option<&str>) -> Result<(), BlockError> {
        self.set_backing_impl(file, format)
    }
}

impl Drop for Qed {
    fn drop(&mut self) {
        if !self.read_only {
            // A clean close: nothing to check on the next open.
            let _ = self.clear_need_check();
        }
    }
}
