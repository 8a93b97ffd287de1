//! The lookup compiled code does when a block's successor is not in its chain slots: an
//! indirect jump, a return, or a direct jump to another page (QEMU's `lookup_and_goto_ptr`,
//! done inline). A direct-mapped table from (RIP, block mode key) to compiled code, filled by
//! the engine's dispatcher and probed by every compiled block on its way out; a hit is a tail
//! call, a miss the return to the dispatcher it would have been anyway.
//!
//! Entries name code by virtual RIP, so they are only as valid as the current address
//! translation: the engine clears the table with its TLB (all of it on a flush, one page's run
//! of entries on INVLPG, whose layout keeps a page's entries together) and whenever
//! translations are dropped.

/// Entries (64 pages' worth of 64).
pub const ENTRIES: usize = 4096;
/// Entries per page.
pub const PER_PAGE: usize = 64;
/// log2 of an entry's size.
pub const ENTRY_SHIFT: u32 = 5;
/// Offset of an entry's RIP.
pub const RIP: i32 = 0;
/// Offset of an entry's mode key.
pub const KEY: i32 = 8;
/// Offset of an entry's code address.
pub const CODE: i32 = 16;

/// One entry; key 0 never matches (modes are never 0).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    rip: u64,
    key: u64,
    code: u64,
    /// 1 if the RIP's page is mapped global: the entry survives a CR3 write.
    global: u64,
}

/// The table (one per vCPU).
#[repr(C, align(64))]
pub struct JumpTable {
    entries: [Entry; ENTRIES],
}

/// The first entry of the page holding `rip`.
pub fn page_index(rip: u64) -> usize {
    ((((rip >> 12) ^ (rip >> 18)) as usize) & (ENTRIES / PER_PAGE - 1)) * PER_PAGE
}

/// The entry for `rip` (compiled code computes the same with shifts, xors and masks).
pub fn index(rip: u64) -> usize {
    page_index(rip) + (((rip ^ (rip >> 6)) as usize) & (PER_PAGE - 1))
}

impl JumpTable {
    /// An empty table, on the heap (it is 128 KiB).
    pub fn new() -> Box<Self> {
        Box::new(Self {
            entries: [Entry::default(); ENTRIES],
        })
    }

    /// Records that the block at `rip` in mode `key` (non-zero) is compiled at `code`;
    /// `global`: `rip`'s page is mapped global.
    pub fn insert(&mut self, rip: u64, key: u64, code: u64, global: bool) {
        self.entries[index(rip)] = Entry {
            rip,
            key,
            code,
            global: u64::from(global),
        };
    }

    /// The code recorded for `rip` in mode `key`.
    pub fn lookup(&self, rip: u64, key: u64) -> Option<u64> {
        let e = &self.entries[index(rip)];
        (e.rip == rip && e.key == key && key != 0).then_some(e.code)
    }

    /// Forgets everything.
    pub fn flush(&mut self) {
        self.entries.fill(Entry::default());
    }

    /// Forgets the entries of pages not mapped global (a CR3 write).
    pub fn flush_non_global(&mut self) {
        for e in &mut self.entries {
            if e.global == 0 {
                *e = Entry::default();
            }
        }
    }

    /// Forgets the entries of the page holding `addr`.
    pub fn flush_page(&mut self, addr: u64) {
        let first = page_index(addr);
        self.entries[first..first + PER_PAGE].fill(Entry::default());
    }

    /// The table's address, for compiled code.
    pub fn address(&self) -> u64 {
        self as *const Self as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_match_rip_and_key_and_pages_flush_alone() {
        let mut t = JumpTable::new();
        t.insert(0x40_1234, 0x40, 0xc0de, false);
        t.insert(0x50_0010, 0x40, 0xbeef, true);
        assert_eq!(t.lookup(0x40_1234, 0x40), Some(0xc0de));
        assert_eq!(t.lookup(0x40_1234, 0x140), None, "another mode");
        assert_eq!(t.lookup(0, 0), None, "empty entries never match");
        t.flush_page(0x40_1000);
        assert_eq!(t.lookup(0x40_1234, 0x40), None);
        assert_eq!(t.lookup(0x50_0010, 0x40), Some(0xbeef));
        assert!((0..4096u64)
            .all(|o| index(0x40_1000 + o) / PER_PAGE == page_index(0x40_1000) / PER_PAGE));
        t.insert(0x40_1234, 0x40, 0xc0de, false);
        t.flush_non_global();
        assert_eq!(t.lookup(0x40_1234, 0x40), None);
        assert_eq!(
            t.lookup(0x50_0010, 0x40),
            Some(0xbeef),
            "global entries stay"
        );
        t.flush();
        assert_eq!(t.lookup(0x50_0010, 0x40), None);
    }
}
