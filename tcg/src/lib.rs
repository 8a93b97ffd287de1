//! The guest-independent operation vocabulary of tandem's translator, and its executors.
//!
//! Guest semantics (target-x86_64) are written once as generic functions over [`Builder`]:
//! integer arithmetic, comparisons, selects, loads and stores of context fields, guest memory
//! accesses, helper calls, conditional regions and exceptions. [`interp::Interp`] executes them
//! at once on concrete `u64`s (tier 0); the Cranelift emitter (tier 1, to come) implements the
//! same trait by emitting IR, so both tiers run one definition and check each other.
//!
//! The ABI between generated code and the engine is offsets into one `#[repr(C)]` context block
//! (the guest's, e.g. x86's CPU state plus translator fields), and helpers with one C signature
//! ([`helper::HelperFn`]).

pub mod builder;
pub mod helper;
pub mod interp;
pub mod jit;
pub mod probe;
pub mod width;

pub use builder::{Builder, Cond, FlagsMemo};
pub use helper::{Helper, HelperFn};
pub use interp::{Interp, InterpEnv, InterpTrap};
pub use probe::Probe;
pub use width::Width;
