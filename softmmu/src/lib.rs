//! The machine's shared memory map, as both engines and every device see it.
//!
//! Guest RAM ([`ram`]), the physical address space of RAM, ROM and MMIO regions
//! ([`address_space`]), the port-I/O bus ([`port_bus`]), the traits devices implement
//! ([`device`]), interrupt lines ([`irq`]) and machine-wide run requests ([`control`]).
//! Nothing here knows which engine runs the guest or which devices exist.

pub mod address_space;
pub mod control;
pub mod device;
pub mod doorbell;
pub mod error;
pub mod host_memory;
pub mod irq;
pub mod port_bus;
pub mod ram;
pub mod write_watch;

pub use address_space::{AccessResult, AddressSpace, AddressSpaceBuilder, MemorySlot};
pub use control::{MachineRequest, RunControl};
pub use device::{MmioDevice, PortDevice, SharedMmioDevice, SharedPortDevice};
pub use doorbell::Doorbell;
pub use error::{MapError, MemoryError};
pub use irq::{InterruptAcknowledge, InterruptPin, IrqForwarder, IrqLine, IrqSink, MsiSink};
pub use port_bus::PortBus;
pub use ram::GuestRam;
pub use write_watch::WriteWatch;
