//! Translator throughput over real guest code: blocks per second for decoding (iced-x86 block
//! forming), decoding plus Cranelift compilation (the JIT engine's tier-1 path), and
//! interpreting a block once (tier 0), over a fixed corpus of 2,000 busybox blocks.
//!
//! The engine's translator modules are private to the accel crate, so this bench compiles the
//! very same source files into itself (`#[path]` below) instead of copying their logic: what
//! is measured is what the engine runs. Without the busybox fixture (and no way to fetch it)
//! the bench says that it did not run and why, and measures nothing.
//!
//! `cargo bench -p tandem-accel --bench translate`; after criterion's figures it prints its own
//! summary: µs per block for each path and host code bytes per guest instruction.

// The engine's block forming and compile job, with the modules they reach (`super::` in them
// is this crate's root). Only part of each is used here, and `cargo test` builds compile their
// unit-test modules without the tests (harness = false): hence the allows.
#[allow(dead_code, unused_imports)]
#[path = "../../src/tcg/block.rs"]
mod block;
#[allow(dead_code, unused_imports)]
#[path = "../../src/tcg/code_watch.rs"]
mod code_watch;
#[allow(dead_code, unused_imports)]
#[path = "../../src/tcg/compile.rs"]
mod compile;
#[allow(dead_code, unused_imports)]
#[path = "../../src/tcg/fast_hash.rs"]
mod fast_hash;
#[allow(dead_code, unused_imports)]
#[path = "../../src/tcg/jit_glue.rs"]
mod jit_glue;
#[allow(dead_code, unused_imports)]
#[path = "../../src/tcg/memory.rs"]
mod memory;
#[allow(dead_code, unused_imports)]
#[path = "../../src/tcg/thread_cpu.rs"]
mod thread_cpu;

#[allow(dead_code, unused_imports)]
#[path = "../../src/tcg/tlb.rs"]
mod tlb;

mod corpus;

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use tandem_target_x86_64::cpu_state::bits;
use tandem_target_x86_64::semantics::{translate, Dc, Flow};
use tandem_target_x86_64::{CpuState, X86Context};
use tandem_tcg::jit::jump_table::JumpTable;
use tandem_tcg::jit::{Compiler, JitError};
use tandem_tcg::{Interp, InterpEnv, InterpTrap, Width};

use block::{form, Block, VirtKey};
use compile::{compilable_prefix, compile, Job};
use corpus::{Corpus, GuestBlock};

const NAME: &str = "accel bench translate";

/// What the compile path needs beside a block: the engine's per-vCPU addresses baked into
/// compiled code (never run here), and the compiler.
struct Jit {
    compiler: Compiler,
    exit_request: Box<u64>,
    jump_table: Box<JumpTable>,
}

/// What compiling the corpus once gave.
#[derive(Default)]
struct Compiled {
    /// Blocks with a compilable prefix (the others stay interpreted in the engine).
    blocks: usize,
    /// Of those, the ones compiled whole (they chain).
    whole: usize,
    /// Guest instructions compiled.
    insns: u64,
    /// Host code bytes produced.
    code_bytes: u64,
}

impl Jit {
    fn new() -> Result<Self, JitError> {
        Ok(Self {
            compiler: Compiler::new()?,
            exit_request: Box::new(0),
            jump_table: JumpTable::new(),
        })
    }

    /// Compiles `block` as the engine's `job_for` + `compile` do: its compilable prefix,
    /// chained when that is the whole block; nothing when no prefix compiles.
    fn compile(&mut self, block: &Block, dc: &Dc, into: &mut Compiled) {
        let (n, chainable) = compilable_prefix(&block.insns, dc);
        if n == 0 {
            return;
        }
        let rip = block.insns[0].ip();
        let job = Job {
            id: 0,
            generation: 0,
            insns: block.insns[..n].to_vec(),
            dc: *dc,
            whole: n == block.insns.len() && chainable,
            slots: block.chain.address(),
            exit_request: &*self.exit_request as *const u64 as u64,
            jump_table: self.jump_table.address(),
            // Busybox runs at CPL 3.
            mode_key: VirtKey {
                rip,
                cs_base: 0,
                mode: 64 | 3 << 8,
            }
            .table_key(),
        };
        let code = match compile(&mut self.compiler, &job) {
            // The 64 MiB code region holds ~35 passes over the corpus: start over, as the
            // engine does (nothing here runs the code).
            Err(JitError::Full) => {
                self.compiler.reset();
                compile(&mut self.compiler, &job)
            }
            other => other,
        };
        let code = code.unwrap_or_else(|e| panic!("Cranelift failed at {rip:#x}: {e}"));
        into.blocks += 1;
        into.whole += usize::from(job.whole);
        into.insns += n as u64;
        into.code_bytes += code.size as u64;
    }
}

/// Decodes every block of the corpus; returns the instruction count (kept alive for the
/// optimizer's sake).
fn decode_all(blocks: &[GuestBlock]) -> usize {
    blocks
        .iter()
        .map(|b| {
            form(black_box(&b.bytes), b.rip, 64, b.page_bytes)
                .insns
                .len()
        })
        .sum()
}

/// Decodes and compiles every block of the corpus.
fn compile_all(jit: &mut Jit, blocks: &[GuestBlock]) -> Compiled {
    let dc = Dc::new(64);
    let mut done = Compiled::default();
    for b in blocks {
        let block = form(black_box(&b.bytes), b.rip, 64, b.page_bytes);
        jit.compile(&block, &dc, &mut done);
    }
    done
}

/// The interpreter's environment here: the context block, and guest memory that reads as
/// zeros and ignores stores (what is measured is the interpreter, not the softmmu, which
/// `--bench tlb` measures).
struct ScratchEnv {
    ctx: X86Context,
}

impl InterpEnv for ScratchEnv {
    fn context(&mut self) -> &mut [u8] {
        self.ctx.as_bytes_mut()
    }
    fn load(&mut self, _addr: u64, _w: Width) -> Result<u64, InterpTrap> {
        Ok(0)
    }
    fn store(&mut self, _addr: u64, _w: Width, _v: u64) -> Result<(), InterpTrap> {
        Ok(())
    }
    fn take_helper_exception(&mut self) -> Option<InterpTrap> {
        let v = std::mem::take(&mut self.ctx.helper_vector);
        let code = std::mem::replace(&mut self.ctx.helper_error, u64::MAX);
        (v != 0).then(|| InterpTrap::Exception {
            vector: (v - 1) as u8,
            error_code: (code != u64::MAX).then_some(code as u32),
        })
    }
}

/// A 64-bit CPU with SSE enabled, so blocks run their instructions instead of stopping at a
/// #UD or #NM on the first SSE one.
fn long_mode_context() -> X86Context {
    let mut cpu = CpuState::default();
    cpu.cr0 |= bits::CR0_PE | bits::CR0_PG;
    cpu.cr0 &= !(bits::CR0_EM | bits::CR0_TS);
    cpu.cr4 |= bits::CR4_PAE | bits::CR4_OSFXSR | bits::CR4_OSXMMEXCPT;
    cpu.efer |= bits::EFER_LME | bits::EFER_LMA;
    X86Context::new(cpu)
}

/// Interprets each decoded block once from the same starting state, as the engine's
/// `run_block` steps a block: until its end, a jump, a system instruction or a trap.
/// Returns the instructions executed.
fn interpret_all(decoded: &[Block], fresh: &X86Context, env: &mut ScratchEnv) -> usize {
    let dc = Dc::new(64);
    let mut ran = 0;
    for block in decoded {
        // Each block starts from the same registers: a count left in RCX by the block before
        // must not make a REP string instruction run for millions of iterations.
        env.ctx = *fresh;
        env.ctx.cpu.rip = block.insns[0].ip();
        for insn in &block.insns {
            ran += 1;
            match translate(&mut Interp::new(env), &dc, insn) {
                Ok(Ok(Flow::Next)) => env.ctx.cpu.rip = insn.next_ip(),
                _ => break,
            }
        }
    }
    ran
}

/// The shortest of `passes` timings of `f`, in µs per block.
fn us_per_block(passes: usize, blocks: usize, mut f: impl FnMut()) -> f64 {
    (0..passes)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .map_or(0.0, |d| d.as_secs_f64() * 1e6 / blocks as f64)
}

/// Records that the bench did not run, and why: printed, and added to the list `./test.sh`
/// counts (TANDEM_SKIP_LOG), as the workspace's tests do when `cargo test` runs this once.
fn skipped(why: &str) {
    let line = format!("SKIPPED {NAME}: {why}");
    println!("{line}");
    let log = std::env::var_os("TANDEM_SKIP_LOG");
    let mut options = std::fs::File::options();
    let file = log.and_then(|p| options.create(true).append(true).open(p).ok());
    if let Some(mut f) = file {
        let _ = writeln!(f, "{line}");
    }
}

fn main() {
    let corpus = match corpus::load() {
        Ok(c) => c,
        Err(why) => return skipped(&format!("no guest code to translate ({why})")),
    };
    let mut jit = match Jit::new() {
        Ok(j) => j,
        Err(e) => return skipped(&format!("Cranelift cannot compile for this host ({e})")),
    };
    let blocks = &corpus.blocks;
    let decoded: Vec<Block> = blocks
        .iter()
        .map(|b| form(&b.bytes, b.rip, 64, b.page_bytes))
        .collect();
    let fresh = long_mode_context();
    let mut env = ScratchEnv { ctx: fresh };

    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20)
        .configure_from_args();
    let mut g = c.benchmark_group("translate");
    // One iteration is the whole corpus (from 1 ms to ~100 ms): flat sampling keeps the
    // number of iterations, and so the run time, within the measurement time.
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(blocks.len() as u64));
    g.bench_function("decode", |b| b.iter(|| decode_all(blocks)));
    // Compiling the corpus takes ~0.5 s: 10 samples (criterion's least) fit in 5 s.
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("decode+compile", |b| {
        b.iter(|| compile_all(&mut jit, blocks))
    });
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    g.bench_function("interpret", |b| {
        b.iter(|| interpret_all(&decoded, &fresh, &mut env))
    });
    g.finish();
    c.final_summary();

    // The bench's own summary, in the units DESIGN.md and issue 5 quote. Under `cargo test`
    // (criterion's test mode) one pass is enough to check it works.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let passes = if args.iter().any(|a| a == "--bench") {
        5
    } else {
        1
    };
    let decode = us_per_block(passes, blocks.len(), || {
        black_box(decode_all(blocks));
    });
    let mut done = Compiled::default();
    let compile = us_per_block(passes, blocks.len(), || {
        done = compile_all(&mut jit, blocks);
    });
    let mut ran = 0;
    let interp = us_per_block(passes, blocks.len(), || {
        ran = interpret_all(&decoded, &fresh, &mut env);
    });
    print_summary(&corpus, &done, [decode, compile, interp], ran);
}

fn print_summary(corpus: &Corpus, done: &Compiled, us: [f64; 3], interpreted: usize) {
    let n = corpus.blocks.len();
    let [decode, compile, interp] = us;
    println!("\ntranslator summary ({NAME}):");
    println!(
        "  corpus: {n} blocks from busybox .text ({} KiB) in {}",
        corpus.text_bytes / 1024,
        corpus.source.display()
    );
    println!(
        "          {:.2} instructions, {:.1} guest bytes per block",
        corpus.insns as f64 / n as f64,
        corpus.guest_bytes as f64 / n as f64
    );
    println!(
        "  decode:          {decode:8.3} µs/block  {:10.0} blocks/s",
        1e6 / decode
    );
    println!(
        "  decode+compile:  {compile:8.3} µs/block  {:10.0} blocks/s  ({:.2} µs per compiled guest instruction)",
        1e6 / compile,
        compile * n as f64 / done.insns.max(1) as f64
    );
    println!(
        "  compiled: {} of {n} blocks ({} whole, the rest a prefix), {} of {} instructions",
        done.blocks, done.whole, done.insns, corpus.insns
    );
    println!(
        "  host code: {:.1} bytes per guest instruction, {:.0} bytes per compiled block",
        done.code_bytes as f64 / done.insns.max(1) as f64,
        done.code_bytes as f64 / done.blocks.max(1) as f64
    );
    println!(
        "  interpret once:  {interp:8.3} µs/block  {:10.0} blocks/s  ({interpreted} instructions run)",
        1e6 / interp
    );
}
