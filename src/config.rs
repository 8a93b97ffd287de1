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

/// How a drive's image is cached on the host, with QEMU's meanings (the block layer's).
pub use tandem_block::CacheMode;

/// The interface a `-drive` is attached by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveInterface {
    /// A virtio-blk-pci device made for it (`if=virtio`).
    Virtio,
    /// No device: a `-device ...,drive=ID` uses it (`if=none`).
    None,
}

/// One `-drive`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveConfig {
    /// Its ID (`id=`; generated when absent, as QEMU's `virtio0`...).
    pub id: String,
    /// The image file.
    pub file: PathBuf,
    /// The format (`raw`, `qcow2`, `qed`), probed when absent.
    pub format: Option<String>,
    /// How it is attached.
    pub interface: DriveInterface,
    /// Host caching.
    pub cache: CacheMode,
    /// Writes refused (`readonly=on`).
    pub read_only: bool,
    /// Writes go to a temporary overlay (`snapshot=on`, or `-snapshot`).
    pub snapshot: bool,
}

/// One `-device`: a type from [`device_types`](crate::device_types) and its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// The type's name.
    pub driver: String,
    /// Its properties, as given (checked against the type's).
    pub props: Vec<(String, String)>,
}

impl DeviceConfig {
    /// The value of property `name`.
    pub fn prop(&self, name: &str) -> Option<&str> {
        self.props
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
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
    /// The console's escape character (`-echr`; Ctrl-A by default), with serial on stdio.
    pub escape_char: u8,
    /// On a triple fault or reset request, stop instead of resetting.
    pub no_reboot: bool,
    /// Use the engine's in-kernel irqchip and PIT (KVM), rather than the board's.
    pub kernel_irqchip: bool,
    /// Load the kernel as a flat binary.
    pub flat: Option<FlatSpec>,
    /// JIT engine options (`-accel tcg,tier=...`, `-d unimp`).
    pub tcg: tandem_accel::TcgConfig,
    /// Disk images (`-drive`).
    pub drives: Vec<DriveConfig>,
    /// Devices (`-device`, and those `-drive if=virtio` implies).
    pub devices: Vec<DeviceConfig>,
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
            escape_char: crate::console::DEFAULT_ESCAPE,
            no_reboot: false,
            kernel_irqchip: true,
            flat: None,
            tcg: tandem_accel::TcgConfig::default(),
            drives: Vec::new(),
            devices: Vec::new(),
        }
    }
}
