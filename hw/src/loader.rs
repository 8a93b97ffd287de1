//! Loaders: put a guest kernel in RAM and produce the boot CPU's initial state.

pub mod boot_setup;
pub mod elf;
pub mod error;
pub mod flat;
pub mod multiboot;
