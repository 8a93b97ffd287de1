//! Tier 1: the Cranelift implementation of the [`Builder`](crate::Builder), and the compiler
//! that turns one block of guest semantics into host code.
//!
//! ABI (see [`JitAbi`]): a compiled block is `extern "C" fn(ctx) -> exit code`. Guest state is
//! read and written in the context block at fixed offsets; guest memory goes through the
//! engine's load/store helpers; a fault or `raise` stores the trap record and the faulting
//! instruction's PC into the context and returns [`EXIT_TRAP`].
//!
//! Guest memory accesses probe the [`fast_tlb`] inline and call the helpers only on a miss.
//!
//! Blocks chain to their successors with tail calls ([`chain`]); a successor not linked is
//! looked up in the vCPU's [`jump_table`] before returning to the dispatcher.
//!
//! Known warts (first version): every guest register access is a context load/store (no SSA
//! caching across instructions yet), and lazy flags are computed by a helper when read.

pub mod chain;
mod code_buffer;
mod compiler;
mod emitter;
mod facts;
pub mod fast_tlb;
pub mod jump_table;

pub use code_buffer::CodeBuffer;
pub use compiler::{CompiledBlock, Compiler, CompilerStats};
pub use emitter::JitBuilder;

/// Guest memory load helper: `(ctx, linear address, size in bytes) -> value`. On a fault it
/// stores the trap record in the context and returns 0.
pub type MemLoadFn = extern "C" fn(ctx: *mut u8, addr: u64, size: u64) -> u64;
/// Guest memory store helper: `(ctx, linear address, size, value)`; faults as for loads.
pub type MemStoreFn = extern "C" fn(ctx: *mut u8, addr: u64, size: u64, value: u64);

/// A block ran to its end; the PC in the context is where to continue.
pub const EXIT_NORMAL: u64 = 0;
/// A guest exception: the trap record and the faulting instruction's PC are in the context.
pub const EXIT_TRAP: u64 = 1;

/// What compiled code needs to know about the guest's context block and the engine.
#[derive(Clone, Copy)]
pub struct JitAbi {
    /// Where the guest PC lives (stored on trap exits).
    pub pc_offset: i32,
    /// The trap record's vector field: 0 none, else vector + 1 (shared with helpers).
    pub trap_vector_offset: i32,
    /// The trap record's error code field (u64::MAX for none).
    pub trap_error_offset: i32,
    /// Where the context holds the address of the [`fast_tlb::FastTlb`] for the code's
    /// privilege (set by the engine before each call); None: no inline fast path.
    pub fast_tlb_offset: Option<i32>,
    /// Address of the exit-request flag (a `u64` other threads set to make chained code return
    /// to the dispatcher); 0: blocks are not chained.
    pub exit_request: u64,
    /// Where a block leaving the chain stores the address of its
    /// [`ChainSlots`](chain::ChainSlots), so the dispatcher can link its successor.
    pub chain_last_offset: i32,
    /// Where the context counts chained hops (a u64 incremented on every direct hop).
    pub chain_hops_offset: i32,
    /// Context byte ranges `[start, end)` whose 8-byte-aligned slots compiled code may keep in
    /// registers within a block (guest registers, lazy flags); written back at every exit and
    /// before helper calls. Fields outside them are always accessed in memory.
    pub cacheable: [(usize, usize); 2],
    /// Guest loads.
    pub load: MemLoadFn,
    /// Guest stores.
    pub store: MemStoreFn,
}

/// Compiler failures (none of them is the guest's doing).
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    /// The host ISA is not supported by Cranelift.
    #[error("host ISA unsupported: {0}")]
    Isa(String),
    /// Cranelift rejected a setting or the function.
    #[error("cranelift: {0}")]
    Codegen(String),
    /// Executable memory could not be mapped.
    #[error("cannot map code memory: {0}")]
    CodeMemory(std::io::Error),
    /// The code region is full: flush and retry.
    #[error("code buffer full")]
    Full,
}
