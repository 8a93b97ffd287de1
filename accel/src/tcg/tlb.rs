//! A small software TLB in front of the page walk: linear page to physical page, per privilege.
//!
//! Direct-mapped, 256 entries. An entry filled by a read does not allow writes until a write
//! walk has set the dirty bit. The engine flushes it whenever translation may have changed
//! (after system instructions: CR0/CR3/CR4/EFER writes, INVLPG, mode switches).

const ENTRIES: usize = 1024;

#[derive(Clone, Copy, Default)]
struct Entry {
    /// Linear page number + 1 (0 = empty).
    tag: u64,
    phys_page: u64,
    user: bool,
    write_ok: bool,
}

/// The TLB.
pub struct Tlb {
    entries: Box<[Entry; ENTRIES]>,
    hits: u64,
    misses: u64,
}

impl Default for Tlb {
    fn default() -> Self {
        Self {
            entries: Box::new([Entry::default(); ENTRIES]),
            hits: 0,
            misses: 0,
        }
    }
}

impl Tlb {
    fn slot(page: u64) -> usize {
        (page as usize) & (ENTRIES - 1)
    }

    /// The physical page for `linear`'s page, if cached for this privilege and access.
    pub fn lookup(&mut self, linear: u64, user: bool, write: bool) -> Option<u64> {
        let page = linear >> 12;
        let e = &self.entries[Self::slot(page)];
        if e.tag == page + 1 && e.user == user && (!write || e.write_ok) {
            self.hits += 1;
            Some(e.phys_page)
        } else {
            self.misses += 1;
            None
        }
    }

    /// Caches a translation.
    pub fn fill(&mut self, linear: u64, phys: u64, user: bool, write_ok: bool) {
        let page = linear >> 12;
        self.entries[Self::slot(page)] = Entry {
            tag: page + 1,
            phys_page: phys >> 12,
            user,
            write_ok,
        };
    }

    /// Forgets everything.
    pub fn flush(&mut self) {
        self.entries.fill(Entry::default());
    }

    /// Forgets the page holding `linear` (INVLPG).
    pub fn invalidate(&mut self, linear: u64) {
        let page = linear >> 12;
        let e = &mut self.entries[Self::slot(page)];
        if e.tag == page + 1 {
            *e = Entry::default();
        }
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_do_not_grant_writes_and_flush_forgets() {
        let mut t = Tlb::default();
        t.fill(0x40_1234, 0x9000, true, false);
        assert_eq!(t.lookup(0x40_1fff, true, false), Some(9));
        assert_eq!(t.lookup(0x40_1000, true, true), None);
        assert_eq!(t.lookup(0x40_1000, false, false), None);
        t.fill(0x40_1000, 0x9000, true, true);
        assert_eq!(t.lookup(0x40_1000, true, true), Some(9));
        t.flush();
        assert_eq!(t.lookup(0x40_1000, true, false), None);
    }
}
