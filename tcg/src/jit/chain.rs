//! Direct chaining of compiled blocks: each block ends with a tail call to the block that
//! comes next, found through its two successor slots, without returning to the dispatcher.
//!
//! The engine fills a slot when it sees block B run right after block A (and B is on A's
//! page, so a page-table change cannot redirect the link: QEMU's rule). A block leaves the
//! chain, returning to the dispatcher, when its successor is not linked or when the exit-request
//! flag is set (a stop request, a pending interrupt, a write to translated code). Blocks are
//! `CallConv::Tail` functions entered from Rust through a small SystemV trampoline (DESIGN.md:
//! a hop then costs ~1.7 ns with a flat stack).

use std::cell::Cell;

/// Offset of slot `i`'s RIP in [`ChainSlots`].
pub const fn rip_offset(i: usize) -> i32 {
    (i * 16) as i32
}

/// Offset of slot `i`'s code address in [`ChainSlots`].
pub const fn code_offset(i: usize) -> i32 {
    (i * 16 + 8) as i32
}

/// No successor: never equal to a RIP a block ends with (it is not canonical).
pub const EMPTY: u64 = u64::MAX;

/// One successor link.
#[repr(C)]
#[derive(Debug)]
pub struct ChainSlot {
    rip: Cell<u64>,
    code: Cell<u64>,
}

/// A block's two successor links (taken and fall-through, in whatever order they appear),
/// and the page the block starts on (links stay within it).
#[repr(C)]
#[derive(Debug)]
pub struct ChainSlots {
    slots: [ChainSlot; 2],
    page: u64,
}

impl ChainSlots {
    /// Empty slots for a block starting at `rip`.
    pub fn new(rip: u64) -> Self {
        let empty = || ChainSlot {
            rip: Cell::new(EMPTY),
            code: Cell::new(0),
        };
        Self {
            slots: [empty(), empty()],
            page: rip & !0xfff,
        }
    }

    /// True if a successor at `rip` may be linked (same page as the block's start).
    pub fn may_link(&self, rip: u64) -> bool {
        rip & !0xfff == self.page
    }

    /// Links successor `rip` to compiled code at `code`: a free slot, or the older one.
    pub fn link(&self, rip: u64, code: u64) {
        let i = if self.slots[0].rip.get() == EMPTY || self.slots[0].rip.get() == rip {
            0
        } else if self.slots[1].rip.get() == EMPTY || self.slots[1].rip.get() == rip {
            1
        } else {
            // Both taken by other successors (an indirect jump): replace the second.
            1
        };
        // The code address first: a reader that sees the RIP must see its code.
        self.slots[i].code.set(code);
        self.slots[i].rip.set(rip);
    }

    /// Unlinks every successor whose code is at `code` (that block's translation is gone).
    pub fn unlink_code(&self, code: u64) {
        for s in &self.slots {
            if s.code.get() == code {
                // The RIP first: a reader that no longer sees it never takes the code.
                s.rip.set(EMPTY);
                s.code.set(0);
            }
        }
    }

    /// True if `rip` is linked.
    pub fn is_linked(&self, rip: u64) -> bool {
        self.slots.iter().any(|s| s.rip.get() == rip)
    }

    /// Address of the slots, for compiled code.
    pub fn address(&self) -> u64 {
        self as *const Self as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_fill_then_replace_and_offsets_match_the_layout() {
        let s = ChainSlots::new(0x1000);
        assert!(s.may_link(0x1ff0) && !s.may_link(0x2000));
        assert!(!s.is_linked(0x1000));
        s.link(0x1000, 0xa);
        s.link(0x2000, 0xb);
        s.link(0x1000, 0xc);
        assert!(s.is_linked(0x1000) && s.is_linked(0x2000));
        s.link(0x3000, 0xd);
        assert!(s.is_linked(0x3000) && s.is_linked(0x1000));
        s.unlink_code(0xd);
        assert!(!s.is_linked(0x3000) && s.is_linked(0x1000));
        let base = s.address();
        assert_eq!(s.slots[1].rip.as_ptr() as u64 - base, rip_offset(1) as u64);
        assert_eq!(
            s.slots[1].code.as_ptr() as u64 - base,
            code_offset(1) as u64
        );
    }
}
