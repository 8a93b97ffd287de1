//! The QED header (QEMU's docs/interop/qed_spec.txt, "Header"): 64 little-endian bytes at the
//! start of the file, then the backing file's name inside the header clusters. Parsing checks
//! every field against the limits QEMU enforces, plus one of ours (table size).

use std::path::Path;

use crate::BlockError;

/// Bytes of the fixed header; a backing file name written by us follows it.
pub const HEADER_LEN: usize = 64;

/// Feature bits (`features`).
pub const F_BACKING_FILE: u64 = 0x01;
pub const F_NEED_CHECK: u64 = 0x02;
pub const F_BACKING_FORMAT_NO_PROBE: u64 = 0x04;
const KNOWN_FEATURES: u64 = F_BACKING_FILE | F_NEED_CHECK | F_BACKING_FORMAT_NO_PROBE;

/// QEMU's limits (block/qed.h).
pub const MIN_CLUSTER_SIZE: u64 = 4 << 10;
pub const MAX_CLUSTER_SIZE: u64 = 64 << 20;
pub const MAX_TABLE_SIZE: u64 = 16;
/// Ours: QEMU allows tables of up to 16 clusters of 64 MiB (1 GiB each, held in memory);
/// anything above 32 MiB is refused rather than allocated on a hostile header's word.
pub const MAX_TABLE_BYTES: u64 = 32 << 20;
/// QEMU reads the name into a PATH_MAX buffer.
const MAX_BACKING_NAME: u32 = 4095;

/// A parsed, validated header.
#[derive(Debug, Clone, Default)]
pub struct Header {
    pub cluster_size: u64,
    pub table_size: u64,
    pub header_size: u64,
    pub features: u64,
    pub compat_features: u64,
    pub autoclear_features: u64,
    pub l1_table_offset: u64,
    pub image_size: u64,
    pub backing_filename_offset: u32,
    pub backing_filename_size: u32,
}

fn le32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn le64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// The largest image a geometry can address: two levels of `table_size * cluster_size / 8`
/// entries, each a cluster.
pub fn max_image_size(cluster_size: u64, table_size: u64) -> u64 {
    let entries = table_size * cluster_size / 8;
    entries.saturating_mul(entries).saturating_mul(cluster_size)
}

/// Checks a geometry as `qemu-img create` and open do; the error says what is wrong.
pub fn check_geometry(cluster_size: u64, table_size: u64, size: u64) -> Result<(), String> {
    if !cluster_size.is_power_of_two()
        || !(MIN_CLUSTER_SIZE..=MAX_CLUSTER_SIZE).contains(&cluster_size)
    {
        return Err(format!(
            "cluster size {cluster_size} must be a power of two from {MIN_CLUSTER_SIZE} to {MAX_CLUSTER_SIZE}"
        ));
    }
    if !table_size.is_power_of_two() || table_size > MAX_TABLE_SIZE {
        return Err(format!(
            "table size {table_size} must be a power of two from 1 to {MAX_TABLE_SIZE} clusters"
        ));
    }
    if table_size * cluster_size > MAX_TABLE_BYTES {
        return Err(format!(
            "tables of {} bytes exceed this implementation's {MAX_TABLE_BYTES}",
            table_size * cluster_size
        ));
    }
    let max = max_image_size(cluster_size, table_size);
    if !size.is_multiple_of(512) || size > max {
        return Err(format!(
            "image size {size} must be a multiple of 512 of at most {max} bytes"
        ));
    }
    Ok(())
}

impl Header {
    /// Parses and validates the first [`HEADER_LEN`] bytes of a file.
    pub fn parse(path: &Path, b: &[u8]) -> Result<Header, BlockError> {
        let bad = |r: String| BlockError::corrupt(path, r);
        if b.len() < HEADER_LEN || &b[0..4] != crate::probe::QED_MAGIC {
            return Err(bad("not a QED image (bad magic)".into()));
        }
        let h = Header {
            cluster_size: le32(b, 4) as u64,
            table_size: le32(b, 8) as u64,
            header_size: le32(b, 12) as u64,
            features: le64(b, 16),
            compat_features: le64(b, 24),
            autoclear_features: le64(b, 32),
            l1_table_offset: le64(b, 40),
            image_size: le64(b, 48),
            backing_filename_offset: le32(b, 56),
            backing_filename_size: le32(b, 60),
        };
        if h.features & !KNOWN_FEATURES != 0 {
            return Err(BlockError::unsupported(
                path,
                format!("QED features {:#x}", h.features & !KNOWN_FEATURES),
            ));
        }
        check_geometry(h.cluster_size, h.table_size, h.image_size).map_err(|r| {
            if r.contains("implementation") {
                BlockError::unsupported(path, r)
            } else {
                bad(r)
            }
        })?;
        if h.header_size == 0 {
            return Err(bad("header_size of 0 clusters".into()));
        }
        if h.features & F_BACKING_FILE != 0 {
            let end = h.backing_filename_offset as u64 + h.backing_filename_size as u64;
            if h.backing_filename_size > MAX_BACKING_NAME || end > h.header_bytes() {
                return Err(bad(
                    "backing file name is too long or outside the header clusters".into(),
                ));
            }
        }
        Ok(h)
    }

    /// Bytes of the header clusters.
    pub fn header_bytes(&self) -> u64 {
        self.header_size * self.cluster_size
    }

    /// The fixed header as stored.
    pub fn serialize(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(crate::probe::QED_MAGIC);
        b[4..8].copy_from_slice(&(self.cluster_size as u32).to_le_bytes());
        b[8..12].copy_from_slice(&(self.table_size as u32).to_le_bytes());
        b[12..16].copy_from_slice(&(self.header_size as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.features.to_le_bytes());
        b[24..32].copy_from_slice(&self.compat_features.to_le_bytes());
        b[32..40].copy_from_slice(&self.autoclear_features.to_le_bytes());
        b[40..48].copy_from_slice(&self.l1_table_offset.to_le_bytes());
        b[48..56].copy_from_slice(&self.image_size.to_le_bytes());
        b[56..60].copy_from_slice(&self.backing_filename_offset.to_le_bytes());
        b[60..64].copy_from_slice(&self.backing_filename_size.to_le_bytes());
        b
    }

    /// Records `file` (of `format`) as the backing file, its name right after the fixed
    /// header: the bytes to write at offset 0, or `None` if they do not fit the header
    /// clusters.
    pub fn set_backing(&mut self, file: Option<&str>, format: Option<&str>) -> Option<Vec<u8>> {
        self.features &= !(F_BACKING_FILE | F_BACKING_FORMAT_NO_PROBE);
        self.backing_filename_offset = 0;
        self.backing_filename_size = 0;
        let name = file.unwrap_or("");
        if name.len() as u64 > MAX_BACKING_NAME as u64
            || (HEADER_LEN + name.len()) as u64 > self.header_bytes()
        {
            return None;
        }
        if file.is_some() {
            self.features |= F_BACKING_FILE;
            if format == Some("raw") {
                self.features |= F_BACKING_FORMAT_NO_PROBE;
            }
            self.backing_filename_offset = HEADER_LEN as u32;
            self.backing_filename_size = name.len() as u32;
        }
        let mut out = self.serialize().to_vec();
        out.extend_from_slice(name.as_bytes());
        Some(out)
    }
}
