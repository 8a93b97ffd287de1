//! Interrupt lines from devices to an interrupt controller, and the CPU's INTR pin.
//!
//! A device holds an [`IrqLine`] and only raises or lowers it. Which controller receives it
//! (KVM's in-kernel irqchip, or the userspace PIC in `hw`) is decided when the board is wired.
//! A userspace controller drives an [`InterruptPin`], which the engine running the CPU watches
//! and acknowledges through [`InterruptAcknowledge`] to learn the vector. When that controller
//! is the CPU's local APIC it is also a [`LocalApic`]: the one device an engine must know more
//! of, because its registers are private to the CPU (a page every CPU sees at the same address,
//! MSRs, CR8) and cannot sit on the shared buses.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Receives line level changes for global system interrupts (GSIs).
pub trait IrqSink: Send + Sync {
    /// Sets the level of interrupt line `gsi`.
    fn set_irq(&self, gsi: u32, level: bool);
}

/// Receives message-signalled interrupts (PCI MSI and MSI-X): the local APICs under the JIT,
/// KVM_SIGNAL_MSI (or an irqfd route) under KVM. A device never knows which.
pub trait MsiSink: Send + Sync {
    /// Delivers the message: `address` as written to the MSI address registers (0xFEExxxxx:
    /// destination APIC ID and mode), `data` the vector and delivery mode.
    fn send_msi(&self, address: u64, data: u32);
}

/// One interrupt line of a device.
#[derive(Clone)]
pub struct IrqLine {
    sink: Arc<dyn IrqSink>,
    gsi: u32,
}

impl IrqLine {
    /// Line `gsi` of `sink`.
    pub fn new(sink: Arc<dyn IrqSink>, gsi: u32) -> Self {
        Self { sink, gsi }
    }

    /// The GSI this line drives.
    pub fn gsi(&self) -> u32 {
        self.gsi
    }

    /// Drives the line to `level`.
    pub fn set_level(&self, level: bool) {
        self.sink.set_irq(self.gsi, level);
    }

    /// Asserts the line.
    pub fn raise(&self) {
        self.set_level(true);
    }

    /// Deasserts the line.
    pub fn lower(&self) {
        self.set_level(false);
    }

    /// An edge: raise then lower.
    pub fn pulse(&self) {
        self.raise();
        self.lower();
    }
}

/// A sink that drops every change: for devices wired to nothing, and tests.
pub struct NoIrq;

impl IrqSink for NoIrq {
    fn set_irq(&self, _gsi: u32, _level: bool) {}
}

/// A sink whose real target is connected later: the board is wired before the engine that
/// owns the interrupt controller exists (so kernel images are checked before /dev/kvm is
/// opened). Levels set before [`IrqForwarder::connect`] are dropped; no device raises a line
/// before the machine runs.
#[derive(Default)]
pub struct IrqForwarder {
    target: std::sync::OnceLock<Arc<dyn IrqSink>>,
}

impl IrqForwarder {
    /// An unconnected forwarder.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Sends every later level change to `sink`; false if already connected.
    pub fn connect(&self, sink: Arc<dyn IrqSink>) -> bool {
        self.target.set(sink).is_ok()
    }
}

impl IrqSink for IrqForwarder {
    fn set_irq(&self, gsi: u32, level: bool) {
        if let Some(t) = self.target.get() {
            t.set_irq(gsi, level);
        }
    }
}

/// Asks the interrupt controller for the vector of the interrupt being taken (the INTA cycle).
pub trait InterruptAcknowledge: Send + Sync {
    /// The vector to deliver, or None if the request went away (a spurious interrupt).
    fn acknowledge(&self) -> Option<u8>;

    /// The CPU's own local APIC, when this controller is one: the engine then also routes the
    /// CPU's APIC page, APIC MSRs and CR8 to it.
    fn local_apic(self: Arc<Self>) -> Option<Arc<dyn LocalApic>> {
        None
    }
}

/// Requests a local APIC makes of its CPU itself, not of its interrupt flag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuEvents {
    /// A non-maskable interrupt.
    pub nmi: bool,
    /// A system-management interrupt (no SMM is modelled: engines may ignore it).
    pub smi: bool,
    /// INIT: the CPU resets and waits for a start-up IPI.
    pub init: bool,
    /// A start-up IPI: a CPU waiting after INIT starts in real mode at `vector << 12`.
    pub sipi: Option<u8>,
}

/// Why a local APIC did not complete an MSR access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LocalApicMsrError {
    /// Not an MSR of the local APIC: the CPU's own MSR model answers it.
    #[error("MSR {0:#x} is not a local APIC MSR")]
    NotApic(u32),
    /// The access is refused: the CPU raises #GP(0).
    #[error("local APIC MSR {0:#x} refused the access")]
    Refused(u32),
}

/// A CPU's local APIC as the engine running that CPU reaches it: besides the INTA cycle, the
/// CPU-private register page, the APIC MSRs, CR8, the events for the CPU itself and the timer
/// a halted CPU sleeps on. Time is the APIC's clock, in nanoseconds.
pub trait LocalApic: InterruptAcknowledge {
    /// The physical address of the register page the CPU's loads and stores go to, or None
    /// while it decodes none (globally disabled, or in x2APIC mode).
    fn mmio_page(&self) -> Option<u64>;
    /// A load of `data.len()` bytes at `offset` in the register page.
    fn mmio_read(&self, offset: u64, data: &mut [u8]);
    /// A store at `offset` in the register page.
    fn mmio_write(&self, offset: u64, data: &[u8]);
    /// RDMSR `index`.
    fn read_msr(&self, index: u32) -> Result<u64, LocalApicMsrError>;
    /// WRMSR `index` := `value`.
    fn write_msr(&self, index: u32, value: u64) -> Result<(), LocalApicMsrError>;
    /// CR8 as MOV from CR8 reads it (TPR bits 7-4).
    fn cr8(&self) -> u64;
    /// MOV to CR8 (the CPU checked the reserved bits).
    fn set_cr8(&self, value: u64);
    /// Takes the pending requests for the CPU itself.
    fn take_events(&self) -> CpuEvents;
    /// The APIC's clock now.
    fn now_ns(&self) -> u64;
    /// Clock time of the timer's next expiry, if armed.
    fn next_deadline_ns(&self) -> Option<u64>;
    /// Runs the timer up to now (an expiry raises the CPU's pin); returns the next deadline.
    fn tick(&self) -> Option<u64>;
}

type Kick = Box<dyn Fn() + Send + Sync>;

/// The CPU's INTR input, driven by a userspace interrupt controller.
///
/// The controller sets its level; a vCPU that halted waits on it, and a running vCPU is kicked
/// out of guest mode by the callbacks registered with [`InterruptPin::on_raise`].
#[derive(Default)]
pub struct InterruptPin {
    /// Mirror of `level` for the engines' per-block check, which must not take a lock.
    fast: std::sync::atomic::AtomicBool,
    level: Mutex<bool>,
    changed: Condvar,
    kicks: Mutex<Vec<Kick>>,
}

impl InterruptPin {
    /// A pin at level low with no listeners.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Drives the pin; a rising edge wakes waiters and kicks the running vCPU.
    pub fn set(&self, level: bool) {
        let mut cur = self.level.lock().unwrap_or_else(|e| e.into_inner());
        let rising = level && !*cur;
        *cur = level;
        self.fast.store(level, std::sync::atomic::Ordering::SeqCst);
        drop(cur);
        if rising {
            self.changed.notify_all();
            for kick in self.kicks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                kick();
            }
        }
    }

    /// Current level (lock-free: engines ask before every block).
    pub fn is_raised(&self) -> bool {
        self.fast.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Registers a callback run on every rising edge (a vCPU's kick).
    pub fn on_raise(&self, kick: impl Fn() + Send + Sync + 'static) {
        self.kicks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(kick));
    }

    /// Waits up to `timeout` for the pin to be raised; true if it is.
    pub fn wait_raised(&self, timeout: Duration) -> bool {
        let guard = self.level.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |raised| !*raised)
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }

    /// Wakes every waiter without changing the level (a stop request).
    pub fn wake(&self) {
        let _guard = self.level.lock().unwrap_or_else(|e| e.into_inner());
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    struct Record(Mutex<Vec<(u32, bool)>>);
    impl IrqSink for Record {
        fn set_irq(&self, gsi: u32, level: bool) {
            self.0.lock().unwrap().push((gsi, level));
        }
    }

    #[test]
    fn line_reports_levels_to_its_sink() {
        let rec = Arc::new(Record(Mutex::new(vec![])));
        let line = IrqLine::new(rec.clone(), 4);
        line.pulse();
        assert_eq!(*rec.0.lock().unwrap(), vec![(4, true), (4, false)]);
    }

    #[test]
    fn forwarder_delivers_once_connected() {
        let rec = Arc::new(Record(Mutex::new(vec![])));
        let fwd = IrqForwarder::new();
        fwd.set_irq(1, true);
        assert!(fwd.connect(rec.clone()));
        assert!(!fwd.connect(rec.clone()));
        fwd.set_irq(2, true);
        assert_eq!(*rec.0.lock().unwrap(), vec![(2, true)]);
    }

    #[test]
    fn pin_kicks_on_rising_edge_only() {
        let pin = InterruptPin::new();
        let n = Arc::new(AtomicU32::new(0));
        let n2 = n.clone();
        pin.on_raise(move || {
            n2.fetch_add(1, Ordering::SeqCst);
        });
        pin.set(true);
        pin.set(true);
        pin.set(false);
        pin.set(true);
        assert_eq!(n.load(Ordering::SeqCst), 2);
        assert!(pin.wait_raised(Duration::from_millis(1)));
        pin.set(false);
        assert!(!pin.wait_raised(Duration::from_millis(1)));
    }
}
