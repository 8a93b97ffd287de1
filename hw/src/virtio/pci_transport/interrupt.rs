//! How a virtio-pci function interrupts (virtio 1.x §4.1.4.5, §4.1.5.3-4): MSI-X vectors
//! per queue and for configuration changes when the guest enabled MSI-X, otherwise the ISR
//! status byte and the INTx line, asserted while any ISR bit is set and the command register
//! allows it.
//!
//! The device signals from inside a queue notification and, later, from an I/O thread, so
//! this state sits behind its own lock, shared between the transport and the device. Nothing
//! calls back into the transport while that lock is held.

use std::sync::{Mutex, MutexGuard};

use tandem_softmmu::IrqLine;

use crate::pci::MsiX;
use crate::virtio::device::VirtioInterrupt;

/// "No vector" in msix_config and queue_msix_vector (§4.1.5.1.2).
pub const NO_VECTOR: u16 = 0xffff;
/// ISR bit: a queue has used buffers.
pub const ISR_QUEUE: u8 = 1;
/// ISR bit: the configuration changed.
pub const ISR_CONFIG: u8 = 2;

struct State {
    isr: u8,
    intx: Option<IrqLine>,
    intx_disabled: bool,
    asserted: bool,
    msix: Option<MsiX>,
    config_vector: u16,
    queue_vectors: Vec<u16>,
}

impl State {
    /// Drives INTx to what the ISR and the command register say, on changes only.
    fn update_intx(&mut self) {
        let level = self.isr != 0 && !self.intx_disabled;
        if level != self.asserted {
            self.asserted = level;
            if let Some(line) = &self.intx {
                line.set_level(level);
            }
        }
    }

    /// Signals through `vector` under MSI-X, or sets `isr_bit` and asserts INTx.
    fn signal(&mut self, vector: u16, isr_bit: u8) {
        match self.msix.as_mut().filter(|m| m.is_enabled()) {
            Some(msix) => {
                if vector != NO_VECTOR {
                    msix.notify(vector);
                }
            }
            None => {
                self.isr |= isr_bit;
                self.update_intx();
            }
        }
    }

    /// A vector the driver may select: one the table has, or NO_VECTOR.
    fn checked_vector(&self, vector: u16) -> u16 {
        match &self.msix {
            Some(m) if vector < m.vectors() => vector,
            _ => NO_VECTOR,
        }
    }
}

/// The interrupt state of one virtio-pci function.
pub struct PciInterrupt {
    state: Mutex<State>,
}

impl PciInterrupt {
    /// INTx (once connected) and, if given, MSI-X; `queues` queue vectors.
    pub fn new(msix: Option<MsiX>, queues: usize) -> Self {
        Self {
            state: Mutex::new(State {
                isr: 0,
                intx: None,
                intx_disabled: false,
                asserted: false,
                msix,
                config_vector: NO_VECTOR,
                queue_vectors: vec![NO_VECTOR; queues],
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave this state inconsistent: every update is one field.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connects the INTx line the bus routed the pin to.
    pub fn connect_intx(&self, line: IrqLine) {
        let mut s = self.lock();
        if s.asserted {
            line.raise();
        }
        s.intx = Some(line);
    }

    /// The command register's INTx-disable bit changed (or not).
    pub fn set_intx_disabled(&self, disabled: bool) {
        let mut s = self.lock();
        s.intx_disabled = disabled;
        s.update_intx();
    }

    /// Whether INTx is asserted (the config status register's interrupt bit).
    pub fn intx_asserted(&self) -> bool {
        self.lock().asserted
    }

    /// A driver read of the ISR: returns it, clears it and deasserts INTx (§4.1.4.5).
    pub fn read_isr(&self) -> u8 {
        let mut s = self.lock();
        let isr = std::mem::take(&mut s.isr);
        s.update_intx();
        isr
    }

    /// The configuration-change vector.
    pub fn config_vector(&self) -> u16 {
        self.lock().config_vector
    }

    /// Sets the configuration-change vector (NO_VECTOR if the table has no such vector).
    pub fn set_config_vector(&self, vector: u16) {
        let mut s = self.lock();
        s.config_vector = s.checked_vector(vector);
    }

    /// Queue `queue`'s vector (NO_VECTOR for a queue that does not exist).
    pub fn queue_vector(&self, queue: u16) -> u16 {
        let s = self.lock();
        s.queue_vectors
            .get(usize::from(queue))
            .copied()
            .unwrap_or(NO_VECTOR)
    }

    /// Sets queue `queue`'s vector (NO_VECTOR if the table has no such vector).
    pub fn set_queue_vector(&self, queue: u16, vector: u16) {
        let mut s = self.lock();
        let v = s.checked_vector(vector);
        if let Some(q) = s.queue_vectors.get_mut(usize::from(queue)) {
            *q = v;
        }
    }

    /// Runs `f` on the MSI-X state, if the function has MSI-X.
    pub fn with_msix<R>(&self, f: impl FnOnce(&mut MsiX) -> R) -> Option<R> {
        self.lock().msix.as_mut().map(f)
    }

    /// Device reset: ISR clear, INTx deasserted, every vector NO_VECTOR. The MSI-X table
    /// belongs to the PCI function and survives (a machine reset clears it separately).
    pub fn reset(&self) {
        let mut s = self.lock();
        s.isr = 0;
        s.config_vector = NO_VECTOR;
        s.queue_vectors.fill(NO_VECTOR);
        s.update_intx();
    }
}

impl VirtioInterrupt for PciInterrupt {
    fn signal_used_queue(&self, queue: u16) {
        let mut s = self.lock();
        let vector = s
            .queue_vectors
            .get(usize::from(queue))
            .copied()
            .unwrap_or(NO_VECTOR);
        s.signal(vector, ISR_QUEUE);
    }

    fn signal_config_change(&self) {
        let mut s = self.lock();
        let vector = s.config_vector;
        s.signal(vector, ISR_CONFIG);
    }
}
