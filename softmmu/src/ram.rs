//! Guest RAM: one host mapping, anonymous or a file (`-mem-path`), that the board places in the
//! physical address space as one or more regions (below the PCI hole and above 4 GiB).

use std::path::Path;
use std::sync::Arc;

use crate::error::MapError;
use crate::host_memory::HostMemory;

/// The guest's RAM as one host block; the board decides where its pieces appear.
#[derive(Clone)]
pub struct GuestRam {
    mem: Arc<HostMemory>,
}

impl GuestRam {
    /// Anonymous, zeroed RAM of `size` bytes.
    pub fn anonymous(size: u64) -> Result<Self, MapError> {
        Ok(Self {
            mem: Arc::new(HostMemory::anonymous(size)?),
        })
    }

    /// RAM backed by the file at `path`, as QEMU's `-mem-path`.
    pub fn file(path: &Path, size: u64) -> Result<Self, MapError> {
        Ok(Self {
            mem: Arc::new(HostMemory::file(path, size)?),
        })
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.mem.len()
    }

    /// The host block.
    pub fn host(&self) -> &Arc<HostMemory> {
        &self.mem
    }
}
