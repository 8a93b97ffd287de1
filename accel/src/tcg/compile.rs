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
use std::thread::JoinHandle;

use iced_x86::Instruction;
use tandem_target_x86_64::context::RIP;
use tandem_target_x86_64::semantics::{translate, Dc, Flow};
use tandem_tcg::jit::{CompiledBlock, Compiler, JitBuilder, JitError, EXIT_NORMAL};
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
            jb.finish_chained(job.slots, Some((job.jump_table, job.mode_key)));
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

/// The background compiler of one vCPU.
pub struct Worker {
    jobs: Sender<Message>,
    results: Receiver<Outcome>,
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
        let thread = std::thread::Builder::new()
            .name("tcg-compile".into())
            .spawn(move || {
                while let Ok(msg) = job_rx.recv() {
                    let job = match msg {
                        Message::Reset => {
                            compiler.reset();
                            continue;
                        }
                        Message::Job(job) => job,
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
                    if result_tx.send(outcome).is_err() {
                        break;
                    }
                }
            })
            .map_err(JitError::CodeMemory)?;
        Ok(Self {
            jobs,
            results,
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

    /// A finished job, if one is ready.
    pub fn poll(&self) -> Option<Outcome> {
        self.results.try_recv().ok()
    }
}
