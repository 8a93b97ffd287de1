//! The contract between the machine and an engine.

use std::sync::Arc;

use tandem_softmmu::{
    AddressSpace, Doorbell, InterruptAcknowledge, InterruptPin, IrqSink, MsiSink, PortBus,
    RunControl,
};
use tandem_target_x86_64::CpuState;

use crate::error::AccelError;

/// How the CPU's interrupt input is driven.
#[derive(Clone)]
pub enum IrqchipConnection {
    /// The engine brings its own interrupt controllers (KVM's in-kernel irqchip).
    InEngine,
    /// A userspace controller from `hw` drives the INTR pin; the engine acknowledges it to get
    /// the vector and injects the interrupt when the guest can take it.
    Userspace {
        /// The CPU's INTR input.
        pin: Arc<InterruptPin>,
        /// The controller's INTA cycle.
        ack: Arc<dyn InterruptAcknowledge>,
    },
}

/// Everything of the machine an engine touches.
#[derive(Clone)]
pub struct MachineBus {
    /// Guest-physical memory map.
    pub memory: Arc<AddressSpace>,
    /// Port-I/O bus.
    pub ports: Arc<PortBus>,
    /// Machine-wide stop requests.
    pub control: Arc<RunControl>,
    /// The interrupt input.
    pub irqchip: IrqchipConnection,
    /// Number of vCPUs the machine has.
    pub cpus: u32,
}

/// Engine options from `-accel` and `-machine`.
#[derive(Debug, Clone, Default)]
pub struct AcceleratorConfig {
    /// Use the engine's own interrupt controllers and PIT (`kernel-irqchip=on`, the default).
    pub kernel_irqchip: bool,
    /// JIT engine options.
    pub tcg: TcgConfig,
}

/// Which tier runs guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tier {
    /// Interpret cold blocks and compile hot ones.
    #[default]
    Auto,
    /// Interpret only.
    Interp,
    /// Compile every block at its first run.
    Jit,
}

/// `-accel tcg,...` options.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcgConfig {
    /// The tier.
    pub tier: Tier,
    /// What to trace (`-d`).
    pub trace: crate::log::TraceFlags,
    /// Print the JIT's counters when the machine stops (`-accel tcg,stats=on`).
    pub print_stats: bool,
}

/// Why [`Vcpu::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VcpuExit {
    /// HLT: the vCPU waits for an interrupt (`interrupts_enabled`), or forever if they are off.
    Halted {
        /// RFLAGS.IF at the halt.
        interrupts_enabled: bool,
    },
    /// Shutdown (triple fault).
    Shutdown,
    /// A stop was requested through [`RunControl`] (or the vCPU was kicked).
    Stopped,
    /// A debug stop (breakpoint or single step).
    Debug,
}

/// One virtual CPU. Runs on its own thread.
pub trait Vcpu: Send {
    /// Executes guest code until the runtime must act.
    fn run(&mut self) -> Result<VcpuExit, AccelError>;
    /// The whole architectural state.
    fn state(&mut self) -> Result<CpuState, AccelError>;
    /// Replaces the whole architectural state.
    fn set_state(&mut self, state: &CpuState) -> Result<(), AccelError>;
    /// Makes [`Vcpu::run`] return [`VcpuExit::Debug`] before the vCPU executes an instruction
    /// at any of `addrs` (linear addresses; x86 hardware has four such breakpoints), invisibly
    /// to the guest (its own debug registers are untouched). An empty slice removes them.
    /// Engines without breakpoints return [`AccelError::Unsupported`].
    fn set_breakpoints(&mut self, addrs: &[u64]) -> Result<(), AccelError> {
        let _ = addrs;
        Err(AccelError::Unsupported(
            "this engine has no instruction breakpoints".into(),
        ))
    }

    /// The engine's counters for this vCPU, as text (QEMU's `info jit`); None if it keeps none.
    fn stats_report(&self) -> Option<String> {
        None
    }
}

/// An engine: creates vCPUs over one machine.
pub trait Accelerator: Send + Sync {
    /// Its `-accel` name.
    fn name(&self) -> &'static str;
    /// The engine's own interrupt controller (KVM in-kernel irqchip), which device lines must
    /// then be wired to; None when the board's userspace controllers are to be used.
    fn irq_sink(&self) -> Option<Arc<dyn IrqSink>>;
    /// The engine's own receiver of PCI MSI/MSI-X messages (KVM_SIGNAL_MSI with the in-kernel
    /// irqchip); None when the board's local APICs take them, or nothing does.
    fn msi_sink(&self) -> Option<Arc<dyn MsiSink>> {
        None
    }
    /// Lets guest writes of any size to `gpa` ring `bell` without reaching the device model
    /// (KVM: an ioeventfd, so the vCPU does not exit to this process). Engines that dispatch
    /// every MMIO write to the device (the JIT) need nothing: the device rings the bell.
    fn register_doorbell(&self, gpa: u64, bell: &Doorbell) -> Result<(), AccelError> {
        let _ = (gpa, bell);
        Ok(())
    }
    /// Connects the engine to the machine's memory (KVM memory slots). Called once.
    fn attach(&mut self, bus: &MachineBus) -> Result<(), AccelError>;
    /// Creates vCPU `index`.
    fn create_vcpu(&self, index: u32, bus: &MachineBus) -> Result<Box<dyn Vcpu>, AccelError>;
    /// Resets engine-side devices (in-kernel irqchip, PIT) on a machine reset.
    fn reset(&self) -> Result<(), AccelError> {
        Ok(())
    }
}

/// Every engine name `-accel` knows, and whether this binary has it.
pub fn available_accelerators() -> Vec<(&'static str, bool, &'static str)> {
    vec![
        (
            "kvm",
            cfg!(feature = "kvm"),
            "hardware virtualization through /dev/kvm",
        ),
        (
            "tcg",
            cfg!(feature = "tcg"),
            "dynamic binary translator (tier=auto|interp|jit)",
        ),
    ]
}
