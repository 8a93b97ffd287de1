//! tandem: a full-system x86_64 emulator with two engines for one PC machine.
//!
//! This crate assembles a machine from the workspace's parts ([`machine`]), runs it with one
//! thread per vCPU and a main loop for serial input and timers ([`runloop`]), and parses the
//! QEMU-style command line ([`cli`]). See DESIGN.md for the architecture.

pub mod cli;
pub mod config;
pub mod console;
pub mod console_timestamps;
pub mod device_types;
pub mod difftest;
pub mod disks;
pub mod error;
pub mod harness;
pub mod img;
pub mod iothread;
pub mod machine;
pub mod runloop;
pub mod signals;
pub mod vcpu_thread;

pub use config::{AccelKind, MachineConfig, SerialConfig};
pub use error::Error;
pub use machine::Machine;
pub use runloop::RunOutcome;
