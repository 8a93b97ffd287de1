//! The BIOS e820 memory map the board reports to loaders and guests.

/// Kind of an e820 range (ACPI spec, Table 15-374).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum E820Kind {
    /// Usable RAM.
    Ram = 1,
    /// Reserved.
    Reserved = 2,
    /// ACPI tables, reclaimable.
    Acpi = 3,
    /// ACPI non-volatile storage.
    Nvs = 4,
}

/// One range of the e820 map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    /// Physical base.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// What the range is.
    pub kind: E820Kind,
}

impl E820Entry {
    /// End of the range (exclusive).
    pub fn end(&self) -> u64 {
        self.addr.saturating_add(self.size)
    }
}
