//! The engines that execute the guest CPU, behind one interface.
//!
//! An [`Accelerator`] owns what an engine shares across vCPUs (a KVM VM; the JIT's code cache
//! later) and creates [`Vcpu`]s. A vCPU runs until the runtime must act ([`VcpuExit`]); port and
//! MMIO accesses never leave the engine: it dispatches them to softmmu's buses itself, so the run
//! loop above is the same for every engine. Registers cross the boundary only as [`CpuState`].
//!
//! [`CpuState`]: tandem_target_x86_64::CpuState

pub mod accelerator;
pub mod error;
#[cfg(feature = "kvm")]
pub mod kvm;
pub mod log;
#[cfg(feature = "tcg")]
pub mod tcg;

pub use accelerator::{
    available_accelerators, Accelerator, AcceleratorConfig, IrqchipConnection, MachineBus,
    TcgConfig, Tier, Vcpu, VcpuExit,
};
pub use error::AccelError;
