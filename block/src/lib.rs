//! The block layer: disk images behind one [`BlockDriver`] trait, as QEMU's
//! BlockDriverState is to its devices. Formats (raw, qcow2, QED) are drivers found by name in
//! a registry or probed by magic; a format driver reads and writes its image through a
//! protocol (a host file or block device), and may chain to a backing image. Nothing here
//! knows which device (virtio-blk, later others) uses a disk.
//!
//! Decision, imago vs our own qcow2: we write our own. imago 0.2.6 (Hanna Czenczek's, MIT)
//! builds with Rust 1.95 and has a sync API, but only as a cargo feature (`sync`) that its
//! build script makes mutually exclusive with the default `async` one (tokio), a hazard once
//! any other crate of the workspace enables the default; and it lacks what the issue asks for:
//! internal snapshots (its snapshot fields are read-only, "TODO"), the dirty bit with lazy
//! refcounts (it refuses dirty images as an unknown incompatible feature), refcount rebuild and
//! `check`/repair. Adding those to it would mean reworking its allocator from outside. Ours is
//! synchronous (the event-loop thread and vCPU threads call it directly), follows QEMU's
//! block/qcow2*.c split, uses `flate2` (pure-Rust backend) for compressed clusters, and is
//! tested against the real qemu-img as the oracle.
//!
//! Entry points: [`open`] (by path, with [`OpenOptions`]: `format` or probing, `read_only`,
//! [`CacheMode`]), [`create`] (raw, qcow2 v2/v3, QED with [`CreateOptions`];
//! [`qed::create_with_table_size`] for QED's `table_size`), and on an open
//! [`BlockDriver`]: reads, writes, flush, discard, write_zeroes, the snapshot operations,
//! [`BlockDriver::check`], [`BlockDriver::map`], [`BlockDriver::resize`],
//! [`BlockDriver::set_backing`] and [`BlockDriver::write_compressed`].
//!
//! Known warts: one request at a time per image (`&mut self`), served cluster by cluster;
//! internal snapshots hold disk state only (no VM state area yet); a qcow2 check holds one
//! 32-bit counter per cluster of the file in memory (QED's one bit); QED images only grow.

pub(crate) mod backing;
pub(crate) mod cache;
pub mod error;
pub mod file;
pub mod probe;
pub mod qcow2;
pub mod qed;
pub mod raw;
pub mod registry;

pub use error::BlockError;
pub use registry::{create, open, CacheMode, CreateOptions, OpenOptions};

/// One internal snapshot, as `qemu-img snapshot -l` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The unique id (QEMU numbers them "1", "2", ...).
    pub id: String,
    /// The name given at creation.
    pub name: String,
    /// Bytes of VM state saved with the snapshot (0 for disk-only snapshots).
    pub vm_state_size: u64,
    /// Creation time, seconds since the epoch.
    pub date_sec: u32,
    /// Creation time, nanoseconds part.
    pub date_nsec: u32,
    /// The guest clock at creation, in nanoseconds.
    pub vm_clock_nsec: u64,
    /// The virtual disk size when the snapshot was taken.
    pub disk_size: u64,
}

/// What [`BlockDriver::check`] may repair (qemu-img check `-r`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Repair {
    /// Report only.
    #[default]
    None,
    /// Fix leaked clusters (refcounts higher than the references).
    Leaks,
    /// Fix leaks and corruptions (rebuilds the refcounts from the references).
    All,
}

/// The result of [`BlockDriver::check`], counted as `qemu-img check` counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Inconsistencies that may lose data (a refcount lower than the references, a wrong
    /// COPIED flag, a table outside the file), left after any repair.
    pub corruptions: u64,
    /// Clusters whose refcount is higher than their references, left after any repair.
    pub leaks: u64,
    /// Metadata that could not be read at all.
    pub check_errors: u64,
    /// Corruptions repaired.
    pub corruptions_fixed: u64,
    /// Leaks repaired.
    pub leaks_fixed: u64,
    /// Guest clusters allocated in this image.
    pub allocated_clusters: u64,
    /// Guest clusters of the virtual disk.
    pub total_clusters: u64,
    /// One line per finding, as qemu-img prints them.
    pub messages: Vec<String>,
}

impl CheckReport {
    /// No corruptions, leaks or errors remain.
    pub fn is_clean(&self) -> bool {
        self.corruptions == 0 && self.leaks == 0 && self.check_errors == 0
    }
}

/// One extent of [`BlockDriver::map`], with `qemu-img map --output=json`'s fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapEntry {
    /// Guest byte offset.
    pub start: u64,
    /// Length in bytes.
    pub length: u64,
    /// How many backing levels down the data comes from (0: this image).
    pub depth: u32,
    /// Allocated in some image of the chain.
    pub present: bool,
    /// Reads as zeroes.
    pub zero: bool,
    /// Has data stored (not a hole or a zero cluster).
    pub data: bool,
    /// Stored compressed.
    pub compressed: bool,
    /// Host offset of the data in the file at `depth`, when it is stored plainly.
    pub offset: Option<u64>,
}

/// An open disk image, as a device sees it: a flat array of bytes.
///
/// Offsets and lengths come from the guest: every implementation checks them against
/// [`BlockDriver::size`] and returns [`BlockError::OutOfRange`], never panics.
pub trait BlockDriver: Send {
    /// The format's name as `-drive format=` spells it (`raw`, `qcow2`, `qed`).
    fn format_name(&self) -> &'static str;
    /// The virtual disk size in bytes.
    fn size(&self) -> u64;
    /// Whether writes are refused.
    fn is_read_only(&self) -> bool;
    /// Reads `buf.len()` bytes at byte `offset` (holes read as zeroes, or the backing image).
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError>;
    /// Writes `data` at byte `offset`.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError>;
    /// Makes every completed write durable (fdatasync of the files under the image).
    fn flush(&mut self) -> Result<(), BlockError>;
    /// The guest no longer needs `[offset, offset + len)`: the image may deallocate it. Reads of
    /// it afterwards return zeroes or the old data, as the device advertises.
    fn discard(&mut self, offset: u64, len: u64) -> Result<(), BlockError> {
        check_range(self.size(), offset, len)
    }
    /// Writes `len` zero bytes at `offset` (formats may record zero clusters instead).
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), BlockError> {
        check_range(self.size(), offset, len)?;
        let zeroes = vec![0u8; 64 << 10];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(zeroes.len() as u64);
            self.write_at(offset + done, &zeroes[..n as usize])?;
            done += n;
        }
        Ok(())
    }

    /// The internal snapshots.
    fn snapshot_list(&mut self) -> Result<Vec<SnapshotInfo>, BlockError> {
        Err(BlockError::NotSupported {
            format: self.format_name(),
            operation: "internal snapshots",
        })
    }

    /// Takes an internal snapshot of the disk named `name` (names must be unique).
    fn snapshot_create(&mut self, name: &str) -> Result<SnapshotInfo, BlockError> {
        let _ = name;
        Err(BlockError::NotSupported {
            format: self.format_name(),
            operation: "internal snapshots",
        })
    }

    /// Reverts the disk to the snapshot with this id or name.
    fn snapshot_apply(&mut self, id_or_name: &str) -> Result<(), BlockError> {
        let _ = id_or_name;
        Err(BlockError::NotSupported {
            format: self.format_name(),
            operation: "internal snapshots",
        })
    }

    /// Deletes the snapshot with this id or name.
    fn snapshot_delete(&mut self, id_or_name: &str) -> Result<(), BlockError> {
        let _ = id_or_name;
        Err(BlockError::NotSupported {
            format: self.format_name(),
            operation: "internal snapshots",
        })
    }

    /// Changes the virtual disk size to `new_size` bytes (qemu-img resize). Growing reads the
    /// new area as zeroes; shrinking drops the data beyond the new end (qemu-img resize
    /// --shrink semantics: asking before shrinking is the caller's job).
    fn resize(&mut self, new_size: u64) -> Result<(), BlockError> {
        let _ = new_size;
        Err(BlockError::NotSupported {
            format: self.format_name(),
            operation: "resizing",
        })
    }

    /// Records `file` (and its `format`, probed on open when `None`) as the image's backing
    /// file, or removes the backing file with `None` (qemu-img rebase -u): only the names
    /// change, no data is copied. The new chain is opened for later reads; if it cannot be,
    /// the names are still recorded and reads that would reach it fail.
    fn set_backing(&mut self, file: Option<&str>, format: Option<&str>) -> Result<(), BlockError> {
        let _ = (file, format);
        Err(BlockError::NotSupported {
            format: self.format_name(),
            operation: "backing files",
        })
    }

    /// Writes `data` at `offset` compressed (qemu-img convert -c): `offset` is cluster
    /// aligned and `data` whole clusters (the last may end at the end of the disk). A cluster
    /// that does not shrink is written plainly.
    fn write_compressed(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        let _ = (offset, data);
        Err(BlockError::NotSupported {
            format: self.format_name(),
            operation: "compressed writes",
        })
    }

    /// The size of the unit [`BlockDriver::write_compressed`] works in (the cluster size), or
    /// `None` when the format has no compression.
    fn compression_unit(&self) -> Option<u64> {
        None
    }

    /// Checks the image's metadata (qemu-img check), repairing what `repair` allows. Formats
    /// without metadata are always clean.
    fn check(&mut self, repair: Repair) -> Result<CheckReport, BlockError> {
        let _ = repair;
        Ok(CheckReport::default())
    }

    /// Where `[offset, offset + len)` is stored (qemu-img map): extents in order, adjacent
    /// ones with equal attributes merged. Formats without allocation report plain data.
    fn map(&mut self, offset: u64, len: u64) -> Result<Vec<MapEntry>, BlockError> {
        check_range(self.size(), offset, len)?;
        Ok(vec![MapEntry {
            start: offset,
            length: len,
            depth: 0,
            present: true,
            zero: false,
            data: true,
            compressed: false,
            offset: Some(offset),
        }])
    }
}

/// Checks that `[offset, offset + len)` lies within a disk of `size` bytes.
pub fn check_range(size: u64, offset: u64, len: u64) -> Result<(), BlockError> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(BlockError::OutOfRange { offset, len, size }),
    }
}

/// Appends `e` to `out`, merging it into the last extent when it continues it with the same
/// attributes (and, for stored data, a contiguous host offset).
pub(crate) fn push_extent(out: &mut Vec<MapEntry>, e: MapEntry) {
    if let Some(last) = out.last_mut() {
        let same = last.depth == e.depth
            && last.present == e.present
            && last.zero == e.zero
            && last.data == e.data
            && last.compressed == e.compressed
            && last.start + last.length == e.start;
        let offsets = match (last.offset, e.offset) {
            (None, None) => true,
            (Some(a), Some(b)) => a + last.length == b,
            _ => false,
        };
        if same && offsets {
            last.length += e.length;
            return;
        }
    }
    out.push(e);
}
