//! The qcow2 header and its extensions (docs/interop/qcow2.txt, "Header" and "Header
//! extensions"): parsing with every field checked against the limits QEMU enforces, and
//! serialising a new header for `create`.

use std::path::Path;

use crate::BlockError;

/// Bytes of a version 2 header.
pub const V2_HEADER_LEN: u32 = 72;
/// Bytes of a version 3 header without the compression type field.
pub const V3_HEADER_MIN_LEN: u32 = 104;
/// Bytes of the version 3 header this crate writes (with the compression type, padded).
pub const V3_HEADER_LEN: u32 = 112;

/// Field offsets, for updating single fields in place.
pub const OFF_REFTABLE: u64 = 48;
pub const OFF_SNAPSHOTS: u64 = 60;
pub const OFF_INCOMPAT: u64 = 72;
pub const OFF_AUTOCLEAR: u64 = 88;

/// Incompatible feature bits.
pub const INCOMPAT_DIRTY: u64 = 1 << 0;
pub const INCOMPAT_CORRUPT: u64 = 1 << 1;
pub const INCOMPAT_DATA_FILE: u64 = 1 << 2;
pub const INCOMPAT_COMPRESSION: u64 = 1 << 3;
pub const INCOMPAT_EXTL2: u64 = 1 << 4;
/// Compatible feature bits.
pub const COMPAT_LAZY_REFCOUNTS: u64 = 1 << 0;

/// Header extension types.
const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_FEATURE_TABLE: u32 = 0x6803_f857;
const EXT_DATA_FILE: u32 = 0x4441_5441;
const EXT_CRYPTO: u32 = 0x0537_be77;

/// QEMU's limits (block/qcow2.h).
pub const MIN_CLUSTER_BITS: u32 = 9;
pub const MAX_CLUSTER_BITS: u32 = 21;
pub const MAX_L1_BYTES: u64 = 32 << 20;
pub const MAX_REFTABLE_BYTES: u64 = 8 << 20;
pub const MAX_SNAPSHOTS: u32 = 65536;
const MAX_BACKING_NAME: u32 = 1023;

/// The feature names this crate writes into new v3 images.
const FEATURE_NAMES: &[(u8, u8, &str)] = &[
    (0, 0, "dirty bit"),
    (0, 1, "corrupt bit"),
    (0, 2, "external data file"),
    (0, 3, "compression type"),
    (0, 4, "extended L2 entries"),
    (1, 0, "lazy refcounts"),
    (2, 0, "bitmaps"),
    (2, 1, "raw external data"),
];

/// A parsed, validated header.
#[derive(Debug, Clone, Default)]
pub struct Header {
    pub version: u32,
    pub cluster_bits: u32,
    pub size: u64,
    pub l1_size: u32,
    pub l1_table_offset: u64,
    pub refcount_table_offset: u64,
    pub refcount_table_clusters: u32,
    pub nb_snapshots: u32,
    pub snapshots_offset: u64,
    pub incompatible: u64,
    pub compatible: u64,
    pub autoclear: u64,
    pub refcount_order: u32,
    pub header_length: u32,
    pub backing_file: Option<String>,
    pub backing_fmt: Option<String>,
}

fn be32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_be_bytes(a)
}

fn be64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_be_bytes(a)
}

/// The number of L1 entries a disk of `size` bytes needs.
pub fn l1_entries_for(size: u64, cluster_bits: u32) -> u64 {
    let l2_cover_bits = cluster_bits + (cluster_bits - 3);
    size.div_ceil(1u64 << l2_cover_bits)
}

impl Header {
    /// Bytes per cluster.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Parses the header from `buf`, the image's first cluster (or as much of it as the file
    /// has, zero-padded), refusing anything malformed, hostile or unsupported.
    /// `head_len` is how many bytes of `buf` came from the file.
    pub fn parse(path: &Path, buf: &[u8]) -> Result<Header, BlockError> {
        let bad = |r: String| BlockError::corrupt(path, r);
        if buf.len() < V3_HEADER_MIN_LEN as usize || &buf[0..4] != crate::probe::QCOW2_MAGIC {
            return Err(bad("not a qcow2 image (bad magic)".into()));
        }
        let version = be32(buf, 4);
        if version != 2 && version != 3 {
            return Err(BlockError::unsupported(
                path,
                format!("qcow2 version {version}"),
            ));
        }
        let cluster_bits = be32(buf, 20);
        if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
            return Err(bad(format!(
                "cluster_bits {cluster_bits} is outside {MIN_CLUSTER_BITS}..={MAX_CLUSTER_BITS} (512 B to 2 MiB clusters)"
            )));
        }
        let cs = 1u64 << cluster_bits;
        if (buf.len() as u64) < cs {
            return Err(bad("header cluster is truncated".into()));
        }
        let mut h = Header {
            version,
            cluster_bits,
            size: be64(buf, 24),
            l1_size: be32(buf, 36),
            l1_table_offset: be64(buf, 40),
            refcount_table_offset: be64(buf, 48),
            refcount_table_clusters: be32(buf, 56),
            nb_snapshots: be32(buf, 60),
            snapshots_offset: be64(buf, 64),
            refcount_order: 4,
            header_length: V2_HEADER_LEN,
            ..Default::default()
        };
        let crypt = be32(buf, 32);
        if crypt != 0 {
            return Err(BlockError::unsupported(
                path,
                format!("encryption (crypt_method {crypt})"),
            ));
        }
        let mut compression_type = 0u8;
        if version == 3 {
            h.incompatible = be64(buf, 72);
            h.compatible = be64(buf, 80);
            h.autoclear = be64(buf, 88);
            h.refcount_order = be32(buf, 96);
            h.header_length = be32(buf, 100);
            if h.header_length < V3_HEADER_MIN_LEN || h.header_length as u64 > cs {
                return Err(bad(format!("header_length {} is invalid", h.header_length)));
            }
            if h.header_length > V3_HEADER_MIN_LEN {
                compression_type = buf[104];
            }
        }
        if h.refcount_order > 6 {
            return Err(bad(format!(
                "refcount_order {} is above 6 (64-bit refcounts)",
                h.refcount_order
            )));
        }
        // Incompatible features: dirty and corrupt are handled; the rest are refused.
        if h.incompatible & INCOMPAT_DATA_FILE != 0 {
            return Err(BlockError::unsupported(path, "feature: external data file"));
        }
        if h.incompatible & INCOMPAT_EXTL2 != 0 {
            return Err(BlockError::unsupported(
                path,
                "feature: extended L2 entries",
            ));
        }
        if h.incompatible & INCOMPAT_COMPRESSION != 0 {
            if compression_type != 0 {
                return Err(BlockError::unsupported(
                    path,
                    format!("compression type {compression_type} (only zlib)"),
                ));
            }
        } else if compression_type != 0 {
            return Err(bad(
                "compression type set without its incompatible feature bit".into(),
            ));
        }
        let known = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_COMPRESSION;
        if h.incompatible & !known != 0 {
            return Err(BlockError::unsupported(
                path,
                format!("incompatible features {:#x}", h.incompatible & !known),
            ));
        }
        // Sizes.
        let l1_needed = l1_entries_for(h.size, cluster_bits);
        if h.size > i64::MAX as u64 || l1_needed * 8 > MAX_L1_BYTES {
            return Err(bad(format!("virtual size {} is too large", h.size)));
        }
        if (h.l1_size as u64) * 8 > MAX_L1_BYTES {
            return Err(bad(format!(
                "L1 table of {} entries is too large",
                h.l1_size
            )));
        }
        if (h.l1_size as u64) < l1_needed {
            return Err(bad(format!(
                "L1 table of {} entries is too small for a {}-byte disk",
                h.l1_size, h.size
            )));
        }
        if h.l1_size > 0 && (!h.l1_table_offset.is_multiple_of(cs) || h.l1_table_offset == 0) {
            return Err(bad(format!(
                "L1 table offset {:#x} is invalid",
                h.l1_table_offset
            )));
        }
        if h.refcount_table_clusters == 0
            || h.refcount_table_clusters as u64 * cs > MAX_REFTABLE_BYTES
        {
            return Err(bad(format!(
                "refcount table of {} clusters is invalid",
                h.refcount_table_clusters
            )));
        }
        if !h.refcount_table_offset.is_multiple_of(cs) || h.refcount_table_offset == 0 {
            return Err(bad(format!(
                "refcount table offset {:#x} is invalid",
                h.refcount_table_offset
            )));
        }
        if h.nb_snapshots > MAX_SNAPSHOTS {
            return Err(bad(format!("{} snapshots is too many", h.nb_snapshots)));
        }
        if h.nb_snapshots > 0 && (!h.snapshots_offset.is_multiple_of(cs) || h.snapshots_offset == 0)
        {
            return Err(bad(format!(
                "snapshot table offset {:#x} is invalid",
                h.snapshots_offset
            )));
        }
        // The backing file's name.
        let bf_off = be64(buf, 8);
        let bf_len = be32(buf, 16);
        if bf_off != 0 {
            if bf_len > MAX_BACKING_NAME || bf_off.checked_add(bf_len as u64).is_none_or(|e| e > cs)
            {
                return Err(bad(
                    "backing file name is too long or outside the header cluster".into(),
                ));
            }
            let name = &buf[bf_off as usize..(bf_off + bf_len as u64) as usize];
            let name = String::from_utf8(name.to_vec())
                .map_err(|_| bad("backing file name is not UTF-8".into()))?;
            if !name.is_empty() {
                h.backing_file = Some(name);
            }
        }
        h.parse_extensions(path, buf)?;
        Ok(h)
    }

    fn parse_extensions(&mut self, path: &Path, buf: &[u8]) -> Result<(), BlockError> {
        let bad = |r: &str| BlockError::corrupt(path, r.to_string());
        let cs = self.cluster_size() as usize;
        let mut pos = self.header_length as usize;
        while pos + 8 <= cs {
            let ty = be32(buf, pos);
            let len = be32(buf, pos + 4) as usize;
            pos += 8;
            if ty == EXT_END {
                return Ok(());
            }
            let end = pos
                .checked_add(len)
                .filter(|e| *e <= cs)
                .ok_or_else(|| bad("header extension beyond the header cluster"))?;
            let data = &buf[pos..end];
            match ty {
                EXT_BACKING_FORMAT => {
                    let s = String::from_utf8(data.to_vec())
                        .map_err(|_| bad("backing format name is not UTF-8"))?;
                    self.backing_fmt = Some(s.trim_end_matches('\0').to_string());
                }
                EXT_DATA_FILE => {
                    return Err(BlockError::unsupported(path, "feature: external data file"))
                }
                EXT_CRYPTO => return Err(BlockError::unsupported(path, "encryption")),
                // Feature names, bitmaps and unknown extensions are kept as they are.
                _ => {}
            }
            pos = end.div_ceil(8) * 8;
        }
        Ok(())
    }

    /// The header cluster `old` (whose fixed header is `header_length` bytes) with its backing
    /// file name and backing format extension replaced; every other extension is kept, in
    /// order. `None` if the result does not fit in the cluster.
    pub fn with_backing(
        old: &[u8],
        header_length: usize,
        file: Option<&str>,
        format: Option<&str>,
    ) -> Option<Vec<u8>> {
        let cs = old.len();
        let mut kept: Vec<(u32, &[u8])> = Vec::new();
        let mut pos = header_length;
        while pos + 8 <= cs {
            let ty = be32(old, pos);
            let len = be32(old, pos + 4) as usize;
            if ty == EXT_END {
                break;
            }
            let end = (pos + 8).checked_add(len).filter(|e| *e <= cs)?;
            if ty != EXT_BACKING_FORMAT {
                kept.push((ty, &old[pos + 8..end]));
            }
            pos = end.div_ceil(8) * 8;
        }
        let mut b = vec![0u8; cs];
        b[..header_length].copy_from_slice(&old[..header_length]);
        let mut pos = header_length;
        let mut ext = |b: &mut Vec<u8>, ty: u32, data: &[u8]| -> Option<()> {
            let end = pos + 8 + data.len().div_ceil(8) * 8;
            if end > cs {
                return None;
            }
            b[pos..pos + 4].copy_from_slice(&ty.to_be_bytes());
            b[pos + 4..pos + 8].copy_from_slice(&(data.len() as u32).to_be_bytes());
            b[pos + 8..pos + 8 + data.len()].copy_from_slice(data);
            pos = end;
            Some(())
        };
        if let Some(f) = format {
            ext(&mut b, EXT_BACKING_FORMAT, f.as_bytes())?;
        }
        for (ty, data) in kept {
            ext(&mut b, ty, data)?;
        }
        ext(&mut b, EXT_END, &[])?;
        let (off, len) = match file {
            Some(name) if name.len() as u32 <= MAX_BACKING_NAME && pos + name.len() <= cs => {
                b[pos..pos + name.len()].copy_from_slice(name.as_bytes());
                (pos as u64, name.len() as u32)
            }
            Some(_) => return None,
            None => (0, 0),
        };
        b[8..16].copy_from_slice(&off.to_be_bytes());
        b[16..20].copy_from_slice(&len.to_be_bytes());
        Some(b)
    }

    /// Serialises a new header cluster for `create` (backing file name and extensions
    /// included); `self.header_length` is ignored and set from the version. The feature name
    /// table is left out when it does not fit (512-byte clusters), as QEMU does; `None` if
    /// even the backing file's names do not fit.
    pub fn serialize(&self) -> Option<Vec<u8>> {
        let cs = self.cluster_size() as usize;
        let mut b = vec![0u8; cs];
        let put32 =
            |b: &mut Vec<u8>, off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_be_bytes());
        let put64 =
            |b: &mut Vec<u8>, off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_be_bytes());
        b[0..4].copy_from_slice(crate::probe::QCOW2_MAGIC);
        put32(&mut b, 4, self.version);
        put32(&mut b, 20, self.cluster_bits);
        put64(&mut b, 24, self.size);
        put32(&mut b, 36, self.l1_size);
        put64(&mut b, 40, self.l1_table_offset);
        put64(&mut b, 48, self.refcount_table_offset);
        put32(&mut b, 56, self.refcount_table_clusters);
        put32(&mut b, 60, self.nb_snapshots);
        put64(&mut b, 64, self.snapshots_offset);
        let mut pos = if self.version >= 3 {
            put64(&mut b, 72, self.incompatible);
            put64(&mut b, 80, self.compatible);
            put64(&mut b, 88, self.autoclear);
            put32(&mut b, 96, self.refcount_order);
            put32(&mut b, 100, V3_HEADER_LEN);
            V3_HEADER_LEN as usize
        } else {
            V2_HEADER_LEN as usize
        };
        let fmt_len = self
            .backing_fmt
            .as_ref()
            .map_or(0, |f| 8 + f.len().div_ceil(8) * 8);
        let name_len = self.backing_file.as_ref().map_or(0, |n| n.len());
        let table_len = 8 + FEATURE_NAMES.len() * 48;
        if pos + fmt_len + 8 + name_len > cs {
            return None;
        }
        let with_table = self.version >= 3 && pos + fmt_len + table_len + 8 + name_len <= cs;
        let ext = |b: &mut Vec<u8>, pos: &mut usize, ty: u32, data: &[u8]| {
            put32(b, *pos, ty);
            put32(b, *pos + 4, data.len() as u32);
            b[*pos + 8..*pos + 8 + data.len()].copy_from_slice(data);
            *pos += 8 + data.len().div_ceil(8) * 8;
        };
        if let Some(fmt) = &self.backing_fmt {
            ext(&mut b, &mut pos, EXT_BACKING_FORMAT, fmt.as_bytes());
        }
        if with_table {
            let mut table = Vec::new();
            for (ty, bit, name) in FEATURE_NAMES {
                let mut e = [0u8; 48];
                e[0] = *ty;
                e[1] = *bit;
                e[2..2 + name.len()].copy_from_slice(name.as_bytes());
                table.extend_from_slice(&e);
            }
            ext(&mut b, &mut pos, EXT_FEATURE_TABLE, &table);
        }
        ext(&mut b, &mut pos, EXT_END, &[]);
        if let Some(name) = &self.backing_file {
            put64(&mut b, 8, pos as u64);
            put32(&mut b, 16, name.len() as u32);
            b[pos..pos + name.len()].copy_from_slice(name.as_bytes());
        }
        Some(b)
    }
}
