//! A streaming qcow2 writer for `convert`: a new image written front to back, data clusters
//! (plain or compressed) appended as they come, then the L2 tables, the L1 table and the
//! refcount structures after them, and the header last (docs/interop/qcow2.txt).
//!
//! Why here and not in tandem-block: the block layer reads compressed clusters but does not
//! write them, and `convert -c` needs that. Compressed streams are packed byte by byte into
//! host clusters as QEMU packs them (a host cluster's refcount counts the streams in it); a
//! stream that does not shrink below a cluster is stored plainly, as QEMU does.
//!
//! Known warts: the whole image's L2 tables and refcounts are held in memory until
//! [`Qcow2Writer::finish`] (8 bytes per guest and per host cluster); each guest cluster may
//! be written once.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use tandem_block::CreateOptions;

use super::deflate;
use super::ImgError;

/// L1/L2 entry bit 63: refcount exactly 1.
const COPIED: u64 = 1 << 63;
/// L2 entry bit 62: compressed cluster.
const COMPRESSED: u64 = 1 << 62;
/// L2 entry bit 0 (v3): reads as zeroes.
const ZERO: u64 = 1;
/// Header extension: backing file format.
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
/// Bytes of the v3 header written (with the compression type byte, padded).
const V3_HEADER_LEN: usize = 112;
/// Pending appended data is written out in pieces of this size.
const FLUSH_BYTES: usize = 4 << 20;

/// A qcow2 image being written front to back.
pub struct Qcow2Writer {
    file: File,
    name: String,
    cs: u64,
    cluster_bits: u32,
    size: u64,
    version: u32,
    refcount_order: u32,
    lazy: bool,
    backing: Option<String>,
    backing_fmt: Option<String>,
    /// L2 tables by L1 index.
    l2: BTreeMap<u64, Vec<u64>>,
    /// Refcount of each host cluster.
    refcounts: Vec<u64>,
    /// The next free byte of the file.
    end: u64,
    /// Appended bytes not yet written; they end at `end`.
    pending: Vec<u8>,
}

impl std::fmt::Debug for Qcow2Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qcow2Writer")
            .field("name", &self.name)
            .finish()
    }
}

impl Qcow2Writer {
    /// Creates (or truncates) `name` for a disk of `size` bytes with the options `o`.
    pub fn create(name: &str, o: &CreateOptions, size: u64) -> Result<Self, ImgError> {
        let bad = |s: String| Err(ImgError::file(name, s));
        let cs = o.cluster_size as u64;
        if !cs.is_power_of_two() || !(512..=2 << 20).contains(&cs) {
            return bad(format!(
                "Cluster size must be a power of two between 512 and 2048k, not {cs}"
            ));
        }
        if o.version != 2 && o.version != 3 {
            return bad(format!("Invalid qcow2 version {}", o.version));
        }
        if !o.refcount_bits.is_power_of_two() || o.refcount_bits > 64 {
            return bad("Refcount width must be a power of two and may not exceed 64 bits".into());
        }
        if o.version == 2 && (o.refcount_bits != 16 || o.lazy_refcounts) {
            return bad("compat=0.10 images have 16-bit refcounts and no lazy refcounts".into());
        }
        if size > i64::MAX as u64 {
            return bad(format!("Image size {size} is too large"));
        }
        let file = File::create(name).map_err(|e| ImgError::file(name, e))?;
        let w = Qcow2Writer {
            file,
            name: name.to_string(),
            cs,
            cluster_bits: cs.trailing_zeros(),
            size,
            version: o.version,
            refcount_order: o.refcount_bits.trailing_zeros(),
            lazy: o.lazy_refcounts,
            backing: o.backing_file.clone(),
            backing_fmt: o.backing_fmt.clone(),
            l2: BTreeMap::new(),
            refcounts: vec![1],
            end: cs,
            pending: Vec::new(),
        };
        // The header must fit its cluster; find out now rather than after the copy.
        w.header(0, 0, 0, 0)?;
        Ok(w)
    }

    /// Bytes per cluster.
    pub fn cluster_size(&self) -> u64 {
        self.cs
    }

    fn max_refcount(&self) -> u64 {
        match 1u32 << self.refcount_order {
            64 => u64::MAX,
            bits => (1u64 << bits) - 1,
        }
    }

    fn io(&self, e: std::io::Error) -> ImgError {
        ImgError::file(&self.name, e)
    }

    fn set_l2(&mut self, gc: u64, entry: u64) -> Result<(), ImgError> {
        if gc >= self.size.div_ceil(self.cs) {
            return Err(ImgError::file(
                &self.name,
                "write beyond the end of the disk",
            ));
        }
        let per = self.cs / 8;
        let table = self
            .l2
            .entry(gc / per)
            .or_insert_with(|| vec![0; per as usize]);
        table[(gc % per) as usize] = entry;
        Ok(())
    }

    fn incref(&mut self, first: u64, last: u64) {
        if self.refcounts.len() as u64 <= last {
            self.refcounts.resize(last as usize + 1, 0);
        }
        for c in first..=last {
            self.refcounts[c as usize] += 1;
        }
    }

    /// Appends `data` at the end of the file; returns its offset.
    fn append(&mut self, data: &[u8]) -> Result<u64, ImgError> {
        let at = self.end;
        self.pending.extend_from_slice(data);
        self.end += data.len() as u64;
        if self.pending.len() >= FLUSH_BYTES {
            self.flush_pending()?;
        }
        Ok(at)
    }

    fn flush_pending(&mut self) -> Result<(), ImgError> {
        let start = self.end - self.pending.len() as u64;
        self.file
            .write_all_at(&self.pending, start)
            .map_err(|e| self.io(e))?;
        self.pending.clear();
        Ok(())
    }

    /// Moves the end of the file to the next cluster boundary.
    fn align(&mut self) -> Result<(), ImgError> {
        let pad = (self.cs - self.end % self.cs) % self.cs;
        if pad > 0 {
            let zeros = vec![0u8; pad as usize];
            self.append(&zeros)?;
        }
        Ok(())
    }

    /// Stores guest clusters from `gc` on with `data` (whole clusters; the disk's last one may
    /// be short and is padded).
    pub fn write_data(&mut self, gc: u64, data: &[u8]) -> Result<(), ImgError> {
        self.align()?;
        let host = if (data.len() as u64).is_multiple_of(self.cs) {
            self.append(data)?
        } else {
            let at = self.append(data)?;
            self.align()?;
            at
        };
        let n = (data.len() as u64).div_ceil(self.cs);
        for k in 0..n {
            self.set_l2(gc + k, (host + k * self.cs) | COPIED)?;
        }
        let first = host / self.cs;
        self.incref(first, first + n - 1);
        Ok(())
    }

    /// Stores guest cluster `gc` compressed, or plainly when it does not shrink.
    pub fn write_compressed(&mut self, gc: u64, data: &[u8]) -> Result<(), ImgError> {
        let mut cluster;
        let full = if data.len() as u64 == self.cs {
            data
        } else {
            cluster = vec![0u8; self.cs as usize];
            let n = data.len().min(cluster.len());
            cluster[..n].copy_from_slice(&data[..n]);
            &cluster
        };
        let Some(z) = deflate::compress(full, self.cs as usize - 1) else {
            return self.write_data(gc, data);
        };
        // Share the current host cluster with earlier streams while its refcount allows.
        let cur = self.end / self.cs;
        if !self.end.is_multiple_of(self.cs)
            && self.refcounts.get(cur as usize).copied().unwrap_or(0) >= self.max_refcount()
        {
            self.align()?;
        }
        let off = self.append(&z)?;
        let len = z.len() as u64;
        let sectors = ((off + len - 1) >> 9) - (off >> 9);
        let shift = 62 - (self.cluster_bits - 8);
        self.set_l2(gc, COMPRESSED | (sectors << shift) | off)?;
        // QEMU counts a stream's clusters up to the end of its last 512-byte sector.
        let sector_end = ((off >> 9) + sectors + 1) * 512;
        self.incref(off / self.cs, (sector_end - 1) / self.cs);
        Ok(())
    }

    /// Makes guest cluster `gc` read as zeroes over a backing file (v3: the zero flag; v2:
    /// stored zeroes).
    pub fn write_zero(&mut self, gc: u64) -> Result<(), ImgError> {
        if self.version >= 3 {
            self.set_l2(gc, ZERO)
        } else {
            let n = self.cs.min(self.size - (gc * self.cs).min(self.size));
            self.write_data(gc, &vec![0u8; n as usize])
        }
    }

    /// The header cluster for these table positions.
    fn header(
        &self,
        l1_off: u64,
        l1_size: u64,
        rt_off: u64,
        rt_clusters: u64,
    ) -> Result<Vec<u8>, ImgError> {
        let mut h = vec![0u8; self.cs as usize];
        let put32 = |h: &mut [u8], o: usize, v: u32| h[o..o + 4].copy_from_slice(&v.to_be_bytes());
        let put64 = |h: &mut [u8], o: usize, v: u64| h[o..o + 8].copy_from_slice(&v.to_be_bytes());
        h[0..4].copy_from_slice(b"QFI\xfb");
        put32(&mut h, 4, self.version);
        put32(&mut h, 20, self.cluster_bits);
        put64(&mut h, 24, self.size);
        put32(&mut h, 36, l1_size as u32);
        put64(&mut h, 40, l1_off);
        put64(&mut h, 48, rt_off);
        put32(&mut h, 56, rt_clusters as u32);
        let mut at = 72;
        if self.version >= 3 {
            put64(&mut h, 80, if self.lazy { 1 } else { 0 });
            put32(&mut h, 96, self.refcount_order);
            put32(&mut h, 100, V3_HEADER_LEN as u32);
            at = V3_HEADER_LEN;
        }
        let too_long = || ImgError::file(&self.name, "the backing file name is too long");
        if let Some(fmt) = &self.backing_fmt {
            let len = fmt.len();
            let end = at + 8 + len.div_ceil(8) * 8;
            if end + 8 > h.len() {
                return Err(too_long());
            }
            put32(&mut h, at, EXT_BACKING_FORMAT);
            put32(&mut h, at + 4, len as u32);
            h[at + 8..at + 8 + len].copy_from_slice(fmt.as_bytes());
            at = end;
        }
        at += 8; // the end-of-extensions marker, all zeroes
        if let Some(b) = &self.backing {
            if b.len() > 1023 || at + b.len() > h.len() {
                return Err(too_long());
            }
            h[at..at + b.len()].copy_from_slice(b.as_bytes());
            put64(&mut h, 8, at as u64);
            put32(&mut h, 16, b.len() as u32);
        }
        Ok(h)
    }

    /// Writes the tables and the header.
    pub fn finish(mut self) -> Result<(), ImgError> {
        self.align()?;
        let cs = self.cs;
        // L2 tables.
        let tables = std::mem::take(&mut self.l2);
        let mut l1 = vec![0u64; (self.size.div_ceil(cs)).div_ceil(cs / 8) as usize];
        for (i, table) in &tables {
            let bytes: Vec<u8> = table.iter().flat_map(|e| e.to_be_bytes()).collect();
            let at = self.append(&bytes)?;
            self.incref(at / cs, at / cs);
            if let Some(e) = l1.get_mut(*i as usize) {
                *e = at | COPIED;
            }
        }
        // The L1 table.
        let l1_bytes: Vec<u8> = l1.iter().flat_map(|e| e.to_be_bytes()).collect();
        let l1_off = if l1.is_empty() {
            0
        } else {
            let at = self.append(&l1_bytes)?;
            self.align()?;
            self.incref(at / cs, (self.end - 1) / cs);
            at
        };
        // Refcount table and blocks, which count themselves.
        let bits = 1u64 << self.refcount_order;
        let per = cs * 8 / bits;
        let used = self.end / cs;
        let (mut rt, mut rb) = (1u64, 1u64);
        loop {
            let total = used + rt + rb;
            let (nrb, nrt) = (total.div_ceil(per), (total.div_ceil(per) * 8).div_ceil(cs));
            if (nrb, nrt) == (rb, rt) {
                break;
            }
            (rb, rt) = (nrb.max(rb), nrt.max(rt));
        }
        let rt_off = self.end;
        let total = used + rt + rb;
        self.incref(used, total - 1);
        let max = self.max_refcount();
        if let Some(c) = self.refcounts.iter().position(|r| *r > max) {
            return Err(ImgError::file(
                &self.name,
                format!("refcount of host cluster {c} overflows refcount_bits={bits}"),
            ));
        }
        let mut table = vec![0u8; (rt * cs) as usize];
        for k in 0..rb {
            let off = (used + rt + k) * cs;
            table[(k * 8) as usize..(k * 8 + 8) as usize].copy_from_slice(&off.to_be_bytes());
        }
        self.append(&table)?;
        let mut blocks = vec![0u8; (rb * cs) as usize];
        for (c, r) in self.refcounts.iter().enumerate() {
            set_refcount(&mut blocks, c as u64, self.refcount_order, *r);
        }
        self.append(&blocks)?;
        self.flush_pending()?;
        let head = self.header(l1_off, l1.len() as u64, rt_off, rt)?;
        // No fdatasync: qemu-img convert writes its target with cache=unsafe too.
        self.file.write_all_at(&head, 0).map_err(|e| self.io(e))
    }
}

/// Sets refcount `index` in refcount blocks `blocks` of entries 2^`order` bits wide (narrow
/// entries fill each byte from its least significant bit; wide ones are big-endian).
fn set_refcount(blocks: &mut [u8], index: u64, order: u32, value: u64) {
    let bits = 1u64 << order;
    if bits < 8 {
        let per_byte = 8 / bits;
        let Some(b) = blocks.get_mut((index / per_byte) as usize) else {
            return;
        };
        let shift = (index % per_byte) * bits;
        let mask = ((1u64 << bits) - 1) as u8;
        *b = (*b & !(mask << shift)) | (((value as u8) & mask) << shift);
    } else {
        let bytes = (bits / 8) as usize;
        let at = index as usize * bytes;
        if let Some(slot) = blocks.get_mut(at..at + bytes) {
            slot.copy_from_slice(&value.to_be_bytes()[8 - bytes..]);
        }
    }
}
