//! What a virtio device is to its transport (virtio 1.x §2-§3): an id, feature bits, a
//! device-specific configuration space, queues handed over when the driver is ready, and
//! notifications in both directions.
//!
//! The transport owns feature negotiation, the status state machine and queue configuration;
//! the device owns the queues once [`VirtioDevice::activate`] gives them to it, and signals the
//! driver through the [`VirtioInterrupt`] it got with them. Everything a device needs to
//! process requests travels in [`Activation`], so the processing can later move to an I/O
//! thread without the transport.

use std::sync::{Arc, OnceLock, Weak};

use tandem_softmmu::AddressSpace;
use thiserror::Error;

use super::queue::{Queue, QueueError};

/// Why a device stopped: the transport sets DEVICE_NEEDS_RESET and keeps the error for the
/// board to report.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DeviceError {
    /// The driver broke a queue.
    #[error("virtqueue {index}")]
    Queue {
        /// Queue index.
        index: u16,
        /// What was wrong.
        #[source]
        source: QueueError,
    },
    /// DRIVER_OK with a queue the device needs left disabled.
    #[error("virtqueue {0} is required but not enabled")]
    QueueNotEnabled(u16),
    /// DRIVER_OK without FEATURES_OK accepted first.
    #[error("DRIVER_OK before feature negotiation completed")]
    NotNegotiated,
    /// The board never connected guest memory (or the machine is being torn down).
    #[error("guest memory is not connected")]
    NoMemory,
}

/// Guest memory as a device reaches it for DMA. The board creates devices before it builds the
/// address space (their BARs are part of it), so the handle is connected afterwards with
/// [`GuestMemory::connect`]. It holds the space weakly: the space owns the devices through its
/// MMIO regions, and a strong reference back would keep a dropped machine's RAM alive.
#[derive(Clone, Default)]
pub struct GuestMemory {
    space: Arc<OnceLock<Weak<AddressSpace>>>,
}

impl GuestMemory {
    /// A handle not yet connected.
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle connected to `space` (tests, and boards that build the space first).
    pub fn connected(space: &Arc<AddressSpace>) -> Self {
        let m = Self::new();
        m.connect(space);
        m
    }

    /// Connects every clone of this handle to `space`; false if already connected.
    pub fn connect(&self, space: &Arc<AddressSpace>) -> bool {
        self.space.set(Arc::downgrade(space)).is_ok()
    }

    /// The address space, while it exists.
    pub fn get(&self) -> Result<Arc<AddressSpace>, DeviceError> {
        self.space
            .get()
            .and_then(Weak::upgrade)
            .ok_or(DeviceError::NoMemory)
    }
}

/// How a device signals the driver; the transport implements it (INTx and the ISR, or MSI-X
/// vectors).
pub trait VirtioInterrupt: Send + Sync {
    /// Queue `queue` has new used buffers the driver asked to hear about.
    fn signal_used_queue(&self, queue: u16);
    /// The device configuration space changed (or the device needs a reset).
    fn signal_config_change(&self);
}

/// What a device receives when the driver sets DRIVER_OK.
pub struct Activation {
    /// Guest memory for the queues and buffers.
    pub memory: GuestMemory,
    /// The features the driver accepted.
    pub features: u64,
    /// One entry per queue the device offers, in order; None where the driver left it disabled.
    pub queues: Vec<Option<Queue>>,
    /// The transport's interrupt.
    pub interrupt: Arc<dyn VirtioInterrupt>,
}

/// A virtio device, as the transport drives it.
pub trait VirtioDevice: Send {
    /// The virtio device id (spec §5; see [`super::device_type`]).
    fn device_type(&self) -> u32;
    /// Every feature bit offered, including transport ones (VERSION_1, EVENT_IDX, ...).
    fn features(&self) -> u64;
    /// The maximum size of each queue; the length is the number of queues.
    fn queue_max_sizes(&self) -> Vec<u16>;
    /// A driver read of the device configuration space (bytes beyond it read as zero).
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// A driver write to the device configuration space.
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// The driver set DRIVER_OK: start serving the queues.
    fn activate(&mut self, activation: Activation) -> Result<(), DeviceError>;
    /// The driver notified queue `index`: process its available buffers.
    fn queue_notify(&mut self, index: u16) -> Result<(), DeviceError>;
    /// Device reset: drop the queues and return to the state before activation.
    fn reset(&mut self);
}

/// Copies the bytes of a configuration space image at `offset` into `data`; bytes outside it
/// read as zero (drivers probe fields the device does not have, and must not panic us).
pub fn read_config_bytes(image: &[u8], offset: u64, data: &mut [u8]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(i))
            .and_then(|at| image.get(at).copied())
            .unwrap_or(0);
    }
}
