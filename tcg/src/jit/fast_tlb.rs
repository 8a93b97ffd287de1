//! The TLB that compiled code probes inline: linear page to host address, for RAM only.
//!
//! Its layout is ABI between generated code and the engine (QEMU's CPUTLBEntry idea): 256
//! direct-mapped entries of 32 bytes, indexed by bits 12..20 of the linear address. A hit needs
//! the page tag to match and the access to stay within the page; then the host address is the
//! linear address plus `addend`. Anything else (a miss, MMIO, a page holding translated code
//! for writes, a page-crossing access) takes the slow path through the engine's helper, which
//! refills the entry when the page is plain RAM.

/// Entries per table.
pub const ENTRIES: usize = 1024;
/// Bytes per entry (the shift generated code uses).
pub const ENTRY_SHIFT: u32 = 5;
/// A tag no page address equals.
pub const INVALID: u64 = u64::MAX;
/// Offset of `read_tag` in an entry.
pub const READ_TAG: i32 = 0;
/// Offset of `write_tag` in an entry.
pub const WRITE_TAG: i32 = 8;
/// Offset of `addend` in an entry.
pub const ADDEND: i32 = 16;

/// One entry.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FastTlbEntry {
    /// Page address loads may use, or INVALID.
    pub read_tag: u64,
    /// Page address stores may use, or INVALID.
    pub write_tag: u64,
    /// Host address minus linear address, for the page.
    pub addend: u64,
    /// 1 if the page is global (kept by [`FastTlb::flush_non_global`]).
    pub global: u64,
}

const EMPTY: FastTlbEntry = FastTlbEntry {
    read_tag: INVALID,
    write_tag: INVALID,
    addend: 0,
    global: 0,
};

/// One table (one per privilege level the engine distinguishes).
#[repr(C, align(64))]
pub struct FastTlb {
    entries: [FastTlbEntry; ENTRIES],
}

impl Default for FastTlb {
    fn default() -> Self {
        Self {
            entries: [EMPTY; ENTRIES],
        }
    }
}

fn slot(linear: u64) -> usize {
    ((linear >> 12) as usize) & (ENTRIES - 1)
}

impl FastTlb {
    /// Records that `linear`'s page is RAM at `host_page`; stores allowed if `writable`;
    /// `global` pages survive [`Self::flush_non_global`].
    pub fn fill(&mut self, linear: u64, host_page: *mut u8, writable: bool, global: bool) {
        let page = linear & !0xfff;
        let addend = (host_page as u64).wrapping_sub(page);
        let e = &mut self.entries[slot(linear)];
        // Keep a write permission already granted for the same page by an earlier fill.
        let keep_write = e.write_tag == page && e.addend == addend;
        *e = FastTlbEntry {
            read_tag: page,
            write_tag: if writable || keep_write {
                page
            } else {
                INVALID
            },
            addend,
            global: u64::from(global),
        };
    }

    /// The host address for `size` bytes at `linear`, if the fast path may take it.
    pub fn lookup(&self, linear: u64, size: usize, write: bool) -> Option<*mut u8> {
        if (linear & 0xfff) as usize + size > 4096 {
            return None;
        }
        let e = &self.entries[slot(linear)];
        let tag = if write { e.write_tag } else { e.read_tag };
        (tag == linear & !0xfff).then(|| linear.wrapping_add(e.addend) as *mut u8)
    }

    /// Forgets everything.
    pub fn flush(&mut self) {
        self.entries.fill(EMPTY);
    }

    /// Forgets every page but the global ones (a CR3 write).
    pub fn flush_non_global(&mut self) {
        for e in self.entries.iter_mut().filter(|e| e.global == 0) {
            *e = EMPTY;
        }
    }

    /// Forgets the page holding `linear` (INVLPG).
    pub fn invalidate(&mut self, linear: u64) {
        let e = &mut self.entries[slot(linear)];
        if e.read_tag == linear & !0xfff {
            *e = EMPTY;
        }
    }

    /// Forgets store permission for every linear page mapped to host page `host_page` (its
    /// guest page now holds translated code, whose writes must be seen).
    pub fn revoke_writes_to(&mut self, host_page: *mut u8) {
        for e in &mut self.entries {
            if e.write_tag != INVALID && e.write_tag.wrapping_add(e.addend) == host_page as u64 {
                e.write_tag = INVALID;
            }
        }
    }

    /// Forgets store permission everywhere (a page became a code page).
    pub fn flush_writes(&mut self) {
        for e in &mut self.entries {
            e.write_tag = INVALID;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_need_the_tag_the_permission_and_one_page() {
        let mut t = FastTlb::default();
        let mut page = vec![0u8; 4096];
        t.fill(0x7000_1234, page.as_mut_ptr(), false, false);
        let p = t.lookup(0x7000_1010, 8, false).unwrap();
        assert_eq!(p as usize - page.as_ptr() as usize, 0x10);
        assert!(t.lookup(0x7000_1010, 8, true).is_none());
        assert!(
            t.lookup(0x7000_1ffc, 8, false).is_none(),
            "crosses the page"
        );
        assert!(
            t.lookup(0x7010_1010, 8, false).is_none(),
            "other page, same slot"
        );
        t.fill(0x7000_1000, page.as_mut_ptr(), true, false);
        assert!(t.lookup(0x7000_1ff8, 8, true).is_some());
        t.flush_writes();
        assert!(t.lookup(0x7000_1000, 1, true).is_none());
        assert!(t.lookup(0x7000_1000, 1, false).is_some());
        t.flush();
        assert!(t.lookup(0x7000_1000, 1, false).is_none());
        assert_eq!(std::mem::size_of::<FastTlbEntry>(), 1 << ENTRY_SHIFT);
    }
}
