//! A vCPU under the JIT engine: the execution loop.
//!
//! Each turn: leave if a stop was requested, take a pending external interrupt if the guest
//! can, then find (or decode) the block at RIP and run it through tier 0 (tcg's interpreter
//! over the x86 semantics). System instructions end their block and run in
//! `target_x86_64::system`; faults are delivered through the guest's IDT; a fault during
//! delivery that escalates past #DF is a triple fault, reported as shutdown like KVM does.
//!
//! With a local APIC (the machine's interrupt connection answers as one), the APIC also gets
//! the vCPU's APIC page (`tcg::memory`), the APIC MSRs and CR8 (`vcpu::apic`); on the INTR
//! pin the vCPU first takes the APIC's events (NMI, INIT, start-up), then the vector.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use iced_x86::Instruction;
use tandem_softmmu::irq::LocalApic;
use tandem_softmmu::{InterruptAcknowledge, InterruptPin, MachineRequest};
use tandem_target_x86_64::cpu_state::CpuMode;
use tandem_target_x86_64::flags::bit;
use tandem_target_x86_64::interrupt::{self, DeliveryError, Event, EventKind};
use tandem_target_x86_64::semantics::{translate, Dc, Flow};
use tandem_target_x86_64::system::{self, SystemOutcome};
use tandem_target_x86_64::{CpuState, CpuidTable, Fault, X86Context};
use tandem_tcg::jit::fast_tlb::FastTlb;
use tandem_tcg::jit::{CompiledBlock, Compiler, EXIT_NORMAL, EXIT_TRAP};
use tandem_tcg::{Interp, InterpTrap};

mod apic;

use super::block::{form, Block, BlockCache, BlockKey, VirtKey};
use super::compile::{compilable_prefix, compile, Job, Outcome, Worker};
use super::env::{fetch, TcgEnv};
use super::memory::{BoundLinear, Linear, MemoryState};
use super::rep_string;
use super::system_bus::TcgSystemBus;
use crate::accelerator::{IrqchipConnection, MachineBus, TcgConfig, Tier, Vcpu, VcpuExit};
use crate::error::AccelError;
use crate::log;

/// Counters of one vCPU (the `info jit` figures).
#[derive(Debug, Default, Clone)]
pub struct TcgStats {
    /// Blocks executed.
    pub blocks_run: u64,
    /// Instructions executed.
    pub insns_run: u64,
    /// Guest exceptions and interrupts delivered.
    pub events_delivered: u64,
    /// Instructions without semantics, by mnemonic (each raised #UD).
    pub unimplemented: BTreeMap<String, u64>,
    /// Blocks entered through compiled code.
    pub jit_blocks_run: u64,
    /// Software TLB hits.
    pub tlb_hits: u64,
    /// Software TLB misses (page walks).
    pub tlb_misses: u64,
    /// Blocks decoded.
    pub blocks_translated: u64,
    /// Nanoseconds spent fetching and decoding blocks.
    pub decode_nanos: u64,
    /// Page-sized chunks of REP MOVS/STOS done in bulk.
    pub string_chunks: u64,
}

/// Runs a block needs before tier `auto` compiles it. Compiling costs ~200 µs of the worker
/// thread, interpreting a block ~0.6 µs of the vCPU's: at 16 the Linux boot queued more than
/// the worker could compile and its hot blocks waited, interpreted (boot to /init 5.8-8.8 s);
/// 64 and 128 both gave 4.1-4.9 s, 128 with a quarter less compiling (measured side by side).
const HOT_THRESHOLD: u32 = 100;

/// One vCPU of the JIT engine.
pub struct TcgVcpu {
    index: u32,
    ctx: Box<X86Context>,
    bus: MachineBus,
    irq: Option<(
        std::sync::Arc<InterruptPin>,
        std::sync::Arc<dyn InterruptAcknowledge>,
    )>,
    /// The vCPU's local APIC, when its interrupt controller is one.
    lapic: Option<Arc<dyn LocalApic>>,
    /// After INIT, an application processor waits for a start-up IPI.
    wait_for_sipi: bool,
    cpuid: CpuidTable,
    blocks: BlockCache,
    mem: MemoryState,
    boot: Instant,
    stats: TcgStats,
    config: TcgConfig,
    compiler: Option<Compiler>,
    /// Set by other threads (stop requests, interrupts) and by writes to code: chained code
    /// returns to the dispatcher when it sees it.
    exit_request: Arc<AtomicU64>,
    /// The chain slots of the block compiled code last left through, and the block-cache
    /// generation they belong to: its successor gets linked if it runs next.
    pending_link: Option<(u64, u64)>,
    /// CPU time of the vCPU thread as of the last return from `run`, nanoseconds.
    cpu_nanos: u64,
    /// The background compiler (tier `auto`), started at the first hot block.
    worker: Option<Worker>,
    /// Blocks handed to it, by job id.
    in_flight: HashMap<u64, Rc<Block>>,
    next_job: u64,
}

// SAFETY-free note: TcgVcpu holds Rc'd blocks, which are not Send; the cache is per vCPU and
// rebuilt rather than moved, so the vCPU stores none across threads: see `Send` below.
// SAFETY: the Rc<Block> values live only inside `blocks`, which is never shared: the vCPU and
// everything it owns move to the vCPU thread together, and no Rc escapes a call to `run`.
unsafe impl Send for TcgVcpu {}

/// Runs `f` with the context and guest memory as seen by the CPU state at this moment (system
/// instructions and delivery: paging and CPL as they were when it started).
fn with_memory<R>(
    ctx: &mut X86Context,
    bus: &MachineBus,
    state: &mut MemoryState,
    f: impl FnOnce(&mut X86Context, &mut BoundLinear) -> R,
) -> R {
    let mut linear = Linear {
        space: &bus.memory,
        state,
    };
    let cpu = ctx.cpu;
    let mut mem = BoundLinear {
        linear: &mut linear,
        cpu,
    };
    f(ctx, &mut mem)
}

/// Intel-syntax text of one instruction.
fn disasm(i: &Instruction) -> String {
    use iced_x86::Formatter;
    let mut f = iced_x86::IntelFormatter::new();
    let mut out = String::new();
    f.format(i, &mut out);
    out
}

/// Why a block ended early.
enum BlockEnd {
    Continue,
    Halted,
    Shutdown,
    /// The guest needs something the model lacks (an unsupported delivery case).
    Failed(String),
}

impl TcgVcpu {
    /// Shares this vCPU's code pages with `watch`, which hears of RAM written behind its back.
    pub fn set_code_watch(&mut self, watch: Arc<super::code_watch::CodeWatch>) {
        watch.add_vcpu(self.exit_request.clone());
        for &frame in self.mem.code_pages.iter() {
            watch.mark(frame);
        }
        self.mem.watch = Some(watch);
    }

    /// vCPU `index` over `bus`.
    pub fn new(index: u32, bus: &MachineBus, config: TcgConfig) -> Self {
        let irq = match &bus.irqchip {
            IrqchipConnection::Userspace { pin, ack } => Some((pin.clone(), ack.clone())),
            IrqchipConnection::InEngine => None,
        };
        let lapic = irq.as_ref().and_then(|(_, ack)| ack.clone().local_apic());
        let mut cpuid = tandem_target_x86_64::cpuid::jit_table();
        cpuid.filter_for_machine(
            tandem_target_x86_64::cpuid::MachineFeatures {
                apic: lapic.is_some(),
                x2apic: lapic.is_some(),
                cpus: bus.cpus,
            },
            index,
        );
        let exit_request = Arc::new(AtomicU64::new(0));
        let flag = exit_request.clone();
        bus.control
            .on_request(move || flag.store(1, Ordering::SeqCst));
        if let Some((pin, _)) = &irq {
            let flag = exit_request.clone();
            pin.on_raise(move || flag.store(1, Ordering::SeqCst));
        }
        let mut mem = MemoryState {
            exit_request: exit_request.clone(),
            apic: lapic.clone(),
            ..MemoryState::default()
        };
        mem.refresh_apic_page();
        Self {
            index,
            ctx: Box::new(X86Context::new(CpuState::default())),
            bus: bus.clone(),
            irq,
            lapic,
            wait_for_sipi: false,
            cpuid,
            blocks: BlockCache::default(),
            mem,
            boot: Instant::now(),
            stats: TcgStats::default(),
            cpu_nanos: 0,
            config,
            compiler: None,
            exit_request,
            pending_link: None,
            worker: None,
            in_flight: HashMap::new(),
            next_job: 0,
        }
    }

    /// Compilation counters (tier 1), from the vCPU's own compiler or the background one.
    pub fn compiler_stats(&self) -> Option<tandem_tcg::jit::CompilerStats> {
        self.compiler
            .as_ref()
            .map(|c| c.stats)
            .or_else(|| self.worker.as_ref().map(|w| w.stats().compiler))
    }

    /// Logs the IR and host code of a block just compiled (`-d op,out_asm`).
    fn log_listing(&self, first: u64, len: usize, code: &CompiledBlock, ir: &str, host: &[u8]) {
        if self.config.trace.op {
            log::write(&format!(
                "OP: block {first:#018x} ({len} guest instructions)\n{ir}\n"
            ));
        }
        if self.config.trace.out_asm {
            let mut t = format!("OUT: [size={}]\n", host.len());
            let mut d = iced_x86::Decoder::with_ip(64, host, code.address(), 0);
            for i in &mut d {
                t.push_str(&format!("{:#018x}:  {}\n", i.ip(), disasm(&i)));
            }
            t.push('\n');
            log::write(&t);
        }
    }

    fn listing_wanted(&self) -> bool {
        self.config.trace.op || self.config.trace.out_asm
    }

    /// The compile job for `block`'s compilable prefix, or None if it has none.
    fn job_for(&mut self, block: &Block, dc: &Dc) -> Option<Job> {
        let (n, chainable) = compilable_prefix(&block.insns, dc);
        if n == 0 {
            block.not_compilable.set(true);
            return None;
        }
        self.next_job += 1;
        Some(Job {
            id: self.next_job,
            generation: self.blocks.flushes,
            insns: block.insns[..n].to_vec(),
            dc: *dc,
            whole: n == block.insns.len() && chainable,
            slots: block.chain.address(),
            exit_request: self.exit_request.as_ptr() as u64,
            jump_table: self.blocks.jump_table.address(),
            mode_key: block.mode_key.get(),
        })
    }

    /// Compiles `block` on this thread (tier `jit`).
    fn compile_now(&mut self, block: &Block, dc: &Dc) {
        let Some(job) = self.job_for(block, dc) else {
            return;
        };
        if self.compiler.is_none() {
            match Compiler::new() {
                Ok(mut c) => {
                    c.keep_listing = self.listing_wanted();
                    self.compiler = Some(c);
                }
                Err(e) => {
                    eprintln!("tandem: tcg: Cranelift unavailable ({e}); interpreting only");
                    self.config.tier = Tier::Interp;
                    return;
                }
            }
        }
        let listing = self.listing_wanted();
        let Some(compiler) = self.compiler.as_mut() else {
            return;
        };
        match compile(compiler, &job) {
            Ok(code) => {
                block.compiled.set(Some((code, job.insns.len())));
                if listing {
                    let (ir, host) = (
                        compiler.last_ir().to_string(),
                        compiler.last_code().to_vec(),
                    );
                    self.log_listing(job.insns[0].ip(), job.insns.len(), &code, &ir, &host);
                }
            }
            Err(tandem_tcg::jit::JitError::Full) => {
                // Every compiled block points into the full region: drop them all (QEMU's
                // tb_flush) and let hot blocks compile again.
                self.blocks.flush();
                compiler.reset();
            }
            Err(e) => {
                eprintln!(
                    "tandem: tcg: compiling the block at {:#x} failed: {e}",
                    job.insns[0].ip()
                );
                block.not_compilable.set(true);
            }
        }
    }

    /// Hands `block` to the background compiler (tier `auto`).
    fn compile_later(&mut self, block: &Rc<Block>, dc: &Dc) {
        if self.worker.is_none() {
            match Worker::spawn(self.listing_wanted()) {
                Ok(w) => self.worker = Some(w),
                Err(e) => {
                    eprintln!("tandem: tcg: Cranelift unavailable ({e}); interpreting only");
                    self.config.tier = Tier::Interp;
                    return;
                }
            }
        }
        let Some(job) = self.job_for(block, dc) else {
            return;
        };
        let id = job.id;
        if self.worker.as_ref().is_some_and(|w| w.submit(job)) {
            block.queued.set(true);
            self.in_flight.insert(id, block.clone());
        }
    }

    /// Installs code the background compiler finished.
    fn collect_compiled(&mut self) {
        while let Some(outcome) = self.worker.as_ref().and_then(|w| w.poll()) {
            match outcome {
                Outcome::Done {
                    id,
                    generation,
                    code,
                    len,
                    listing,
                } => {
                    let Some(block) = self.in_flight.remove(&id) else {
                        continue;
                    };
                    block.queued.set(false);
                    if generation == self.blocks.flushes {
                        block.compiled.set(Some((code, len)));
                        if let Some((ir, host)) = listing {
                            self.log_listing(block.insns[0].ip(), len, &code, &ir, &host);
                        }
                    }
                }
                Outcome::Failed { id, error } => {
                    if let Some(block) = self.in_flight.remove(&id) {
                        eprintln!(
                            "tandem: tcg: compiling the block at {:#x} failed: {error}",
                            block.insns[0].ip()
                        );
                        block.not_compilable.set(true);
                    }
                }
                Outcome::Full { id } => {
                    // Drop every block (and so every pointer into the worker's region), then
                    // let the worker start over; jobs queued before the reset are stale.
                    self.in_flight.remove(&id);
                    self.blocks.flush();
                    self.in_flight.clear();
                    if let Some(w) = &self.worker {
                        w.reset();
                    }
                }
            }
        }
    }

    /// Runs `block`'s compiled prefix (compiling it first when hot). Returns how many
    /// instructions ran and, if the block is over, how it ended; None if nothing ran.
    fn run_compiled(&mut self, block: &Rc<Block>, dc: &Dc) -> Option<(usize, Option<BlockEnd>)> {
        if !self.in_flight.is_empty() {
            self.collect_compiled();
        }
        let runs = block.runs.get().saturating_add(1);
        block.runs.set(runs);
        let threshold = if self.config.tier == Tier::Jit {
            1
        } else {
            HOT_THRESHOLD
        };
        if block.compiled.get().is_none()
            && !block.not_compilable.get()
            && !block.queued.get()
            && runs >= threshold
        {
            if self.config.tier == Tier::Jit {
                self.compile_now(block, dc);
            } else {
                self.compile_later(block, dc);
            }
        }
        let (code, covered) = block.compiled.get()?;
        self.stats.jit_blocks_run += 1;
        self.stats.insns_run += covered as u64;
        let exit = {
            let mut linear = Linear {
                space: &self.bus.memory,
                state: &mut self.mem,
            };
            let user = usize::from(self.ctx.cpu.cpl() == 3);
            self.ctx.fast_tlb = &mut linear.state.fast[user] as *mut FastTlb as u64;
            self.ctx.engine = &mut linear as *mut Linear as u64;
            self.ctx.chain_last = 0;
            let ctx = self.ctx.as_bytes_mut().as_mut_ptr();
            // SAFETY: the code was compiled by our live compiler for X86Context's ABI, and
            // `engine` points at a Linear that outlives the call (see jit_glue).
            let exit = unsafe { code.call(ctx) };
            self.ctx.engine = 0;
            self.ctx.fast_tlb = 0;
            exit
        };
        // After a write to code the blocks are gone, including the one whose chain slots
        // `chain_last` names: nothing to link then.
        let code_written = self.drop_translations_if_code_written();
        if exit == EXIT_NORMAL && self.ctx.chain_last != 0 && !code_written {
            self.pending_link = Some((self.ctx.chain_last, self.blocks.flushes));
        }
        if exit == EXIT_TRAP {
            let vector = std::mem::take(&mut self.ctx.helper_vector).saturating_sub(1) as u8;
            let code = std::mem::replace(&mut self.ctx.helper_error, u64::MAX);
            let cr2 = if vector == tandem_target_x86_64::exception::vector::PF {
                self.mem.last_cr2.take()
            } else {
                None
            };
            let fault = Fault {
                vector,
                error_code: (code != u64::MAX).then_some(code as u32),
                cr2,
            };
            return Some((covered, Some(self.raise(fault))));
        }
        // The interpreter continues the block only where the compiled prefix fell through to
        // it; a prefix that ended in a transfer (a branch, a REP string instruction going
        // round again) left RIP elsewhere.
        match block.insns.get(covered) {
            Some(next) if next.ip() == self.ctx.cpu.rip => Some((covered, None)),
            _ => Some((covered, Some(BlockEnd::Continue))),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> TcgStats {
        let mut s = self.stats.clone();
        (s.tlb_hits, s.tlb_misses) = self.mem.tlb.stats();
        s.blocks_translated = self.blocks.translated;
        s
    }

    fn bitness(cpu: &CpuState) -> u32 {
        match cpu.mode() {
            CpuMode::Long64 => 64,
            CpuMode::Protected32 | CpuMode::Compat32 => 32,
            CpuMode::Real | CpuMode::Protected16 | CpuMode::Compat16 => 16,
        }
    }

    /// Forgets every translation and which pages held code.
    fn drop_translations(&mut self) {
        self.mem.code_written.clear();
        self.mem.code_pages.clear();
        self.pending_link = None;
        self.blocks.flush();
    }

    /// Drops the translations on pages guest code was written to since the last check; true
    /// if there were any.
    #[inline]
    fn drop_translations_if_code_written(&mut self) -> bool {
        if let Some(w) = &self.mem.watch {
            w.drain_into(&mut self.mem.code_written);
        }
        if self.mem.code_written.is_empty() {
            return false;
        }
        self.drop_written_translations()
    }

    /// The rare half of [`Self::drop_translations_if_code_written`], kept out of line.
    #[cold]
    fn drop_written_translations(&mut self) -> bool {
        for frame in std::mem::take(&mut self.mem.code_written) {
            self.blocks.invalidate_page(frame);
            if !self.blocks.has_page(frame) {
                self.mem.code_pages.remove(&frame);
            }
        }
        // The dispatcher has control: nothing runs the dropped blocks' code, and the pending
        // link may name their slots.
        self.pending_link = None;
        self.blocks.release_retired();
        true
    }

    /// Links the block compiled code last left from to `block`, if both allow it.
    fn link_from_pending(&mut self, block: &Block) {
        let Some((slots, generation)) = self.pending_link.take() else {
            return;
        };
        if generation != self.blocks.flushes {
            return;
        }
        let Some(code) = block.whole_code() else {
            return;
        };
        let rip = block.insns.first().map_or(u64::MAX, |i| i.ip());
        // SAFETY: `slots` is the ChainSlots of a block compiled code returned from, and no
        // flush happened since (generation check): that block is still owned by the cache.
        let slots = unsafe { &*(slots as *const tandem_tcg::jit::chain::ChainSlots) };
        if slots.may_link(rip) {
            slots.link(rip, code.address());
        }
    }

    /// Delivers `event`.
    fn deliver(&mut self, event: Event) -> BlockEnd {
        // The next block is the handler, not the successor of the last compiled block.
        self.pending_link = None;
        self.stats.events_delivered += 1;
        self.ctx.sync_flags();
        if self.config.trace.int {
            let c = &self.ctx.cpu;
            let (e, cr2) = match event.kind {
                EventKind::Exception { error_code, cr2 } => (error_code, cr2),
                _ => (None, None),
            };
            log::write(&format!(
                "{:6}: v={:02x} e={:04x} i={} cpl={} IP={:04x}:{:016x} SP={:04x}:{:016x} CR2={:016x}\n",
                self.stats.events_delivered,
                event.vector,
                e.unwrap_or(0),
                u8::from(matches!(event.kind, EventKind::Software { .. })),
                c.cpl(),
                c.seg[tandem_target_x86_64::cpu_state::sreg::CS].selector,
                c.rip,
                c.seg[tandem_target_x86_64::cpu_state::sreg::SS].selector,
                c.gpr[tandem_target_x86_64::cpu_state::reg::RSP],
                cr2.unwrap_or(c.cr2)
            ));
        }
        let delivered = with_memory(&mut self.ctx, &self.bus, &mut self.mem, |ctx, mem| {
            interrupt::deliver(ctx, mem, event)
        });
        match delivered {
            Ok(()) => {
                // Delivery may change CPL and stacks: cached user/supervisor translations stay
                // valid, and the mode of the next block comes from the new state.
                self.ctx.cpu.halted = false;
                BlockEnd::Continue
            }
            Err(DeliveryError::TripleFault { .. }) => BlockEnd::Shutdown,
            Err(e @ DeliveryError::Unsupported(_)) => BlockEnd::Failed(e.to_string()),
        }
    }

    /// Finds or decodes the block at `key` (linear PC `pc`) through the page walk.
    /// With it: whether its page is mapped global.
    fn lookup_block(&mut self, vkey: VirtKey, pc: u64) -> Result<(Rc<Block>, bool), Fault> {
        let mut linear = Linear {
            space: &self.bus.memory,
            state: &mut self.mem,
        };
        let t = linear.translate_fetch(&self.ctx.cpu, pc)?;
        let phys = t.phys;
        let key = BlockKey {
            phys,
            rip: vkey.rip,
            cs_base: vkey.cs_base,
            mode: vkey.mode,
        };
        let block = match self.blocks.get(&key) {
            Some(b) => b,
            None => {
                let page_bytes = 4096 - (pc & 0xfff) as usize;
                let mut bytes = vec![0u8; page_bytes + 15];
                let started = Instant::now();
                let mut frames = [None; 2];
                let n = fetch(&mut linear, &self.ctx, pc, &mut bytes, &mut frames)?;
                let block = form(&bytes[..n], vkey.rip, vkey.mode & 0xff, page_bytes.min(n));
                // The pages the block's bytes are on: the next one only if it crosses.
                let len = block
                    .insns
                    .last()
                    .map_or(0, |i| i.next_ip().wrapping_sub(vkey.rip) as usize);
                let used = if len > page_bytes { 2 } else { 1 };
                let pages: Vec<u64> = frames[..used].iter().flatten().copied().collect();
                for p in &pages {
                    let host = linear.space.ram_page_host(*p << 12);
                    linear.state.add_code_page(*p, host);
                }
                self.stats.decode_nanos += started.elapsed().as_nanos() as u64;
                if self.config.trace.in_asm {
                    let mut t = String::from("----------------\nIN: \n");
                    for i in &block.insns {
                        t.push_str(&format!("{:#018x}:  {}\n", i.ip(), disasm(i)));
                    }
                    t.push('\n');
                    log::write(&t);
                }
                block.mode_key.set(vkey.table_key());
                self.blocks.insert(key, block, &pages)
            }
        };
        // A block crossing into another page is kept only as long as both mappings; only
        // the first one's global bit is known here.
        let crosses = block
            .insns
            .last()
            .is_some_and(|i| (i.next_ip().wrapping_sub(1) ^ vkey.rip) & !0xfff != 0);
        let global = t.global && !crosses;
        self.blocks.remember(vkey, &block, global);
        Ok((block, global))
    }

    /// Runs one block at RIP.
    fn run_block(&mut self) -> BlockEnd {
        let bitness = Self::bitness(&self.ctx.cpu);
        let cs_base = self.ctx.cpu.seg[tandem_target_x86_64::cpu_state::sreg::CS].base;
        let rip = self.ctx.cpu.rip;
        let pc = if bitness == 64 {
            rip
        } else {
            cs_base.wrapping_add(rip) & 0xffff_ffff
        };
        let vkey = VirtKey {
            rip,
            cs_base,
            mode: bitness | u32::from(self.ctx.cpu.cpl()) << 8,
        };
        let (block, global) = match self.blocks.get_fast(&vkey) {
            Some(found) => found,
            None => match self.lookup_block(vkey, pc) {
                Ok(found) => found,
                Err(f) => return self.raise(f),
            },
        };
        self.link_from_pending(&block);
        if let Some(code) = block.whole_code() {
            self.blocks
                .jump_table
                .insert(rip, block.mode_key.get(), code.address(), global);
        }
        self.stats.blocks_run += 1;
        if self.config.trace.cpu {
            self.ctx.sync_flags();
            log::write(&self.ctx.cpu.dump());
        }
        if self.config.trace.exec {
            log::write(&format!(
                "Trace {}: [{:016x}/{:016x}/{:#x}]\n",
                self.index, cs_base, rip, vkey.mode
            ));
        }
        let shadow = self.ctx.cpu.events.interrupt_shadow != 0;
        if bitness == 64 && !shadow {
            if let Some((w, movs)) = block.insns.first().and_then(rep_string::candidate) {
                // DF lives in RFLAGS itself (only the arithmetic flags are kept lazily).
                let mut linear = Linear {
                    space: &self.bus.memory,
                    state: &mut self.mem,
                };
                if rep_string::run_chunk(&mut self.ctx.cpu, &mut linear, &block.insns[0], w, movs) {
                    self.stats.string_chunks += 1;
                    return BlockEnd::Continue;
                }
            }
        }
        let dc = Dc::new(bitness);
        let mut start = 0;
        if !shadow && self.config.tier != Tier::Interp {
            if let Some((covered, end)) = self.run_compiled(&block, &dc) {
                if let Some(end) = end {
                    return end;
                }
                start = covered;
            }
        }
        for (n, insn) in block.insns.iter().enumerate().skip(start) {
            if shadow && n > 0 {
                break;
            }
            self.stats.insns_run += 1;
            let end = self.step(&dc, insn);
            if shadow {
                self.ctx.cpu.events.interrupt_shadow = 0;
            }
            if self.drop_translations_if_code_written()
                && matches!(end, Some(BlockEnd::Continue) | None)
            {
                return BlockEnd::Continue;
            }
            if let Some(end) = end {
                return end;
            }
        }
        BlockEnd::Continue
    }

    /// Executes one instruction; Some(end) if the block must end here.
    fn step(&mut self, dc: &Dc, insn: &Instruction) -> Option<BlockEnd> {
        let result = {
            let mut linear = Linear {
                space: &self.bus.memory,
                state: &mut self.mem,
            };
            let mut env = TcgEnv {
                ctx: &mut self.ctx,
                mem: &mut linear,
            };
            translate(&mut Interp::new(&mut env), dc, insn)
        };
        match result {
            Ok(Ok(Flow::Next)) => {
                self.ctx.cpu.rip = insn.next_ip();
                None
            }
            Ok(Ok(Flow::Jump)) => Some(BlockEnd::Continue),
            Ok(Ok(Flow::Halt)) => {
                self.ctx.cpu.halted = true;
                Some(BlockEnd::Halted)
            }
            Ok(Ok(Flow::System)) => Some(self.system(insn)),
            Ok(Err(_)) => {
                *self
                    .stats
                    .unimplemented
                    .entry(format!("{:?}", insn.mnemonic()))
                    .or_default() += 1;
                if self.config.trace.unimp {
                    log::write(&format!(
                        "unimplemented instruction at {:#018x}: {} ({:?})\n",
                        insn.ip(),
                        disasm(insn),
                        insn.code()
                    ));
                }
                Some(self.raise(Fault::ud()))
            }
            Err(InterpTrap::Exception { vector, error_code }) => {
                let cr2 = if vector == tandem_target_x86_64::exception::vector::PF {
                    self.mem.last_cr2.take()
                } else {
                    None
                };
                Some(self.raise(Fault {
                    vector,
                    error_code,
                    cr2,
                }))
            }
        }
    }

    fn raise(&mut self, f: Fault) -> BlockEnd {
        self.deliver(Event::from(f))
    }

    fn system(&mut self, insn: &Instruction) -> BlockEnd {
        self.ctx.sync_flags();
        let lapic = self.lapic.clone();
        let cr8 = lapic.as_ref().and_then(|_| apic::cr8_move(insn));
        if let Some(l) = &lapic {
            match apic::msr_instruction(&mut self.ctx, insn, l.as_ref(), &self.cpuid) {
                apic::MsrOutcome::NotApic => {}
                apic::MsrOutcome::Done { base_written } => {
                    if base_written {
                        self.mem.refresh_apic_page();
                    }
                    return BlockEnd::Continue;
                }
                apic::MsrOutcome::Fault(f) => return self.raise(f),
            }
            if cr8 == Some(apic::Cr8Move::Read) {
                self.ctx.cpu.cr8 = l.cr8();
            }
        }
        let mut sysbus = TcgSystemBus {
            ports: &self.bus.ports,
            cpuid: &self.cpuid,
            boot: self.boot,
            tsc_offset: 0,
            lapic: lapic.as_deref(),
        };
        let r = with_memory(&mut self.ctx, &self.bus, &mut self.mem, |ctx, mem| {
            system::execute(ctx, insn, mem, &mut sysbus)
        });
        if let (Some(l), Some(apic::Cr8Move::Write), Ok(_)) = (&lapic, cr8, &r) {
            l.set_cr8(self.ctx.cpu.cr8);
        }
        match r {
            Ok(SystemOutcome::Halt) => {
                self.ctx.cpu.halted = true;
                BlockEnd::Halted
            }
            Ok(SystemOutcome::FlushTlb) => {
                self.mem.flush_tlb();
                self.blocks.flush_jump_cache();
                BlockEnd::Continue
            }
            Ok(SystemOutcome::FlushNonGlobal) => {
                self.mem.flush_non_global();
                self.blocks.flush_jump_cache_non_global();
                BlockEnd::Continue
            }
            Ok(SystemOutcome::InvalidatePage(addr)) => {
                if self.mem.invalidate_page(addr) {
                    self.blocks.flush_jump_cache();
                } else {
                    self.blocks.flush_jump_page(addr);
                }
                BlockEnd::Continue
            }
            Ok(SystemOutcome::Continue | SystemOutcome::EndBlock) => BlockEnd::Continue,
            Err(f) => self.raise(f),
        }
    }

    /// Whether the INTR pin is raised (lock-free: asked before every block).
    fn pin_raised(&self) -> bool {
        self.irq.as_ref().is_some_and(|(pin, _)| pin.is_raised())
    }

    /// Takes what the interrupt input holds, in the CPU's order: the local APIC's events
    /// (INIT, start-up, NMI), a pending NMI if not blocked, then a maskable interrupt if
    /// RFLAGS.IF and no interrupt shadow allow it.
    fn take_interrupt(&mut self) -> BlockEnd {
        if self.pin_raised() {
            if let Some(lapic) = &self.lapic {
                let events = lapic.take_events();
                // The APIC base's BSP flag says which processor this is.
                let bsp = events.init
                    && lapic
                        .read_msr(tandem_target_x86_64::msr::IA32_APIC_BASE)
                        .is_ok_and(|base| base & (1 << 8) != 0);
                let actions =
                    apic::apply_events(&mut self.ctx.cpu, &mut self.wait_for_sipi, bsp, events);
                if actions.reset_machine {
                    self.bus.control.request(MachineRequest::Reset);
                }
            }
        }
        if self.wait_for_sipi {
            return BlockEnd::Continue;
        }
        if self.ctx.cpu.events.nmi_pending && interrupt::nmi_allowed(&self.ctx) {
            self.ctx.cpu.events.nmi_pending = false;
            return self.deliver(Event {
                vector: tandem_target_x86_64::exception::vector::NMI,
                kind: EventKind::Nmi,
            });
        }
        if !self.pin_raised() || !interrupt::interrupts_allowed(&self.ctx) {
            return BlockEnd::Continue;
        }
        let Some(vector) = self.irq.as_ref().and_then(|(_, ack)| ack.acknowledge()) else {
            return BlockEnd::Continue;
        };
        self.deliver(Event {
            vector,
            kind: EventKind::External,
        })
    }

    fn stuck(&mut self, reason: String) -> AccelError {
        self.ctx.sync_flags();
        AccelError::GuestStuck {
            reason: format!("vCPU {}: {reason}", self.index),
            dump: self.ctx.cpu.dump(),
        }
    }

    /// Runs blocks until the vCPU halts, stops, shuts down or fails.
    fn run_until_exit(&mut self) -> Result<VcpuExit, AccelError> {
        loop {
            // Cleared before the checks it stands for, so a request arriving after them is
            // still seen by chained code.
            self.exit_request.store(0, Ordering::SeqCst);
            // Device DMA may have written code pages while the vCPU was away.
            self.drop_translations_if_code_written();
            if self.bus.control.stop_requested() {
                return Ok(VcpuExit::Stopped);
            }
            match self.take_interrupt() {
                BlockEnd::Shutdown => return Ok(VcpuExit::Shutdown),
                BlockEnd::Failed(why) => return Err(self.stuck(why)),
                BlockEnd::Continue | BlockEnd::Halted => {}
            }
            if self.ctx.cpu.halted || self.wait_for_sipi {
                // Waiting for a start-up IPI is waiting for the pin, whatever IF says.
                return Ok(VcpuExit::Halted {
                    interrupts_enabled: self.wait_for_sipi || self.ctx.cpu.rflags & bit::IF != 0,
                });
            }
            match self.run_block() {
                // The next turn takes an interrupt that may already wait, or reports the halt.
                BlockEnd::Continue | BlockEnd::Halted => {}
                BlockEnd::Shutdown => return Ok(VcpuExit::Shutdown),
                BlockEnd::Failed(why) => return Err(self.stuck(why)),
            }
        }
    }
}

impl Vcpu for TcgVcpu {
    fn run(&mut self) -> Result<VcpuExit, AccelError> {
        let r = self.run_until_exit();
        // Read at each return (halts, stops: at most a few thousand a second), so the report
        // can be made from another thread.
        self.cpu_nanos = super::thread_cpu::thread_cpu_nanos();
        r
    }

    fn stats_report(&self) -> Option<String> {
        use std::fmt::Write;
        let s = self.stats();
        let mut r = String::new();
        let _ = writeln!(r, "tcg vCPU {} ({:?} tier):", self.index, self.config.tier);
        let _ = writeln!(
            r,
            "  blocks translated {} ({:.1} µs/block to fetch and decode)",
            s.blocks_translated,
            s.decode_nanos as f64 / 1000.0 / s.blocks_translated.max(1) as f64
        );
        let hops = self.ctx.chain_hops;
        let entries = s.jit_blocks_run + hops;
        let _ = writeln!(
            r,
            "  dispatched {} ({} into compiled code)  chained hops {} ({:.1}% of compiled block entries)",
            s.blocks_run,
            s.jit_blocks_run,
            hops,
            if entries == 0 {
                0.0
            } else {
                100.0 * hops as f64 / entries as f64
            }
        );
        let _ = writeln!(
            r,
            "  instructions interpreted or entered through the dispatcher {}  REP MOVS/STOS chunks done in bulk {}",
            s.insns_run,
            s.string_chunks
        );
        let lookups = s.tlb_hits + s.tlb_misses;
        let _ = writeln!(
            r,
            "  TLB hits {} misses {} ({:.1}% hit)  events delivered {}",
            s.tlb_hits,
            s.tlb_misses,
            if lookups == 0 {
                0.0
            } else {
                100.0 * s.tlb_hits as f64 / lookups as f64
            },
            s.events_delivered
        );
        let _ = writeln!(
            r,
            "  code pages {} (pages whose translations a write dropped {})  jump-cache flushes {}",
            self.mem.code_pages.len(),
            self.blocks.page_invalidations,
            self.blocks.jump_flushes
        );
        if let Some(c) = self.compiler_stats() {
            let per_block = c.nanos.checked_div(c.blocks).unwrap_or(0);
            let per_insn = c.code_bytes.checked_div(c.insns).unwrap_or(0);
            let _ = writeln!(
                r,
                "  compiled blocks {} ({} guest insns)  {:.1} µs/block  {} host bytes/guest insn  code {} KiB  flushes {}",
                c.blocks,
                c.insns,
                per_block as f64 / 1000.0,
                per_insn,
                c.code_bytes / 1024,
                c.flushes
            );
        }
        let secs = |n: u64| n as f64 / 1e9;
        // Tier `jit` compiles on the vCPU thread, tier `auto` on the worker's.
        let (inline, worker) = match (&self.worker, &self.compiler) {
            (Some(w), _) => (
                String::new(),
                format!("  compiler {:.2} s", secs(w.stats().cpu_nanos)),
            ),
            (None, Some(c)) => (
                format!(", compiling {:.2} s", secs(c.stats.nanos)),
                String::new(),
            ),
            (None, None) => (String::new(), String::new()),
        };
        let _ = writeln!(
            r,
            "  thread CPU: vCPU {:.2} s (decoding {:.2} s{inline}){worker}",
            secs(self.cpu_nanos),
            secs(s.decode_nanos)
        );
        if !s.unimplemented.is_empty() {
            let list: Vec<String> = s
                .unimplemented
                .iter()
                .map(|(m, n)| format!("{m} x{n}"))
                .collect();
            let _ = writeln!(r, "  unimplemented (#UD): {}", list.join(", "));
        }
        Some(r)
    }

    fn state(&mut self) -> Result<CpuState, AccelError> {
        self.ctx.sync_flags();
        if let Some(l) = &self.lapic {
            // The APIC holds these two; the context's copies may be stale.
            if let Ok(base) = l.read_msr(tandem_target_x86_64::msr::IA32_APIC_BASE) {
                self.ctx.cpu.apic_base = base;
            }
            self.ctx.cpu.cr8 = l.cr8();
        }
        Ok(self.ctx.cpu)
    }

    fn set_state(&mut self, state: &CpuState) -> Result<(), AccelError> {
        *self.ctx = X86Context::new(*state);
        if let Some(l) = &self.lapic {
            // An APIC base the APIC refuses (an invalid mode transition) leaves it as it is.
            let _ = l.write_msr(tandem_target_x86_64::msr::IA32_APIC_BASE, state.apic_base);
            l.set_cr8(state.cr8 & 0xf);
        }
        self.wait_for_sipi = false;
        self.mem.refresh_apic_page();
        self.mem.flush_tlb();
        self.drop_translations();
        Ok(())
    }
}
