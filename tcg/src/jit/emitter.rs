//! The [`Builder`] that emits Cranelift IR: one guest block becomes one Cranelift function.

use std::collections::BTreeMap;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, SigRef, Type, Value};
use cranelift_frontend::FunctionBuilder;

use crate::builder::{Builder, Cond, FlagsMemo};
use crate::helper::Helper;
use crate::jit::facts::{low_mask, Fact, Facts};
use crate::jit::{fast_tlb, JitAbi, EXIT_TRAP};
use crate::width::Width;

/// A trap path was emitted; the instruction's remaining code is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exited;

/// Emits IR for the semantics run over it.
pub struct JitBuilder<'a> {
    pub(crate) fb: FunctionBuilder<'a>,
    pub(crate) ctx: Value,
    pub(crate) abi: JitAbi,
    pub(crate) sig_helper: SigRef,
    pub(crate) sig_load: SigRef,
    pub(crate) sig_store: SigRef,
    /// The signature of compiled blocks, for tail calls (None when not chaining).
    pub(crate) sig_tail: Option<SigRef>,
    /// PC of the instruction being emitted (stored on its trap paths).
    pc: u64,
    memo: Option<FlagsMemo<Value>>,
    /// Context slots held in SSA values: offset -> (value, needs writing back).
    cache: BTreeMap<usize, (Value, bool)>,
    /// Depth of conditional regions being emitted (the cache is bypassed inside them).
    region_depth: u32,
    /// Slots stored inside the current regions (stale in the cache after them).
    stored_in_region: Vec<usize>,
    /// Constants and known-zero high bits of the values made so far.
    facts: Facts,
    /// The function's one trap exit, `(pc)`: stores the PC and returns [`EXIT_TRAP`]. Paths
    /// into it have written the context back already.
    trap_exit: Option<cranelift_codegen::ir::Block>,
}

fn ty(w: Width) -> Type {
    match w {
        Width::W8 => types::I8,
        Width::W16 => types::I16,
        Width::W32 => types::I32,
        Width::W64 => types::I64,
    }
}

fn cc(c: Cond) -> IntCC {
    match c {
        Cond::Eq => IntCC::Equal,
        Cond::Ne => IntCC::NotEqual,
        Cond::Ult => IntCC::UnsignedLessThan,
        Cond::Ule => IntCC::UnsignedLessThanOrEqual,
        Cond::Ugt => IntCC::UnsignedGreaterThan,
        Cond::Uge => IntCC::UnsignedGreaterThanOrEqual,
        Cond::Slt => IntCC::SignedLessThan,
        Cond::Sle => IntCC::SignedLessThanOrEqual,
        Cond::Sgt => IntCC::SignedGreaterThan,
        Cond::Sge => IntCC::SignedGreaterThanOrEqual,
    }
}

fn state_flags() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// Guest RAM through the fast TLB: valid host memory, any alignment.
fn host_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

impl<'a> JitBuilder<'a> {
    pub(crate) fn new(
        fb: FunctionBuilder<'a>,
        ctx: Value,
        abi: JitAbi,
        sigs: (SigRef, SigRef, SigRef, Option<SigRef>),
    ) -> Self {
        Self {
            fb,
            ctx,
            abi,
            sig_helper: sigs.0,
            sig_load: sigs.1,
            sig_store: sigs.2,
            sig_tail: sigs.3,
            pc: 0,
            memo: None,
            cache: BTreeMap::new(),
            region_depth: 0,
            stored_in_region: Vec::new(),
            facts: Facts::default(),
            trap_exit: None,
        }
    }

    /// Starts the instruction at `pc` (stored if it traps).
    pub fn begin_insn(&mut self, pc: u64) {
        self.pc = pc;
    }

    fn iconst(&mut self, v: u64) -> Value {
        let block = self.fb.current_block();
        if let Some(c) = self.facts.reusable_const(block, v) {
            return c;
        }
        let c = self.fb.ins().iconst(types::I64, v as i64);
        self.facts.remember_const(v, c);
        c
    }

    /// Records that `v` has at most `bits` low bits set.
    fn with_bits(&mut self, v: Value, bits: u32) -> Value {
        self.facts.set(v, Fact::bits(bits));
        v
    }

    /// Both operands' constants, if both are.
    fn consts(&self, a: Value, b: Value) -> Option<(u64, u64)> {
        Some((self.facts.konst(a)?, self.facts.konst(b)?))
    }

    fn bits_of(&self, v: Value) -> u32 {
        u32::from(self.facts.get(v).bits)
    }

    fn cacheable(&self, slot: usize) -> bool {
        self.abi
            .cacheable
            .iter()
            .any(|&(a, b)| slot >= a && slot + 8 <= b)
    }

    /// Writes every dirty cached slot back, in the current block; `keep_dirty` leaves them
    /// marked dirty (for exit paths the main path does not go through).
    fn write_back(&mut self, keep_dirty: bool) {
        let ctx = self.ctx;
        for (&off, slot) in self.cache.iter_mut() {
            if slot.1 {
                self.fb.ins().store(state_flags(), slot.0, ctx, off as i32);
                if !keep_dirty {
                    slot.1 = false;
                }
            }
        }
    }

    /// Writes back and forgets one slot (before a narrow or misaligned access to it).
    fn evict(&mut self, slot: usize) {
        if let Some((v, dirty)) = self.cache.remove(&slot) {
            if dirty {
                let ctx = self.ctx;
                self.fb.ins().store(state_flags(), v, ctx, slot as i32);
            }
        }
    }

    /// Stores the current PC and returns `code` from the function, then continues in a fresh
    /// (unreachable) block so later emission stays well-formed.
    fn exit_with(&mut self, code: u64, store_pc: bool) {
        self.write_back(true);
        if store_pc {
            let pc = self.iconst(self.pc);
            let (ctx, off) = (self.ctx, self.abi.pc_offset);
            self.fb.ins().store(state_flags(), pc, ctx, off);
        }
        let c = self.iconst(code);
        self.fb.ins().return_(&[c]);
        let dead = self.fb.create_block();
        self.fb.switch_to_block(dead);
        self.fb.seal_block(dead);
    }

    /// After a helper: leave through the trap exit if it recorded an exception. The context
    /// must have been written back before the helper ran.
    fn check_trap(&mut self) {
        let (ctx, off) = (self.ctx, self.abi.trap_vector_offset);
        let v = self.fb.ins().load(types::I64, state_flags(), ctx, off);
        let trap = self.trap_exit();
        let pc = self.iconst(self.pc);
        let cont = self.fb.create_block();
        self.fb.ins().brif(v, trap, &[pc.into()], cont, &[]);
        self.fb.seal_block(cont);
        self.fb.switch_to_block(cont);
    }

    /// The shared trap exit block, made on first use and filled by [`Self::fill_trap_exit`].
    fn trap_exit(&mut self) -> cranelift_codegen::ir::Block {
        if let Some(b) = self.trap_exit {
            return b;
        }
        let b = self.fb.create_block();
        self.fb.append_block_param(b, types::I64);
        self.trap_exit = Some(b);
        b
    }

    /// Emits the body of the shared trap exit if the function used it; called once the function's
    /// own code is complete (Cranelift wants each block filled before switching away).
    pub(crate) fn fill_trap_exit(&mut self) {
        let ctx = self.ctx;
        if let Some(b) = self.trap_exit.take() {
            self.fb.switch_to_block(b);
            let pc = self.fb.block_params(b)[0];
            let off = self.abi.pc_offset;
            self.fb.ins().store(state_flags(), pc, ctx, off);
            let c = self.fb.ins().iconst(types::I64, EXIT_TRAP as i64);
            self.fb.ins().return_(&[c]);
        }
    }

    /// The inline TLB probe: on a hit, continues in a new block with the host address; the
    /// returned block is where misses go (the caller fills it). None: no fast TLB in this ABI.
    fn tlb_probe(
        &mut self,
        addr: Value,
        w: Width,
        write: bool,
    ) -> Option<(Value, cranelift_codegen::ir::Block)> {
        let tlb_off = self.abi.fast_tlb_offset?;
        let ctx = self.ctx;
        let tlb = self.fb.ins().load(types::I64, state_flags(), ctx, tlb_off);
        let idx = self.fb.ins().ushr_imm_s(addr, 12i64);
        let idx = self
            .fb
            .ins()
            .band_imm_s(idx, (fast_tlb::ENTRIES - 1) as i64);
        let off = self
            .fb
            .ins()
            .ishl_imm_s(idx, i64::from(fast_tlb::ENTRY_SHIFT));
        let entry = self.fb.ins().iadd(tlb, off);
        let tag_off = if write {
            fast_tlb::WRITE_TAG
        } else {
            fast_tlb::READ_TAG
        };
        let tag = self
            .fb
            .ins()
            .load(types::I64, state_flags(), entry, tag_off);
        // The page of the access's last byte: the TLB is direct-mapped, so the entry of the
        // first byte's page holds that tag only if both bytes are on one page.
        let last = if w.bytes() == 1 {
            addr
        } else {
            self.fb.ins().iadd_imm_s(addr, w.bytes() as i64 - 1)
        };
        let page = self.fb.ins().band_imm_s(last, !0xfff);
        let hit = self.fb.ins().icmp(IntCC::Equal, tag, page);
        let fast = self.fb.create_block();
        let slow = self.fb.create_block();
        self.fb.ins().brif(hit, fast, &[], slow, &[]);
        self.fb.seal_block(fast);
        self.fb.seal_block(slow);
        self.fb.switch_to_block(fast);
        let addend = self
            .fb
            .ins()
            .load(types::I64, state_flags(), entry, fast_tlb::ADDEND);
        let host = self.fb.ins().iadd(addr, addend);
        Some((host, slow))
    }

    fn slow_load(&mut self, addr: Value, w: Width) -> Value {
        // A fault leaves through the shared trap exit: the context must be current.
        self.write_back(true);
        let f = self.iconst(self.abi.load as usize as u64);
        let size = self.iconst(w.bytes() as u64);
        let ctx = self.ctx;
        let call = self
            .fb
            .ins()
            .call_indirect(self.sig_load, f, &[ctx, addr, size]);
        let v = self.fb.inst_results(call)[0];
        self.check_trap();
        v
    }

    fn slow_store(&mut self, addr: Value, w: Width, v: Value) {
        self.write_back(true);
        let f = self.iconst(self.abi.store as usize as u64);
        let size = self.iconst(w.bytes() as u64);
        let ctx = self.ctx;
        self.fb
            .ins()
            .call_indirect(self.sig_store, f, &[ctx, addr, size, v]);
        self.check_trap();
    }

    /// Ends the function: returns `code` (the PC was stored by the caller).
    pub fn finish(&mut self, code: u64) {
        self.write_back(false);
        let c = self.iconst(code);
        self.fb.ins().return_(&[c]);
    }

    /// Ends the function normally, chaining to a linked successor through `slots` (the
    /// block's [`ChainSlots`](crate::jit::chain::ChainSlots)) unless an exit is requested;
    /// failing that, through the vCPU's [`JumpTable`](crate::jit::jump_table::JumpTable) at
    /// `lookup.0` for the successor in this block's mode `lookup.1`. Without chaining in the
    /// ABI this is `finish(EXIT_NORMAL)`.
    pub fn finish_chained(&mut self, slots: u64, lookup: Option<(u64, u64)>) {
        use crate::jit::chain;
        if self.abi.exit_request == 0 || self.sig_tail.is_none() {
            self.finish(crate::jit::EXIT_NORMAL);
            return;
        }
        // Successors read the context: everything goes back before the chain checks.
        self.write_back(false);
        let ret = self.fb.create_block();
        let flag_addr = self.iconst(self.abi.exit_request);
        let flag = self.fb.ins().load(types::I64, state_flags(), flag_addr, 0);
        let check = self.fb.create_block();
        self.fb.ins().brif(flag, ret, &[], check, &[]);
        self.fb.seal_block(check);
        self.fb.switch_to_block(check);
        let (ctx, pc_off) = (self.ctx, self.abi.pc_offset);
        let rip = self.fb.ins().load(types::I64, state_flags(), ctx, pc_off);
        let base = self.iconst(slots);
        for i in 0..2 {
            let linked = self
                .fb
                .ins()
                .load(types::I64, state_flags(), base, chain::rip_offset(i));
            let eq = self.fb.ins().icmp(IntCC::Equal, rip, linked);
            let go = self.fb.create_block();
            let next = self.fb.create_block();
            self.fb.ins().brif(eq, go, &[], next, &[]);
            self.fb.seal_block(go);
            self.fb.seal_block(next);
            self.fb.switch_to_block(go);
            self.hop_to(base, chain::code_offset(i));
            self.fb.switch_to_block(next);
        }
        if let Some((table, key)) = lookup {
            self.jump_table_probe(rip, table, key);
        }
        self.fb.ins().jump(ret, &[]);
        self.fb.seal_block(ret);
        self.fb.switch_to_block(ret);
        let (ctx, last) = (self.ctx, self.abi.chain_last_offset);
        let addr = self.iconst(slots);
        self.fb.ins().store(state_flags(), addr, ctx, last);
        self.finish(crate::jit::EXIT_NORMAL);
    }
}

impl JitBuilder<'_> {
    /// Counts a hop and tail-calls the code whose address is at `base + offset`. Each exit
    /// keeps its own copy (one shared block with the code address as its parameter measured
    /// ~8% slower on a tight loop: the phi's moves and an extra jump on every hop).
    fn hop_to(&mut self, base: Value, offset: i32) {
        let (ctx, hops_off) = (self.ctx, self.abi.chain_hops_offset);
        let hops = self.fb.ins().load(types::I64, state_flags(), ctx, hops_off);
        let hops = self.fb.ins().iadd_imm_s(hops, 1i64);
        self.fb.ins().store(state_flags(), hops, ctx, hops_off);
        let code = self.fb.ins().load(types::I64, state_flags(), base, offset);
        let sig = self.sig_tail.unwrap_or(self.sig_helper);
        self.fb.ins().return_call_indirect(sig, code, &[ctx]);
    }

    /// Tail-calls the code the jump table records for `rip` in mode `key`, if any; falls
    /// through otherwise. The index is [`jump_table::index`](crate::jit::jump_table::index).
    fn jump_table_probe(&mut self, rip: Value, table: u64, key: u64) {
        use crate::jit::jump_table as jt;
        let p12 = self.fb.ins().ushr_imm_u(rip, 12);
        let p18 = self.fb.ins().ushr_imm_u(rip, 18);
        let page = self.fb.ins().bxor(p12, p18);
        let pages = (jt::ENTRIES / jt::PER_PAGE - 1) as i64;
        let page = self.fb.ins().band_imm_u(page, pages);
        let page = self
            .fb
            .ins()
            .ishl_imm_u(page, jt::PER_PAGE.trailing_zeros() as i64);
        let r6 = self.fb.ins().ushr_imm_u(rip, 6);
        let within = self.fb.ins().bxor(rip, r6);
        let within = self.fb.ins().band_imm_u(within, (jt::PER_PAGE - 1) as i64);
        let index = self.fb.ins().bor(page, within);
        let off = self.fb.ins().ishl_imm_u(index, i64::from(jt::ENTRY_SHIFT));
        let base = self.iconst(table);
        let entry = self.fb.ins().iadd(base, off);
        let e_rip = self
            .fb
            .ins()
            .load(types::I64, state_flags(), entry, jt::RIP);
        let e_key = self
            .fb
            .ins()
            .load(types::I64, state_flags(), entry, jt::KEY);
        let rip_ok = self.fb.ins().icmp(IntCC::Equal, e_rip, rip);
        let want = self.iconst(key);
        let key_ok = self.fb.ins().icmp(IntCC::Equal, e_key, want);
        let hit = self.fb.ins().band(rip_ok, key_ok);
        let go = self.fb.create_block();
        let miss = self.fb.create_block();
        self.fb.ins().brif(hit, go, &[], miss, &[]);
        self.fb.seal_block(go);
        self.fb.seal_block(miss);
        self.fb.switch_to_block(go);
        self.hop_to(entry, jt::CODE);
        self.fb.switch_to_block(miss);
    }
}

impl Builder for JitBuilder<'_> {
    type Value = Value;
    type Trap = Exited;

    fn imm(&mut self, v: u64) -> Value {
        self.iconst(v)
    }
    fn add(&mut self, a: Value, b: Value) -> Value {
        match (self.facts.konst(a), self.facts.konst(b)) {
            (Some(x), Some(y)) => return self.iconst(x.wrapping_add(y)),
            (_, Some(0)) => return a,
            (Some(0), _) => return b,
            _ => {}
        }
        let bits = self.bits_of(a).max(self.bits_of(b)) + 1;
        let v = self.fb.ins().iadd(a, b);
        self.with_bits(v, bits)
    }
    fn sub(&mut self, a: Value, b: Value) -> Value {
        match (self.facts.konst(a), self.facts.konst(b)) {
            (Some(x), Some(y)) => self.iconst(x.wrapping_sub(y)),
            (_, Some(0)) => a,
            _ => self.fb.ins().isub(a, b),
        }
    }
    fn mul(&mut self, a: Value, b: Value) -> Value {
        match self.consts(a, b) {
            Some((x, y)) => self.iconst(x.wrapping_mul(y)),
            None => self.fb.ins().imul(a, b),
        }
    }
    fn umulh(&mut self, a: Value, b: Value) -> Value {
        self.fb.ins().umulhi(a, b)
    }
    fn smulh(&mut self, a: Value, b: Value) -> Value {
        self.fb.ins().smulhi(a, b)
    }
    fn and(&mut self, a: Value, b: Value) -> Value {
        let (fa, fb) = (self.facts.get(a), self.facts.get(b));
        match (fa.konst, fb.konst) {
            (Some(x), Some(y)) => return self.iconst(x & y),
            (_, Some(m)) if fa.may_be_set() & !m == 0 => return a,
            (Some(m), _) if fb.may_be_set() & !m == 0 => return b,
            (_, Some(0)) | (Some(0), _) => return self.iconst(0),
            _ => {}
        }
        let bits = fa.bits.min(fb.bits);
        let v = self.fb.ins().band(a, b);
        self.with_bits(v, u32::from(bits))
    }
    fn or(&mut self, a: Value, b: Value) -> Value {
        match (self.facts.konst(a), self.facts.konst(b)) {
            (Some(x), Some(y)) => return self.iconst(x | y),
            (_, Some(0)) => return a,
            (Some(0), _) => return b,
            _ => {}
        }
        let bits = self.bits_of(a).max(self.bits_of(b));
        let v = self.fb.ins().bor(a, b);
        self.with_bits(v, bits)
    }
    fn xor(&mut self, a: Value, b: Value) -> Value {
        match (self.facts.konst(a), self.facts.konst(b)) {
            (Some(x), Some(y)) => return self.iconst(x ^ y),
            (_, Some(0)) => return a,
            (Some(0), _) => return b,
            _ if a == b => return self.iconst(0),
            _ => {}
        }
        let bits = self.bits_of(a).max(self.bits_of(b));
        let v = self.fb.ins().bxor(a, b);
        self.with_bits(v, bits)
    }
    fn not(&mut self, a: Value) -> Value {
        match self.facts.konst(a) {
            Some(x) => self.iconst(!x),
            None => self.fb.ins().bnot(a),
        }
    }
    fn neg(&mut self, a: Value) -> Value {
        match self.facts.konst(a) {
            Some(x) => self.iconst(x.wrapping_neg()),
            None => self.fb.ins().ineg(a),
        }
    }
    // Cranelift takes shift and rotate amounts modulo the type width, as the trait specifies.
    fn shl(&mut self, a: Value, n: Value) -> Value {
        match (self.facts.konst(a), self.facts.konst(n)) {
            (Some(x), Some(k)) => self.iconst(x << (k & 63)),
            (_, Some(k)) if k & 63 == 0 => a,
            (_, Some(k)) => {
                let bits = self.bits_of(a) + (k & 63) as u32;
                let v = self.fb.ins().ishl(a, n);
                self.with_bits(v, bits)
            }
            _ => self.fb.ins().ishl(a, n),
        }
    }
    fn lshr(&mut self, a: Value, n: Value) -> Value {
        match (self.facts.konst(a), self.facts.konst(n)) {
            (Some(x), Some(k)) => self.iconst(x >> (k & 63)),
            (_, Some(k)) if k & 63 == 0 => a,
            (_, Some(k)) => {
                let bits = self.bits_of(a).saturating_sub((k & 63) as u32);
                let v = self.fb.ins().ushr(a, n);
                self.with_bits(v, bits)
            }
            _ => {
                let bits = self.bits_of(a);
                let v = self.fb.ins().ushr(a, n);
                self.with_bits(v, bits)
            }
        }
    }
    fn ashr(&mut self, a: Value, n: Value) -> Value {
        match self.consts(a, n) {
            Some((x, k)) => self.iconst(((x as i64) >> (k & 63)) as u64),
            None => self.fb.ins().sshr(a, n),
        }
    }
    fn rotl(&mut self, a: Value, n: Value) -> Value {
        match self.consts(a, n) {
            Some((x, k)) => self.iconst(x.rotate_left((k & 63) as u32)),
            None => self.fb.ins().rotl(a, n),
        }
    }
    fn rotr(&mut self, a: Value, n: Value) -> Value {
        match self.consts(a, n) {
            Some((x, k)) => self.iconst(x.rotate_right((k & 63) as u32)),
            None => self.fb.ins().rotr(a, n),
        }
    }
    fn popcnt(&mut self, a: Value) -> Value {
        let v = self.fb.ins().popcnt(a);
        self.with_bits(v, 7)
    }
    fn clz(&mut self, a: Value) -> Value {
        let v = self.fb.ins().clz(a);
        self.with_bits(v, 7)
    }
    fn ctz(&mut self, a: Value) -> Value {
        let v = self.fb.ins().ctz(a);
        self.with_bits(v, 7)
    }
    fn bswap(&mut self, a: Value) -> Value {
        self.fb.ins().bswap(a)
    }
    fn icmp(&mut self, cond: Cond, a: Value, b: Value) -> Value {
        if let Some((x, y)) = self.consts(a, b) {
            return self.iconst(u64::from(cond.eval(x, y)));
        }
        let c = self.fb.ins().icmp(cc(cond), a, b);
        let v = self.fb.ins().uextend(types::I64, c);
        self.with_bits(v, 1)
    }
    fn select(&mut self, c: Value, a: Value, b: Value) -> Value {
        match self.facts.konst(c) {
            Some(0) => b,
            Some(_) => a,
            None if a == b => a,
            None => {
                let bits = self.bits_of(a).max(self.bits_of(b));
                let v = self.fb.ins().select(c, a, b);
                self.with_bits(v, bits)
            }
        }
    }
    fn zext(&mut self, a: Value, w: Width) -> Value {
        let bits = w.bytes() as u32 * 8;
        if self.bits_of(a) <= bits {
            return a;
        }
        if let Some(x) = self.facts.konst(a) {
            return self.iconst(x & low_mask(bits));
        }
        let v = self.fb.ins().band_imm_s(a, w.mask() as i64);
        self.with_bits(v, bits)
    }
    fn sext(&mut self, a: Value, w: Width) -> Value {
        if w == Width::W64 {
            return a;
        }
        let bits = w.bytes() as u32 * 8;
        if let Some(x) = self.facts.konst(a) {
            let shift = 64 - bits;
            return self.iconst((((x << shift) as i64) >> shift) as u64);
        }
        let n = self.fb.ins().ireduce(ty(w), a);
        self.fb.ins().sextend(types::I64, n)
    }

    fn load_state(&mut self, offset: usize, w: Width) -> Value {
        let slot = offset & !7;
        if self.region_depth == 0 && offset == slot && self.cacheable(slot) {
            let full = match self.cache.get(&slot) {
                Some(&(v, _)) => v,
                None => {
                    let ctx = self.ctx;
                    let v = self
                        .fb
                        .ins()
                        .load(types::I64, state_flags(), ctx, slot as i32);
                    self.cache.insert(slot, (v, false));
                    v
                }
            };
            return self.zext(full, w);
        }
        if self.region_depth == 0 {
            self.evict(slot);
        }
        let ctx = self.ctx;
        let v = self.fb.ins().load(ty(w), state_flags(), ctx, offset as i32);
        if w == Width::W64 {
            v
        } else {
            let v = self.fb.ins().uextend(types::I64, v);
            self.with_bits(v, w.bytes() as u32 * 8)
        }
    }

    fn store_state(&mut self, offset: usize, w: Width, v: Value) {
        let slot = offset & !7;
        if self.region_depth == 0 && offset == slot && self.cacheable(slot) {
            let merged = if w == Width::W64 {
                v
            } else {
                // A narrow write keeps the slot's other bytes.
                let old = self.load_state(slot, Width::W64);
                let keep = self.fb.ins().band_imm_s(old, !(w.mask() as i64));
                let low = self.zext(v, w);
                self.fb.ins().bor(keep, low)
            };
            self.cache.insert(slot, (merged, true));
            return;
        }
        if self.region_depth == 0 {
            self.evict(slot);
        } else if self.cacheable(slot) {
            self.stored_in_region.push(slot);
        }
        let v = if w == Width::W64 {
            v
        } else {
            self.fb.ins().ireduce(ty(w), v)
        };
        let ctx = self.ctx;
        self.fb.ins().store(state_flags(), v, ctx, offset as i32);
    }

    fn load(&mut self, addr: Value, w: Width) -> Result<Value, Exited> {
        let Some((host, slow)) = self.tlb_probe(addr, w, false) else {
            return Ok(self.slow_load(addr, w));
        };
        // Fast path: read RAM directly.
        let merge = self.fb.create_block();
        let result = self.fb.append_block_param(merge, types::I64);
        let raw = self.fb.ins().load(ty(w), host_flags(), host, 0);
        let v = if w == Width::W64 {
            raw
        } else {
            self.fb.ins().uextend(types::I64, raw)
        };
        self.fb.ins().jump(merge, &[v.into()]);
        self.fb.switch_to_block(slow);
        let v = self.slow_load(addr, w);
        self.fb.ins().jump(merge, &[v.into()]);
        self.fb.seal_block(merge);
        self.fb.switch_to_block(merge);
        Ok(result)
    }

    fn store(&mut self, addr: Value, w: Width, v: Value) -> Result<(), Exited> {
        let Some((host, slow)) = self.tlb_probe(addr, w, true) else {
            self.slow_store(addr, w, v);
            return Ok(());
        };
        let merge = self.fb.create_block();
        let narrow = if w == Width::W64 {
            v
        } else {
            self.fb.ins().ireduce(ty(w), v)
        };
        self.fb.ins().store(host_flags(), narrow, host, 0);
        self.fb.ins().jump(merge, &[]);
        self.fb.switch_to_block(slow);
        self.slow_store(addr, w, v);
        self.fb.ins().jump(merge, &[]);
        self.fb.seal_block(merge);
        self.fb.switch_to_block(merge);
        Ok(())
    }

    fn call(&mut self, helper: &Helper, args: &[Value]) -> Result<Value, Exited> {
        // Helpers read and write the context: it must be current before, and may have
        // changed after.
        self.write_back(false);
        self.cache.clear();
        let f = self.iconst(helper.func as usize as u64);
        let zero = self.iconst(0);
        let a = |i: usize| args.get(i).copied().unwrap_or(zero);
        let ctx = self.ctx;
        let call = self
            .fb
            .ins()
            .call_indirect(self.sig_helper, f, &[ctx, a(0), a(1), a(2), a(3)]);
        let v = self.fb.inst_results(call)[0];
        if helper.may_raise {
            self.check_trap();
        }
        Ok(v)
    }

    fn raise(&mut self, vector: u8, error_code: Option<Value>) -> Exited {
        let vec = self.iconst(u64::from(vector) + 1);
        let code = match error_code {
            Some(v) => v,
            None => self.iconst(u64::MAX),
        };
        let ctx = self.ctx;
        let (vo, eo) = (self.abi.trap_vector_offset, self.abi.trap_error_offset);
        self.fb.ins().store(state_flags(), vec, ctx, vo);
        self.fb.ins().store(state_flags(), code, ctx, eo);
        self.exit_with(EXIT_TRAP, true);
        Exited
    }

    fn flags_memo(&mut self) -> &mut Option<FlagsMemo<Value>> {
        &mut self.memo
    }

    fn if_then(
        &mut self,
        c: Value,
        then: impl FnOnce(&mut Self) -> Result<(), Exited>,
    ) -> Result<(), Exited> {
        match self.facts.konst(c) {
            // The region never runs.
            Some(0) => return Ok(()),
            // The region always runs: it is straight-line code here.
            Some(_) => {
                let _ = then(self);
                return Ok(());
            }
            None => {}
        }
        // Inside the region the cache is bypassed, so memory must be current on entry; values
        // cached before it stay valid after it unless the region stored to their slot.
        if self.region_depth == 0 {
            self.write_back(false);
        }
        let then_b = self.fb.create_block();
        let merge = self.fb.create_block();
        self.fb.ins().brif(c, then_b, &[], merge, &[]);
        self.fb.seal_block(then_b);
        self.fb.switch_to_block(then_b);
        let before = self.memo;
        self.region_depth += 1;
        // A raise inside leaves us in an unreachable block: joining it to `merge` is harmless.
        let _ = then(self);
        self.region_depth -= 1;
        if self.region_depth == 0 {
            for slot in std::mem::take(&mut self.stored_in_region) {
                self.cache.remove(&slot);
            }
        }
        // Values defined inside the region do not dominate the merge, and the region may not
        // have run: a memo it changed is unusable after it.
        if self.memo != before {
            self.memo = None;
        }
        self.fb.ins().jump(merge, &[]);
        self.fb.seal_block(merge);
        self.fb.switch_to_block(merge);
        Ok(())
    }
}
