//! virtio devices: the split virtqueue and the modern virtio-pci transport, written once, and
//! the devices on them (virtio 1.x; the spec's section numbers are cited in each module).
//!
//! - [`queue`]: the split virtqueue in guest memory, every address and length checked;
//! - [`device`]: what a device implements ([`VirtioDevice`]) and what the transport gives it
//!   (guest memory, queues, an interrupt);
//! - [`blk`]: virtio-blk over a [`tandem_block::BlockDriver`];
//! - [`pci_transport`]: the modern virtio-pci function ([`VirtioPci`]) a board puts on its bus.
//!
//! A board puts a disk on its PCI bus with [`blk_pci`], connects the [`GuestMemory`] handle
//! once its address space is built, and gives the bus the function (which connects INTx).
//!
//! A guest can never panic the host through any of them: a malformed ring is a typed error
//! that the transport turns into DEVICE_NEEDS_RESET.
//!
//! Warts: only modern (1.x) drivers are served, no legacy I/O BAR; no packed rings.

pub mod blk;
pub mod device;
pub mod pci_transport;
pub mod queue;

#[cfg(test)]
mod testing;

use std::sync::Arc;

use tandem_block::BlockDriver;
use tandem_softmmu::MsiSink;

pub use blk::VirtioBlk;
pub use device::{Activation, DeviceError, GuestMemory, VirtioDevice, VirtioInterrupt};
pub use pci_transport::{VirtioPci, VirtioPciError};
pub use queue::{DescriptorChain, Queue, QueueError};

/// Device types (spec §5): the virtio ids a device reports.
pub mod device_type {
    /// Network card.
    pub const NET: u32 = 1;
    /// Block device.
    pub const BLOCK: u32 = 2;
    /// Console.
    pub const CONSOLE: u32 = 3;
    /// Entropy source.
    pub const RNG: u32 = 4;
}

/// Device status bits (spec §2.1).
pub mod status {
    /// The guest has noticed the device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// The guest knows how to drive it.
    pub const DRIVER: u8 = 2;
    /// The driver is set up and ready to drive the device.
    pub const DRIVER_OK: u8 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u8 = 8;
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u8 = 0x40;
    /// The driver gave up on the device.
    pub const FAILED: u8 = 0x80;
}

/// Feature bits reserved for the transport and ring (spec §6), as bit masks.
pub mod features {
    /// Descriptors may point to tables of descriptors (§2.7.5.3).
    pub const RING_INDIRECT_DESC: u64 = 1 << 28;
    /// used_event / avail_event suppress notifications (§2.7.7, §2.7.10).
    pub const RING_EVENT_IDX: u64 = 1 << 29;
    /// A virtio 1.x (non-legacy) device.
    pub const VERSION_1: u64 = 1 << 32;
}

/// A virtio-blk PCI function serving `driver`: `serial` is what GET_ID returns (up to 20
/// bytes), `read_only` (or a read-only image) refuses writes, `memory` is connected to the
/// guest's address space once it is built, and `msi` (the engine's sink) adds MSI-X.
pub fn blk_pci(
    driver: Box<dyn BlockDriver>,
    serial: &str,
    read_only: bool,
    memory: GuestMemory,
    msi: Option<Arc<dyn MsiSink>>,
) -> Result<VirtioPci, VirtioPciError> {
    VirtioPci::new(
        Box::new(VirtioBlk::new(driver, serial, read_only)),
        memory,
        msi,
    )
}
