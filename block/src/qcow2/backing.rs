//! Changing the backing file an image records (qemu-img rebase -u, commit; QEMU's
//! qcow2_change_backing_file): the header's backing file name and the backing format
//! extension are rewritten in one write of the header cluster, every other extension (feature
//! names, bitmaps, unknown ones) kept as it was. The new chain is then opened read-only; a
//! chain that does not open is stood in for by [`Unopened`], so the names are still changed
//! (as `rebase -u` wants) but any read that reaches the backing file fails with its error.

use super::{header, resolve_backing, Qcow2};
use crate::registry::{open_in_chain, OpenOptions};
use crate::{BlockDriver, BlockError};

/// A backing file that could not be opened: every read of it fails with the open's error.
#[derive(Debug)]
pub(super) struct Unopened {
    path: String,
    name: String,
    cause: String,
}

impl Unopened {
    fn error(&self) -> BlockError {
        BlockError::Backing {
            path: self.path.clone(),
            backing: self.name.clone(),
            cause: self.cause.clone(),
        }
    }
}

impl BlockDriver for Unopened {
    fn format_name(&self) -> &'static str {
        "unopened"
    }

    fn size(&self) -> u64 {
        // Unknown: every guest offset may reach it, so every such read reports the error.
        u64::MAX
    }

    fn is_read_only(&self) -> bool {
        true
    }

    fn read_at(&mut self, _offset: u64, _buf: &mut [u8]) -> Result<(), BlockError> {
        Err(self.error())
    }

    fn write_at(&mut self, _offset: u64, _data: &[u8]) -> Result<(), BlockError> {
        Err(BlockError::ReadOnly)
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        Ok(())
    }

    fn map(&mut self, _offset: u64, _len: u64) -> Result<Vec<crate::MapEntry>, BlockError> {
        Err(self.error())
    }
}

impl Qcow2 {
    pub(super) fn set_backing_impl(
        &mut self,
        file: Option<&str>,
        format: Option<&str>,
    ) -> Result<(), BlockError> {
        self.check_writable()?;
        let file = file.filter(|f| !f.is_empty());
        let format = format.filter(|f| !f.is_empty());
        if format.is_some() && file.is_none() {
            return Err(BlockError::InvalidArgument(
                "a backing format needs a backing file".into(),
            ));
        }
        let cs = self.cs as usize;
        let mut old = vec![0u8; cs];
        self.file.read_at(0, &mut old)?;
        let new = header::Header::with_backing(&old, self.h.header_length as usize, file, format)
            .ok_or_else(|| {
            BlockError::InvalidArgument(format!(
                "backing file name does not fit in the {cs}-byte header cluster"
            ))
        })?;
        self.file.write_at(0, &new)?;
        self.file.flush()?;
        self.h.backing_file = file.map(str::to_string);
        self.h.backing_fmt = format.map(str::to_string);
        self.backing = None;
        let Some(name) = file else {
            return Ok(());
        };
        let bpath = resolve_backing(&self.path, name);
        let opts = OpenOptions {
            format: format.map(str::to_string),
            read_only: true,
            cache: self.cache,
        };
        let mut chain: Vec<_> = std::fs::canonicalize(&self.path).into_iter().collect();
        self.backing = Some(match open_in_chain(&bpath, &opts, &mut chain) {
            Ok(b) => b,
            Err(e) => Box::new(Unopened {
                path: self.path.display().to_string(),
                name: name.to_string(),
                cause: match e {
                    BlockError::Backing { cause, .. } => cause,
                    e => e.to_string(),
                },
            }),
        });
        Ok(())
    }
}
