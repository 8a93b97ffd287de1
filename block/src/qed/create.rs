//! Creating QED images (qemu-img create -f qed; QEMU's qed_create): one header cluster with
//! the backing file's name after the fixed header, then an empty L1 table.

use std::io::Write;
use std::path::Path;

use super::header::{self, Header, HEADER_LEN};
use crate::{BlockError, CreateOptions};

/// The table size qemu-img uses when none is given, in clusters.
pub const DEFAULT_TABLE_SIZE: u32 = 4;

/// Creates a QED image at `path` (replacing any file there) with the default table size.
pub fn create(path: &Path, o: &CreateOptions) -> Result<(), BlockError> {
    create_with_table_size(path, o, DEFAULT_TABLE_SIZE)
}

/// Creates a QED image at `path` with tables of `table_size` clusters (`-o table_size=`). The
/// size is rounded up to a multiple of 512, as qemu-img does; without one, the backing file's
/// is taken.
pub fn create_with_table_size(
    path: &Path,
    o: &CreateOptions,
    table_size: u32,
) -> Result<(), BlockError> {
    let cs = o.cluster_size as u64;
    let ts = table_size as u64;
    if o.backing_fmt.is_some() && o.backing_file.is_none() {
        return Err(BlockError::InvalidArgument(
            "backing_fmt without backing_file".into(),
        ));
    }
    let mut size = o.size;
    if let Some(name) = &o.backing_file {
        let mut chain: Vec<_> = std::fs::canonicalize(path).into_iter().collect();
        let b = crate::backing::open(
            path,
            name,
            o.backing_fmt.as_deref(),
            Default::default(),
            &mut chain,
        )?;
        size = Some(size.unwrap_or(b.size()));
    }
    let Some(size) = size else {
        return Err(BlockError::InvalidArgument(
            "a QED image needs a size or a backing file".into(),
        ));
    };
    let size = size
        .checked_next_multiple_of(512)
        .ok_or_else(|| BlockError::InvalidArgument(format!("size {size} is too large")))?;
    header::check_geometry(cs, ts, size).map_err(BlockError::InvalidArgument)?;
    let mut h = Header {
        cluster_size: cs,
        table_size: ts,
        header_size: 1,
        l1_table_offset: cs,
        image_size: size,
        ..Default::default()
    };
    let head = h
        .set_backing(o.backing_file.as_deref(), o.backing_fmt.as_deref())
        .ok_or_else(|| {
            BlockError::InvalidArgument(format!(
                "the backing file's name does not fit in the {}-byte header cluster",
                cs as usize - HEADER_LEN
            ))
        })?;
    let mut f = std::fs::File::create(path).map_err(|e| BlockError::io(path, e))?;
    f.write_all(&head).map_err(|e| BlockError::io(path, e))?;
    // The rest of the header cluster and the L1 table are zeroes: a sparse tail.
    f.set_len(cs * (1 + ts))
        .map_err(|e| BlockError::io(path, e))?;
    f.sync_all().map_err(|e| BlockError::io(path, e))
}
