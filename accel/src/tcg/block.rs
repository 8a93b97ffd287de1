//! Translation blocks: runs of decoded guest instructions, and their cache.
//!
//! A block starts at a guest RIP and stops after a control-transfer or system instruction, at
//! a page boundary (only its last instruction may cross into the next page, QEMU's rule) or
//! after [`MAX_INSNS`]. Blocks are keyed as DESIGN.md says: physical and virtual PC, CS base,
//! and the mode (code size and CPL). A write to a page holding code drops the blocks on that
//! page (QEMU's per-page invalidation: a kernel patching its text, or a page that held code
//! reused for data, must not cost every translation).

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use tandem_tcg::jit::jump_table::{self, JumpTable};

use super::fast_hash::FastHasher;
use std::rc::Rc;

use iced_x86::{Code, Decoder, DecoderOptions, FlowControl, Instruction};

/// Longest block, in instructions.
pub const MAX_INSNS: usize = 64;

/// What identifies a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockKey {
    /// Physical address of the first byte.
    pub phys: u64,
    /// RIP of the first instruction.
    pub rip: u64,
    /// CS base.
    pub cs_base: u64,
    /// Code size (16/32/64) | CPL << 8.
    pub mode: u32,
}

/// A decoded block.
#[derive(Debug)]
pub struct Block {
    /// Its instructions, IPs in RIP space.
    pub insns: Vec<Instruction>,
    /// Times it was entered (for tier-up).
    pub runs: Cell<u32>,
    /// Its compiled prefix, if any: code and how many instructions it covers.
    pub compiled: Cell<Option<(tandem_tcg::jit::CompiledBlock, usize)>>,
    /// Compilation was tried and gave nothing (no compilable prefix).
    pub not_compilable: Cell<bool>,
    /// Handed to the background compiler, result not in yet.
    pub queued: Cell<bool>,
    /// Successor links of its compiled code.
    pub chain: tandem_tcg::jit::chain::ChainSlots,
    /// Its mode in the jump table ([`VirtKey::table_key`]), set when it is cached.
    pub mode_key: Cell<u64>,
}

impl Block {
    /// Its compiled code, if that covers the whole block (only such blocks chain).
    pub fn whole_code(&self) -> Option<tandem_tcg::jit::CompiledBlock> {
        match self.compiled.get() {
            Some((code, n)) if n == self.insns.len() => Some(code),
            _ => None,
        }
    }
}

/// Decodes a block from `bytes` (fetched at RIP `rip`); `page_bytes` is how many of them lie on
/// the first page.
pub fn form(bytes: &[u8], rip: u64, bitness: u32, page_bytes: usize) -> Block {
    let mut d = Decoder::with_ip(bitness, bytes, rip, DecoderOptions::NONE);
    let mut insns = Vec::new();
    while d.can_decode() && insns.len() < MAX_INSNS {
        let start = d.position();
        if start >= page_bytes {
            break;
        }
        let insn = d.decode();
        let invalid = insn.code() == Code::INVALID;
        let crosses = d.position() > page_bytes;
        let ends = invalid
            || crosses
            || !matches!(insn.flow_control(), FlowControl::Next)
            || is_block_ending(&insn);
        insns.push(insn);
        if ends {
            break;
        }
    }
    Block {
        insns,
        runs: Cell::new(0),
        compiled: Cell::new(None),
        not_compilable: Cell::new(false),
        queued: Cell::new(false),
        chain: tandem_tcg::jit::chain::ChainSlots::new(rip),
        mode_key: Cell::new(0),
    }
}

/// Instructions after which the block must end even though they fall through: the engine
/// runs them itself or they change how the following code is translated.
fn is_block_ending(i: &Instruction) -> bool {
    use iced_x86::Mnemonic as M;
    matches!(
        i.mnemonic(),
        M::Hlt | M::Popf | M::Popfd | M::Popfq | M::Sti | M::Cli
    ) || tandem_target_x86_64::system::handles(i.mnemonic())
}

type KeyMap<V> = HashMap<BlockKey, V, BuildHasherDefault<FastHasher>>;

/// What the jump cache is keyed by: the virtual side of [`BlockKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtKey {
    /// RIP of the first instruction.
    pub rip: u64,
    /// CS base.
    pub cs_base: u64,
    /// Code size | CPL << 8.
    pub mode: u32,
}

impl VirtKey {
    /// The block mode as the jump table keys it: CS base and mode (never 0: the code size is
    /// in the mode).
    pub fn table_key(&self) -> u64 {
        (self.cs_base << 16) | u64::from(self.mode & 0xffff)
    }
}

/// Blocks by key, with QEMU's jump cache in front: a direct-mapped table by virtual PC that
/// skips the page walk and the hash lookup. It is valid as long as the TLB is (the engine
/// flushes both together), which is the architectural contract for page-table changes.
pub struct BlockCache {
    map: KeyMap<Rc<Block>>,
    /// The blocks touching each physical page (start page, and the next one for a block whose
    /// last instruction crosses).
    by_page: HashMap<u64, Vec<BlockKey>>,
    /// Blocks dropped by page invalidation whose compiled code may still be running (the
    /// invalidating write can come from the block itself): their chain slots must stay valid
    /// memory until [`BlockCache::release_retired`], when the dispatcher has control.
    retired: Vec<Rc<Block>>,
    jump: Vec<Option<(VirtKey, Rc<Block>, bool)>>,
    /// What compiled code consults for successors not in its chain slots: the whole-compiled
    /// blocks of the jump cache, by the same index.
    pub jump_table: Box<JumpTable>,
    /// Blocks decoded so far.
    pub translated: u64,
    /// Whole-cache flushes (the code buffer filled up).
    pub flushes: u64,
    /// Pages invalidated because code on them was written.
    pub page_invalidations: u64,
    /// Whole jump-cache flushes (TLB flushes, invalidations).
    pub jump_flushes: u64,
}

impl Default for BlockCache {
    fn default() -> Self {
        Self {
            map: KeyMap::default(),
            by_page: HashMap::new(),
            retired: Vec::new(),
            jump: vec![None; jump_table::ENTRIES],
            jump_table: JumpTable::new(),
            translated: 0,
            flushes: 0,
            page_invalidations: 0,
            jump_flushes: 0,
        }
    }
}

impl BlockCache {
    /// The block at `key` through the jump cache, if it is there.
    /// With it: whether its page is mapped global.
    pub fn get_fast(&self, key: &VirtKey) -> Option<(Rc<Block>, bool)> {
        match &self.jump[jump_table::index(key.rip)] {
            Some((k, b, global)) if k == key => Some((b.clone(), *global)),
            _ => None,
        }
    }

    /// Remembers `block` in the jump cache; `global`: its page is mapped global.
    pub fn remember(&mut self, key: VirtKey, block: &Rc<Block>, global: bool) {
        self.jump[jump_table::index(key.rip)] = Some((key, block.clone(), global));
    }

    /// Forgets the jump-cache entries of pages not mapped global (a CR3 write: global
    /// translations survive it, as in the CPU's TLB).
    pub fn flush_jump_cache_non_global(&mut self) {
        self.jump_flushes += 1;
        for e in &mut self.jump {
            if e.as_ref().is_some_and(|(_, _, global)| !global) {
                *e = None;
            }
        }
        self.jump_table.flush_non_global();
    }

    /// Forgets the jump cache (the TLB was flushed: virtual-to-physical may have changed).
    pub fn flush_jump_cache(&mut self) {
        self.jump_flushes += 1;
        self.jump.fill(None);
        self.jump_table.flush();
    }

    /// Forgets the jump-cache entries of the page holding linear `addr` and of the page
    /// before it (whose last block may cross into it): INVLPG of that page.
    pub fn flush_jump_page(&mut self, addr: u64) {
        for page in [addr, addr.wrapping_sub(4096)] {
            let first = jump_table::page_index(page);
            self.jump[first..first + jump_table::PER_PAGE].fill(None);
            self.jump_table.flush_page(page);
        }
    }

    /// The cached block for `key`.
    pub fn get(&self, key: &BlockKey) -> Option<Rc<Block>> {
        self.map.get(key).cloned()
    }

    /// Caches `block`, whose bytes lie on physical pages (frame numbers) `pages`.
    pub fn insert(&mut self, key: BlockKey, block: Block, pages: &[u64]) -> Rc<Block> {
        self.translated += 1;
        let b = Rc::new(block);
        if let Some(old) = self.map.insert(key, b.clone()) {
            self.retired.push(old);
        }
        for p in pages {
            let keys = self.by_page.entry(*p).or_default();
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        b
    }

    /// Drops the blocks touching physical page (frame number) `page`: code there was
    /// written. Blocks elsewhere that chain to them are unlinked: those start on the same
    /// page as their successor (chain links stay within a page), so only the blocks on the
    /// start page of a dropped block that merely crosses into `page` need looking at.
    pub fn invalidate_page(&mut self, page: u64) {
        let Some(keys) = self.by_page.remove(&page) else {
            return;
        };
        self.page_invalidations += 1;
        for key in keys {
            let Some(block) = self.map.remove(&key) else {
                continue;
            };
            let start = key.phys >> 12;
            if start != page {
                if let (Some(code), Some(neighbours)) =
                    (block.whole_code(), self.by_page.get(&start))
                {
                    for k in neighbours {
                        if let Some(b) = self.map.get(k) {
                            b.chain.unlink_code(code.address());
                        }
                    }
                }
            }
            self.retired.push(block);
        }
        self.flush_jump_cache();
    }

    /// True if some cached block touches physical frame `page`.
    pub fn has_page(&self, page: u64) -> bool {
        self.by_page.contains_key(&page)
    }

    /// Frees the blocks [`BlockCache::invalidate_page`] dropped. Call only with no compiled
    /// code running and no pointer to their chain slots kept (the engine's pending link):
    /// no live block links to them any more.
    pub fn release_retired(&mut self) {
        self.retired.clear();
    }

    /// Drops every block (the code buffer is being reset: no compiled code survives).
    pub fn flush(&mut self) {
        self.flushes += 1;
        self.map.clear();
        self.by_page.clear();
        self.retired.clear();
        self.flush_jump_cache();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_stop_at_branches_and_page_ends() {
        // nop; nop; jmp $; nop
        let code = [0x90, 0x90, 0xeb, 0xfe, 0x90];
        let b = form(&code, 0x1000, 64, code.len());
        assert_eq!(b.insns.len(), 3);
        // Only 1 byte on the first page: the second instruction starts on the next page.
        let b = form(&code, 0x1fff, 64, 1);
        assert_eq!(b.insns.len(), 1);
        // mov eax, imm32 straddling: kept, and it ends the block.
        let code = [0xb8, 1, 2, 3, 4, 0x90];
        let b = form(&code, 0x1ffe, 64, 2);
        assert_eq!(b.insns.len(), 1);
        assert_eq!(b.insns[0].len(), 5);
    }

    #[test]
    fn invalid_bytes_make_a_one_instruction_block() {
        let b = form(&[0x0f, 0xff, 0x90], 0, 64, 3);
        assert_eq!(b.insns.len(), 1);
        assert_eq!(b.insns[0].code(), Code::INVALID);
    }

    #[test]
    fn a_code_write_drops_only_the_blocks_on_that_page() {
        let mut cache = BlockCache::default();
        let key = |phys: u64| BlockKey {
            phys,
            rip: phys,
            cs_base: 0,
            mode: 64,
        };
        let nop = [0x90u8, 0xc3];
        cache.insert(key(0x1000), form(&nop, 0x1000, 64, 2), &[1]);
        cache.insert(key(0x1800), form(&nop, 0x1800, 64, 2), &[1]);
        // A block on frame 2 whose last instruction crosses into frame 3.
        cache.insert(key(0x2ffe), form(&nop, 0x2ffe, 64, 2), &[2, 3]);
        cache.insert(key(0x4000), form(&nop, 0x4000, 64, 2), &[4]);

        cache.invalidate_page(1);
        assert!(cache.get(&key(0x1000)).is_none() && cache.get(&key(0x1800)).is_none());
        assert!(!cache.has_page(1));
        assert!(cache.get(&key(0x4000)).is_some());

        cache.invalidate_page(3);
        assert!(
            cache.get(&key(0x2ffe)).is_none(),
            "the crossing block goes too"
        );
        assert!(cache.get(&key(0x4000)).is_some());
        assert_eq!(cache.page_invalidations, 2);
        cache.release_retired();
        assert_eq!(cache.flushes, 0, "no whole flush");
    }
}
