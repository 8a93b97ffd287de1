//! Test helpers shared by the PCI and virtio-pci unit tests.

use std::sync::Mutex;

use tandem_softmmu::MsiSink;

/// An [`MsiSink`] that records every message: (address, data), in order.
#[derive(Default)]
pub(crate) struct SentMsis(pub(crate) Mutex<Vec<(u64, u32)>>);

impl MsiSink for SentMsis {
    fn send_msi(&self, address: u64, data: u32) {
        self.0.lock().unwrap().push((address, data));
    }
}

impl SentMsis {
    /// The messages sent since the last call.
    pub(crate) fn take(&self) -> Vec<(u64, u32)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}
