//! Turning a block into host code: which prefix of it compiles, the emission through the
//! x86 semantics, and the background worker that does it off the vCPU thread.
//!
//! Tier `auto` hands hot blocks to the worker and keeps interpreting them until their code
//! arrives (DESIGN.md: Cranelift costs tens of µs per block, the interpreter nothing up
//! front). Tier `jit` compiles on the vCPU thread at the first run, so a test that forces the
//! compiler runs compiled code from the first instruction. The worker owns its own code region;
//! when it fills, the vCPU drops every block (and so every pointer into it) before the worker
//! resets it.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use iced_x86::Instruction;
use tandem_target_x86_64::context::RIP;
use tandem_target_x86_64::semantics::{translate, Dc, Flow};
use tandem_tcg::jit::{CompiledBlock, Compiler, CompilerStats, JitBuilder, JitError, EXIT_NORMAL};
use tandem_tcg::{Builder, Probe, Width};

/// How many leading instructions of `insns` have semantics that stay in generated code, and
/// whether the code may chain to the next block.
///
/// POPF may set IF with an interrupt already pending, which only the dispatcher notices (the
/// INTR pin raises no new edge): it ends its block (see `block::form`), and a block ending with
/// it is compiled to return to the dispatcher instead of chaining on. Linux's
/// `local_irq_restore` is a POPF, so leaving it to the interpreter cost a dispatch *and* an
/// interpretation per spinlock release.
pub fn compilable_prefix(insns: &[Instruction], dc: &Dc) -> (usize, bool) {
    let mut n = 0;
    for insn in insns {
        let popf = matches!(
            insn.mnemonic(),
            iced_x86::Mnemonic::Popf | iced_x86::Mnemonic::Popfd | iced_x86::Mnemonic::Popfq
        );
        match translate(&mut Probe::default(), dc, insn) {
            Ok(Ok(Flow::Next)) if popf => return (n + 1, false),
            Ok(Ok(Flow::Next)) => n += 1,
            Ok(Ok(Flow::Jump)) => return (n + 1, true),
            _ => break,
        }
    }
    (n, true)
}

/// True if every successor of the block `insns` is a constant on the block's first page: the
/// two chain slots then hold all of them (see `ChainSlots::may_link`).
pub fn successors_linkable(insns: &[Instruction]) -> bool {
    use iced_x86::{FlowControl, OpKind};
    let (Some(first), Some(last)) = (insns.first(), insns.last()) else {
        return false;
    };
    let near = matches!(
        last.op0_kind(),
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
    );
    let (a, b) = match last.flow_control() {
        FlowControl::Next => (last.next_ip(), last.next_ip()),
        FlowControl::UnconditionalBranch | FlowControl::Call if near => {
            (last.near_branch_target(), last.near_branch_target())
        }
        FlowControl::ConditionalBranch if near => (last.near_branch_target(), last.next_ip()),
        _ => return false,
    };
    let page = first.ip() & !0xfff;
    a & !0xfff == page && b & !0xfff == page
}

/// What to compile.
#[derive(Clone)]
pub struct Job {
    /// Identifies the job to the vCPU.
    pub id: u64,
    /// The block cache generation the block belongs to.
    pub generation: u64,
    /// The instructions (a compilable prefix).
    pub insns: Vec<Instruction>,
    /// Code size etc.
    pub dc: Dc,
    /// The prefix is the whole block: end with a chained exit through `slots`.
    pub whole: bool,
    /// Address of the block's chain slots.
    pub slots: u64,
    /// Address of the vCPU's exit-request flag.
    pub exit_request: u64,
    /// Address of the vCPU's jump table.
    pub jump_table: u64,
    /// The block's mode key in the jump table (CS base and mode).
    pub mode_key: u64,
}

/// Emits and compiles `job` with `compiler`.
pub fn compile(compiler: &mut Compiler, job: &Job) -> Result<CompiledBlock, JitError> {
    let abi = super::jit_glue::abi(job.exit_request);
    let insns = &job.insns;
    let dead = tandem_target_x86_64::flags_liveness::dead_after(insns);
    let emit = |jb: &mut JitBuilder| {
        for (k, insn) in insns.iter().enumerate() {
            jb.begin_insn(insn.ip());
            let dc = Dc {
                dead_flags: dead[k],
                ..job.dc
            };
            let flow = translate(jb, &dc, insn);
            if k + 1 == insns.len() && matches!(flow, Ok(Ok(Flow::Next))) {
                let ip = jb.imm(insn.next_ip());
                jb.store_state(RIP, Width::W64, ip);
            }
        }
        if job.whole {
            // Successors the chain slots can hold are linked at their first dispatch; only
            // the others need the jump table's probe (a dozen instructions in every block).
            let lookup = (!successors_linkable(insns)).then_some((job.jump_table, job.mode_key));
            jb.finish_chained(job.slots, lookup);
        } else {
            jb.finish(EXIT_NORMAL);
        }
    };
    compiler.compile(&abi, insns.len() as u64, emit)
}

/// A finished job.
pub enum Outcome {
    /// The code.
    Done {
        /// The job.
        id: u64,
        /// Its generation.
        generation: u64,
        /// The compiled block.
        code: CompiledBlock,
        /// Instructions covered.
        len: usize,
        /// IR text and host bytes, when listings were asked for.
        listing: Option<(String, Vec<u8>)>,
    },
    /// Cranelift refused it.
    Failed {
        /// The job.
        id: u64,
        /// Why.
        error: String,
    },
    /// The worker's code region is full: flush, then [`Worker::reset`].
    Full {
        /// The job.
        id: u64,
    },
}

enum Message {
    Job(Box<Job>),
    Reset,
}

/// What the worker has done so far, for `stats=on`.
#[derive(Clone, Copy, Default)]
pub struct WorkerStats {
    /// The compiler's counters.
    pub compiler: CompilerStats,
    /// CPU time of the worker thread, nanoseconds.
    pub cpu_nanos: u64,
}

/// The background compiler of one vCPU.
pub struct Worker {
    jobs: Sender<Message>,
    results: Receiver<Outcome>,
    stats: Arc<Mutex<WorkerStats>>,
    _thread: JoinHandle<()>,
}

impl Worker {
    /// Starts the worker (its compiler is built here, so a host without Cranelift support
    /// is reported at once).
    pub fn spawn(listing: bool) -> Result<Self, JitError> {
        let mut compiler = Compiler::new()?;
        compiler.keep_listing = listing;
        let (jobs, job_rx) = channel::<Message>();
        let (result_tx, results) = channel::<Outcome>();
        let stats = Arc::new(Mutex::new(WorkerStats::default()));
        let shared = stats.clone();
        let thread = std::thread::Builder::new()
            .name("tcg-compile".into())
            .spawn(move || {
                // Newest first: a block queued just now is running now, while one queued
                // long ago may have gone cold (the boot's queue holds thousands of jobs).
                let mut pending: Vec<Box<Job>> = Vec::new();
                loop {
                    let next = if pending.is_empty() {
                        job_rx.recv().ok()
                    } else {
                        job_rx.try_recv().ok()
                    };
                    if let Some(msg) = next {
                        match msg {
                            // Jobs queued before a reset belong to the dropped generation.
                            Message::Reset => {
                                compiler.reset();
                                pending.clear();
                            }
                            Message::Job(job) => pending.push(job),
                        }
                        continue;
                    }
                    let Some(job) = pending.pop() else {
                        break;
                    };
                    let outcome = match compile(&mut compiler, &job) {
                        Ok(code) => Outcome::Done {
                            id: job.id,
                            generation: job.generation,
                            code,
                            len: job.insns.len(),
                            listing: listing.then(|| {
                                (
                                    compiler.last_ir().to_string(),
                                    compiler.last_code().to_vec(),
                                )
                            }),
                        },
                        Err(JitError::Full) => Outcome::Full { id: job.id },
                        Err(e) => Outcome::Failed {
                            id: job.id,
                            error: e.to_string(),
                        },
                    };
                    if let Ok(mut s) = shared.lock() {
                        *s = WorkerStats {
                            compiler: compiler.stats,
                            cpu_nanos: super::thread_cpu::thread_cpu_nanos(),
                        };
                    }
                    if result_tx.send(outcome).is_err() {
                        break;
                    }
                }
            })
            .map_err(JitError::CodeMemory)?;
        Ok(Self {
            jobs,
            results,
            stats,
            _thread: thread,
        })
    }

    /// Queues a job; false if the worker is gone.
    pub fn submit(&self, job: Job) -> bool {
        self.jobs.send(Message::Job(Box::new(job))).is_ok()
    }

    /// Empties the worker's code region (after the vCPU dropped every block pointing into it).
    pub fn reset(&self) {
        let _ = self.jobs.send(Message::Reset);
    }

    /// The worker's counters as of its last finished job.
    pub fn stats(&self) -> WorkerStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// A finished job, if one is ready.
    pub fn poll(&self) -> Option<Outcome> {
        self.results.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};

    fn block(bytes: &[u8], ip: u64) -> Vec<Instruction> {
        let mut d = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
        let mut v = Vec::new();
        while d.can_decode() {
            v.push(d.decode());
        }
        v
    }

    #[test]
    fn only_constant_same_page_successors_skip_the_jump_table() {
        // jne +0x10 within the page; a fall-through into the same page.
        assert!(successors_linkable(&block(&[0x75, 0x10], 0x1000)));
        assert!(successors_linkable(&block(&[0x90], 0x1000)));
        // jne whose target is on the next page.
        assert!(!successors_linkable(&block(&[0x75, 0x10], 0x1ff0)));
        // call rel32 to another page; ret; jmp rax.
        assert!(!successors_linkable(&block(
            &[0xe8, 0x00, 0x10, 0x00, 0x00],
            0x1000
        )));
        assert!(!successors_linkable(&block(&[0xc3], 0x1000)));
        assert!(!successors_linkable(&block(&[0xff, 0xe0], 0x1000)));
        // call rel32 within the page.
        assert!(successors_linkable(&block(
            &[0xe8, 0x10, 0x00, 0x00, 0x00],
            0x1000
        )));
    }
}
