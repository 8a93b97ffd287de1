//! The instruction-level harness: run a piece of x86_64 code from a given register and memory
//! state on an engine, and get back its final state and how it ended — the Unicorn-like use of
//! tandem, and the base of differential tests between engines (on PVM hosts KVM runs CPL3 code
//! natively, so it is the oracle the JIT is checked against).
//!
//! ```no_run
//! use tandem::harness::{run_snippet, Snippet};
//! use tandem::AccelKind;
//! // add rax, rbx
//! let s = Snippet::new(vec![0x48, 0x01, 0xd8]).with_gpr(0, u64::MAX).with_gpr(3, 1);
//! let r = run_snippet(AccelKind::Kvm, &s).unwrap();
//! assert_eq!(r.state.gpr[0], 0);
//! ```
//!
//! # The machine
//!
//! A machine of its own, lean on purpose: 64 MiB of RAM at guest-physical 0, no devices, no
//! interrupt controller, one vCPU on any [`Accelerator`](tandem_accel::Accelerator). The GDT,
//! TSS and page tables are the loader's ([`boot_setup`](tandem_hw::loader::boot_setup)) with
//! its user-mode options. The snippet runs in 64-bit mode at CPL3 (`User64`, the default) or
//! CPL0 (`Kernel64`), on an identity map:
//!
//! | guest address           | contents                                                    |
//! |-------------------------|-------------------------------------------------------------|
//! | `0x0000..0x20_0000`     | the harness's, supervisor-only (a CPL3 access is a #PF): GDT, TSS, page tables at `0x1000..0x8000`, IDT at `0x8000`, exception stubs at `0x9000`, handler stack below `0x1_0000` |
//! | `0x20_0000..0x3f_0000`  | free user RAM for data                                      |
//! | `0x3f_0000..0x40_0000`  | the stack, zeroed before each run; RSP = `0x40_0000` unless set |
//! | `0x40_0000..`           | the code, then 16 bytes of `int3`                           |
//! | `..0x400_0000` (64 MiB) | user RAM for data                                           |
//! | from `0x400_0000`       | not mapped: any access is a #PF                             |
//!
//! Data regions may lie anywhere in `0x20_0000..0x400_0000` (the stack included, to preload
//! it) but not over the code and its padding nor over each other; a region that does not fit
//! is an error before anything runs ([`HarnessError::BadSnippet`]), as is any other bad input.
//!
//! # How a run ends
//!
//! - Completed: the code is followed by 16 bytes of `int3`; running into the first one raises
//!   #BP through the exception path below, and the harness reports it as completed with RIP at
//!   the byte after the code (the frame's RIP less one; a snippet's own `int3` or a jump further
//!   into the padding stays an exception). This is what ends runs on this machine: the PVM KVM
//!   accepts KVM_SET_GUEST_DEBUG with a hardware breakpoint but never fires it for CPL3 code
//!   (nor a breakpoint in the guest's own DR0/DR7), as measured here. The harness still arms the
//!   engine's breakpoint on that byte ([`Vcpu::set_breakpoints`], DR0 through
//!   KVM_SET_GUEST_DEBUG), so where it fires (VMX/SVM hosts) the run stops there first, without
//!   entering the handler; [`Harness::end_detection`] says which one ended the last run.
//! - Exceptions: every IDT vector leads (IST 1, so on the harness's own stack) to a two-
//!   instruction CPL0 stub, `push vector; hlt` (see [`idt`]); with no interrupt controller the
//!   `hlt` returns to the harness. The stub clobbers no register, so the snippet's state is the
//!   vCPU's, with RIP, CS, RFLAGS (less the RF bit fault delivery sets), RSP and SS taken from
//!   the exception frame; the error code is in the frame, CR2 in the vCPU.
//! - `hlt` at CPL0 ends a kernel64 run as [`SnippetEnd::Halted`]; a run that exceeds
//!   [`Limits::timeout`] is stopped and reported as [`SnippetEnd::Timeout`] with the state it
//!   had. Instruction counts are not limited (KVM cannot count them).
//!
//! [`Vcpu::set_breakpoints`]: tandem_accel::Vcpu::set_breakpoints

pub mod error;
pub mod idt;
pub mod layout;
pub mod parse;
pub mod report;
pub mod result;
pub mod runner;
pub mod snippet;

pub use error::HarnessError;
pub use layout::{CODE_ADDR, RAM_SIZE, STACK_TOP, USER_RAM};
pub use result::{SnippetEnd, SnippetResult};
pub use runner::{EndDetection, Harness};
pub use snippet::{Limits, Snippet, SnippetMode, SnippetRegs};

use crate::config::AccelKind;

/// Runs `snippet` on a fresh harness machine on `engine` (so nothing is left over from an
/// earlier run); use a [`Harness`] to run many snippets on one machine faster.
pub fn run_snippet(engine: AccelKind, snippet: &Snippet) -> Result<SnippetResult, HarnessError> {
    snippet.validate()?;
    Harness::new(engine)?.run(snippet)
}
