//! What a machine is made of, as the command line or a library user says it.

use std::path::PathBuf;

use tandem_hw::loader::FlatSpec;

/// Which engine runs the guest CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelKind {
    /// Hardware virtualization through /dev/kvm.
    Kvm,
    /// The dynamic binary translator.
    Tcg,
}

impl AccelKind {
    /// The `-accel` name.
    pub fn name(self) -> &'static str {
        match self {
            AccelKind::Kvm => "kvm",
            AccelKind::Tcg => "tcg",
        }
    }
}

/// Where COM1 is connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialConfig {
    /// The process's stdin and stdout.
    Stdio,
    /// Output appended to a file; no input.
    File(PathBuf),
    /// Nothing: output discarded.
    None,
}

/// A whole machine's configuration.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// The engine.
    pub accel: AccelKind,
    /// Guest RAM in bytes.
    pub ram_size: u64,
    /// Back RAM with this file.
    pub mem_path: Option<PathBuf>,
    /// The kernel image.
    pub kernel: PathBuf,
    /// An initial RAM disk.
    pub initrd: Option<PathBuf>,
    /// The kernel command line.
    pub append: String,
    /// COM1.
    pub serial: SerialConfig,
    /// On a triple fault or reset request, stop instead of resetting.
    pub no_reboot: bool,
    /// Use the engine's in-kernel irqchip and PIT (KVM), rather than the board's.
    pub kernel_irqchip: bool,
    /// Load the kernel as a flat binary.
    pub flat: Option<FlatSpec>,
    /// JIT engine options (`-accel tcg,tier=...`, `-d unimp`).
    pub tcg: tandem_accel::TcgConfig,
}

impl MachineConfig {
    /// Defaults as QEMU's: 128 MiB, serial on stdio, in-kernel irqchip.
    pub fn new(accel: AccelKind, kernel: impl Into<PathBuf>) -> Self {
        Self {
            accel,
            ram_size: 128 << 20,
            mem_path: None,
            kernel: kernel.into(),
            initrd: None,
            append: String::new(),
            serial: SerialConfig::Stdio,
            no_reboot: false,
            kernel_irqchip: true,
            flat: None,
            tcg: tandem_accel::TcgConfig::default(),
        }
    }
}
