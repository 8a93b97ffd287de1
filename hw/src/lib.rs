//! Device models on softmmu's traits, the loaders, and the PC board that wires them.
//!
//! Every device is a plain state machine: port or MMIO accesses in, interrupt line levels and
//! output bytes out. None depends on an engine.

pub mod acpi;
pub mod char;
pub mod e820;
pub mod intc;
pub mod loader;
pub mod misc;
pub mod pc;
pub mod pci;
pub mod timer;
pub mod virtio;
