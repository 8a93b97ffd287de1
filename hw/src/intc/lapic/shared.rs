//! A local APIC shared between its vCPU, the machine's APIC bus and the timer thread
//! ([`UserspaceLapic`]), its MMIO face ([`LapicMmio`]) and the bus itself ([`ApicRouter`]).
//!
//! [`UserspaceLapic`] is the vCPU's interrupt input (the crosvm `irqchip` role): it drives the
//! vCPU's INTR pin from the local APIC and, while LINT0 is in ExtINT mode (or the APIC is
//! globally disabled), from the 8259 PIC behind it, and answers the INTA cycle from whichever
//! has the interrupt: a deliverable APIC vector first, then the PIC (ExtINT ignores the APIC's
//! priorities), else the APIC's spurious vector.
//!
//! Lock order: a local APIC's mutex, then its pin's; the PIC's and the I/O APIC's mutexes are
//! never taken with a local APIC's held (the PIC is acknowledged after unlocking, and messages
//! and EOIs go to the bus after unlocking), so a self-IPI or an EOI that re-delivers an
//! interrupt to the same vCPU cannot deadlock.
//!
//! Warts: the router tries every local APIC for every message (fine for the few vCPUs a PC
//! has); a PIC output that falls is only seen at the next [`UserspaceLapic::refresh`] or INTA,
//! so the pin may stay raised until then (the INTA then answers None: no vector is taken).

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use tandem_softmmu::irq::LocalApic;
use tandem_softmmu::{InterruptAcknowledge, InterruptPin, MmioDevice};

use super::{
    ApicBus, ApicEvents, ApicMessage, ApicMsrError, DeliveryMode, Ipi, Lapic, LapicOutput,
};
use crate::intc::ioapic::UserspaceIoapic;
use crate::timer::clock::Clock;

type Hook = Box<dyn Fn() + Send + Sync>;

/// The 8259 PIC as seen from LINT0: its INTR output and its INTA cycle.
struct ExtIntSource {
    pin: Arc<InterruptPin>,
    ack: Arc<dyn InterruptAcknowledge>,
}

/// A vCPU's local APIC behind a mutex, driving the vCPU's INTR pin.
pub struct UserspaceLapic {
    lapic: Mutex<Lapic>,
    pin: Arc<InterruptPin>,
    clock: Arc<dyn Clock>,
    bus: OnceLock<Weak<dyn ApicBus>>,
    extint: OnceLock<ExtIntSource>,
    timer_hook: Mutex<Option<Hook>>,
}

impl UserspaceLapic {
    /// `lapic` driving `pin`, reading time from `clock`; not yet on a bus.
    pub fn new(lapic: Lapic, pin: Arc<InterruptPin>, clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Self {
            lapic: Mutex::new(lapic),
            pin,
            clock,
            bus: OnceLock::new(),
            extint: OnceLock::new(),
            timer_hook: Mutex::new(None),
        })
    }

    /// Sends IPIs and level-triggered EOIs to `bus` (held weakly: the bus owns the APICs).
    /// False if already connected.
    pub fn connect_bus(&self, bus: &Arc<dyn ApicBus>) -> bool {
        self.bus.set(Arc::downgrade(bus)).is_ok()
    }

    /// Puts the 8259 PIC behind LINT0: `pic_pin` is the pin the PIC drives (its own, not the
    /// vCPU's), `pic` its INTA side. False if already connected.
    pub fn connect_extint(
        self: &Arc<Self>,
        pic_pin: Arc<InterruptPin>,
        pic: Arc<dyn InterruptAcknowledge>,
    ) -> bool {
        let weak = Arc::downgrade(self);
        let source = ExtIntSource {
            pin: pic_pin.clone(),
            ack: pic,
        };
        if self.extint.set(source).is_err() {
            return false;
        }
        pic_pin.on_raise(move || {
            if let Some(lapic) = weak.upgrade() {
                lapic.refresh();
            }
        });
        self.refresh();
        true
    }

    /// Sets a callback run whenever the timer's next deadline changes, so a timer thread can
    /// re-arm for [`UserspaceLapic::next_deadline_ns`].
    pub fn set_timer_hook(&self, hook: impl Fn() + Send + Sync + 'static) {
        *self.timer_hook.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(hook));
    }

    fn lock(&self) -> MutexGuard<'_, Lapic> {
        self.lapic.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pic_raised(&self, lapic: &Lapic) -> bool {
        lapic.lint0_extint() && self.extint.get().is_some_and(|s| s.pin.is_raised())
    }

    /// Runs `f` on the local APIC with the clock's time, then drives the pin; sends the
    /// output `f` returns to the bus once unlocked, and runs the timer hook if the deadline
    /// moved.
    fn run<R>(&self, f: impl FnOnce(&mut Lapic, u64) -> (R, Option<LapicOutput>)) -> R {
        let (r, out, moved) = {
            let mut lapic = self.lock();
            let before = lapic.next_deadline_ns();
            let (r, out) = f(&mut lapic, self.clock.now_ns());
            self.pin.set(lapic.pin_level() || self.pic_raised(&lapic));
            (r, out, lapic.next_deadline_ns() != before)
        };
        if moved {
            if let Some(hook) = &*self.timer_hook.lock().unwrap_or_else(|e| e.into_inner()) {
                hook();
            }
        }
        if let Some(bus) = self.bus.get().and_then(Weak::upgrade) {
            match out {
                Some(LapicOutput::Ipi(ipi)) => bus.send(ipi),
                Some(LapicOutput::Eoi(vector)) => bus.eoi(vector),
                None => {}
            }
        }
        r
    }

    /// Runs `f` on the local APIC (given the clock's time), then drives the pin.
    pub fn with_lapic<R>(&self, f: impl FnOnce(&mut Lapic, u64) -> R) -> R {
        self.run(|lapic, now| (f(lapic, now), None))
    }

    /// Recomputes the pin (after the PIC's output may have changed).
    pub fn refresh(&self) {
        self.with_lapic(|_, _| ());
    }

    /// A guest load from the vCPU's APIC page.
    pub fn mmio_read(&self, offset: u64, data: &mut [u8]) {
        self.with_lapic(|l, now| l.mmio_read(offset, data, now));
    }

    /// A guest store to the vCPU's APIC page.
    pub fn mmio_write(&self, offset: u64, data: &[u8]) {
        self.run(|l, now| ((), l.mmio_write(offset, data, now)));
    }

    /// RDMSR of an APIC MSR (`Err`: the CPU raises #GP).
    pub fn read_msr(&self, index: u32) -> Result<u64, ApicMsrError> {
        self.with_lapic(|l, now| l.read_msr(index, now))
    }

    /// WRMSR of an APIC MSR (`Err`: the CPU raises #GP).
    pub fn write_msr(&self, index: u32, value: u64) -> Result<(), ApicMsrError> {
        self.run(|l, now| match l.write_msr(index, value, now) {
            Ok(out) => (Ok(()), out),
            Err(e) => (Err(e), None),
        })
    }

    /// Runs the timer to the clock's time; returns the clock time of the next expiry.
    pub fn tick(&self) -> Option<u64> {
        self.with_lapic(|l, now| l.tick(now))
    }

    /// Clock time of the next timer expiry, if armed and unmasked.
    pub fn next_deadline_ns(&self) -> Option<u64> {
        self.lock().next_deadline_ns()
    }

    /// Takes the pending NMI/SMI/INIT/SIPI events (and lowers the pin if nothing else waits).
    pub fn take_events(&self) -> ApicEvents {
        self.with_lapic(|l, _| l.take_events())
    }

    /// Whether an INTA now would yield a vector: the local APIC's or, through LINT0, the PIC's.
    pub fn has_interrupt(&self) -> bool {
        let lapic = self.lock();
        lapic.has_interrupt() || self.pic_raised(&lapic)
    }

    /// Accepts a message the bus chose this APIC for.
    pub fn deliver(&self, msg: &ApicMessage) {
        self.with_lapic(|l, _| l.deliver(msg));
    }

    /// The current time of the APIC's clock.
    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }
}

impl InterruptAcknowledge for UserspaceLapic {
    fn acknowledge(&self) -> Option<u8> {
        let from_apic = self.with_lapic(|l, _| {
            // The APIC's vector, its spurious vector, or None when it is disabled and the PIC
            // has nothing either.
            (l.has_interrupt() || !self.pic_raised(l)).then(|| l.acknowledge())
        });
        if let Some(v) = from_apic {
            return v;
        }
        // ExtINT: the PIC answers the INTA cycle, outside the APIC's lock.
        let vector = self.extint.get().and_then(|s| s.ack.acknowledge());
        self.refresh();
        vector
    }

    fn local_apic(self: Arc<Self>) -> Option<Arc<dyn LocalApic>> {
        Some(self)
    }
}

/// The xAPIC page of one vCPU as an MMIO device (for engines that map it per vCPU).
pub struct LapicMmio(pub Arc<UserspaceLapic>);

impl MmioDevice for LapicMmio {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.0.mmio_read(offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.0.mmio_write(offset, data);
    }
}

/// The machine's APIC bus: routes IPIs and I/O APIC messages to local APICs, and EOIs of
/// level-triggered vectors to the I/O APIC.
pub struct ApicRouter {
    lapics: Vec<Arc<UserspaceLapic>>,
    ioapic: OnceLock<Arc<UserspaceIoapic>>,
}

impl ApicRouter {
    /// A bus joining `lapics` (each is connected to it).
    pub fn new(lapics: Vec<Arc<UserspaceLapic>>) -> Arc<Self> {
        let router = Arc::new(Self {
            lapics,
            ioapic: OnceLock::new(),
        });
        let bus: Arc<dyn ApicBus> = router.clone();
        for lapic in &router.lapics {
            lapic.connect_bus(&bus);
        }
        router
    }

    /// Sends EOIs to `ioapic`; false if one is already connected.
    pub fn connect_ioapic(&self, ioapic: Arc<UserspaceIoapic>) -> bool {
        self.ioapic.set(ioapic).is_ok()
    }

    /// The local APICs, by vCPU index.
    pub fn lapics(&self) -> &[Arc<UserspaceLapic>] {
        &self.lapics
    }
}

impl ApicBus for ApicRouter {
    fn send(&self, ipi: Ipi) {
        let targets = self.lapics.iter().filter(|l| l.lock().selected_by(&ipi));
        if ipi.message.delivery_mode == DeliveryMode::LowestPriority {
            // Lowest arbitration priority wins; the first on ties.
            if let Some(t) = targets.min_by_key(|l| l.lock().arbitration_priority()) {
                t.deliver(&ipi.message);
            }
        } else {
            for t in targets {
                t.deliver(&ipi.message);
            }
        }
    }

    fn eoi(&self, vector: u8) {
        if let Some(ioapic) = self.ioapic.get() {
            ioapic.eoi(vector);
        }
    }
}
