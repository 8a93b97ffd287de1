//! The JIT engine: guest code decoded by iced-x86 into blocks, run by tcg's interpreter while
//! cold (tier 0) and compiled by Cranelift once hot (tier 1), both from the one definition of
//! the x86 semantics in target-x86_64.
//!
//! It uses the board's userspace interrupt controllers (8259s, I/O APIC, a local APIC per vCPU)
//! and PIT, and dispatches port and MMIO accesses to the shared buses like the KVM engine. Tier
//! `auto` compiles hot blocks on a background thread; compiled blocks chain to each other. A
//! write to a page holding translated code drops that page's blocks.

mod block;
mod code_watch;
mod compile;
mod env;
mod fast_hash;
mod jit_glue;
mod memory;
mod rep_string;
mod system_bus;
mod thread_cpu;
mod tlb;
pub mod vcpu;

use std::sync::Arc;

use tandem_softmmu::IrqSink;

use crate::accelerator::{Accelerator, MachineBus, TcgConfig, Vcpu};
use crate::error::AccelError;

pub use vcpu::{TcgStats, TcgVcpu};

/// The JIT engine for one machine.
pub struct TcgAccelerator {
    config: TcgConfig,
    /// Code pages, shared with the threads that write guest RAM (set at attach).
    watch: Option<Arc<code_watch::CodeWatch>>,
}

impl TcgAccelerator {
    /// An engine with `config`.
    pub fn new(config: TcgConfig) -> Result<Self, AccelError> {
        Ok(Self {
            config,
            watch: None,
        })
    }
}

impl Accelerator for TcgAccelerator {
    fn name(&self) -> &'static str {
        "tcg"
    }

    fn irq_sink(&self) -> Option<Arc<dyn IrqSink>> {
        None
    }

    fn attach(&mut self, bus: &MachineBus) -> Result<(), AccelError> {
        let top = bus
            .memory
            .memory_slots()
            .iter()
            .map(|s| s.gpa + s.len)
            .max()
            .unwrap_or(0);
        let watch = Arc::new(code_watch::CodeWatch::new(top));
        // A machine attaches one engine; should another hold the watch, DMA into code
        // would go unseen, so say so.
        if !bus.memory.set_write_watch(watch.clone()) {
            return Err(AccelError::Unsupported(
                "the address space already has a write watch".into(),
            ));
        }
        self.watch = Some(watch);
        Ok(())
    }

    fn create_vcpu(&self, index: u32, bus: &MachineBus) -> Result<Box<dyn Vcpu>, AccelError> {
        let mut vcpu = TcgVcpu::new(index, bus, self.config);
        if let Some(w) = &self.watch {
            vcpu.set_code_watch(w.clone());
        }
        Ok(Box::new(vcpu))
    }
}
