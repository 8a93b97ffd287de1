//! Changing the backing file an image records (qemu-img rebase -u, commit; QEMU's
//! qcow2_change_backing_file): the header's backing file name and the backing format
//! extension are rewritten in one write of the header cluster, every other extension (feature
//! names, bitmaps, unknown ones) kept as it was. The new chain is then opened read-only (see
//! [`crate::backing::reopen`] for a chain that does not open).

use super::{header, Qcow2};
use crate::BlockError;

impl Qcow2 {
    pub(super) fn set_backing_impl(
        &mut self,
        file: Option<&str>,
        format: Option<&str>,
    ) -> Result<(), BlockError> {
        self.check_writable()?;
        let (file, format) = crate::backing::set_backing_args(file, format)?;
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
        self.backing = None; // the old chain is closed before the new one opens
        self.backing =
            file.map(|name| crate::backing::reopen(&self.path, name, format, self.cache));
        Ok(())
    }
}
