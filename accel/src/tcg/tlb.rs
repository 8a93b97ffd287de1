//! A small software TLB in front of the page walk: linear page to physical page, per privilege.
//!
//! Direct-mapped, 1024 entries. An entry filled by a read does not allow writes until a write
//! walk has set the dirty bit. The engine flushes it whenever translation may have changed
//! (after system instructions: CR0/CR4/EFER writes, INVLPG, mode switches); a CR3 write keeps
//! global pages, as the hardware TLB does (Linux's kernel mappings: without that, every context
//! switch cost some two hundred page walks).

const ENTRIES: usize = 1024;

#[derive(Clone, Copy, Default)]
struct Entry {
    /// Linear page number + 1 (0 = empty).
    tag: u64,
    phys_page: u64,
    user: bool,
    write_ok: bool,
    global: bool,
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

    /// The physical page for `linear`'s page, and whether it is global, if cached for this
    /// privilege and access.
    pub fn lookup(&mut self, linear: u64, user: bool, write: bool) -> Option<(u64, bool)> {
        let page = linear >> 12;
        let e = &self.entries[Self::slot(page)];
        if e.tag == page + 1 && e.user == user && (!write || e.write_ok) {
            self.hits += 1;
            Some((e.phys_page, e.global))
        } else {
            self.misses += 1;
            None
        }
    }

    /// Caches a translation.
    pub fn fill(&mut self, linear: u64, phys: u64, user: bool, write_ok: bool, global: bool) {
        let page = linear >> 12;
        self.entries[Self::slot(page)] = Entry {
            tag: page + 1,
            phys_page: phys >> 12,
            user,
            write_ok,
            global,
        };
    }

    /// Forgets everything.
    pub fn flush(&mut self) {
        self.entries.fill(Entry::default());
    }

    /// Forgets every translation but the global ones (a CR3 write).
    pub fn flush_non_global(&mut self) {
        for e in self.entries.iter_mut().filter(|e| !e.global) {
            *e = Entry::default();
        }
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
        t.fill(0x40_1234, 0x9000, true, false, false);
        assert_eq!(t.lookup(0x40_1fff, true, false), Some((9, false)));
        assert_eq!(t.lookup(0x40_1000, true, true), None);
        assert_eq!(t.lookup(0x40_1000, false, false), None);
        t.fill(0x40_1000, 0x9000, true, true, false);
        assert_eq!(t.lookup(0x40_1000, true, true), Some((9, false)));
        t.flush();
        assert_eq!(t.lookup(0x40_1000, true, false), None);
    }

    #[test]
    fn a_cr3_flush_keeps_global_pages_only() {
        let mut t = Tlb::default();
        t.fill(0xffff_8000_0000_1000, 0x5000, false, true, true);
        t.fill(0x40_2000, 0x6000, true, true, false);
        t.flush_non_global();
        assert_eq!(
            t.lookup(0xffff_8000_0000_1000, false, true),
            Some((5, true))
        );
        assert_eq!(t.lookup(0x40_2000, true, false), None);
        t.flush();
        assert_eq!(t.lookup(0xffff_8000_0000_1000, false, false), None);
    }
}
