//! The guest x86_64 CPU as both engines see it.
//!
//! [`CpuState`] is the one form in which the runtime, snapshots, the gdb stub and the
//! differential tests see a vCPU's registers; engines convert to and from it. CPUID and MSR
//! models sit beside it. For the JIT: the context block ([`context`]), lazy flags ([`flags`]),
//! helpers ([`helpers`]) and the instruction semantics written once over tcg's builder
//! ([`semantics`]).

pub mod context;
pub mod cpu_state;
pub mod cpuid;
pub mod exception;
pub mod flags;
pub mod flags_liveness;
pub mod fpu;
pub mod helpers;
pub mod interrupt;
pub mod memory;
pub mod msr;
pub mod paging;
pub mod segment;
pub mod semantics;
pub mod system;

pub use context::X86Context;
pub use cpu_state::{CpuMode, CpuState, DescriptorTable, FxsaveArea, PendingEvents};
pub use cpuid::{CpuidEntry, CpuidTable};
pub use exception::Fault;
pub use segment::Segment;
