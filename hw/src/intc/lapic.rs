//! The local APIC, after Intel SDM Vol. 3A chapter 11 ("Advanced Programmable Interrupt
//! Controller"): one per vCPU, xAPIC registers at 0xfee00000 and x2APIC MSRs 0x800-0x8ff.
//!
//! [`Lapic`] is the state machine: registers in, interrupt requests out. It is given the clock
//! time on every call and never blocks or reads a host clock. Interrupts reach it as
//! [`Lapic::set_irr`] or [`Lapic::deliver`] (a message chosen for it); the CPU takes them with
//! [`Lapic::acknowledge`] (IRR -> ISR); the guest ends them with an EOI write, which answers the
//! vector of a level-triggered interrupt so the I/O APIC can clear Remote-IRR. ICR writes
//! answer an [`Ipi`] for the owner to route. NMI, SMI, INIT and start-up messages become
//! [`ApicEvents`] for the vCPU owner ([`Lapic::take_events`]).
//!
//! [`UserspaceLapic`] puts one behind a mutex with a [`Clock`](crate::timer::clock::Clock), the
//! vCPU's [`InterruptPin`](tandem_softmmu::InterruptPin) and the machine's [`ApicBus`]
//! ([`ApicRouter`]); it is the vCPU's [`InterruptAcknowledge`](tandem_softmmu::InterruptAcknowledge).
//!
//! # Wiring (for the board and both engines)
//!
//! 1. Board: one `InterruptPin` per vCPU. The PIC gets a pin of its own (`UserspacePic::new(
//!    pic_pin)`); ISA lines go to both the PIC and the I/O APIC (an `IrqSink` fanning out), the
//!    PIT to IOAPIC pin 2 (the MADT's interrupt source override says ISA IRQ0 -> GSI 2).
//! 2. `UserspaceLapic::new(Lapic::new(i, i == 0), cpu_pin_i, clock)` per vCPU;
//!    `connect_extint(pic_pin, pic)` on vCPU 0, whose LINT0 is the 8259's INTR (virtual-wire
//!    mode: LINT0 in ExtINT mode means "the vector comes from the PIC"). The pin level is
//!    `LAPIC has a deliverable vector || events pending || (lint0_extint() && PIC output)`; the
//!    board calls [`UserspaceLapic::refresh`] after PIC port writes so a PIC output that falls
//!    lowers the pin (rising edges are seen through the PIC pin's `on_raise`).
//! 3. `let router = ApicRouter::new(lapics)` (it connects each local APIC to itself), then
//!    `UserspaceIoapic::new(&(router.clone() as Arc<dyn ApicBus>))` mapped at 0xfec00000 with
//!    `IoapicMmio`, and `router.connect_ioapic(ioapic)`: IPIs and I/O APIC messages go through
//!    the router, which asks every local APIC whether it is a destination; EOIs of
//!    level-triggered vectors come back to the I/O APIC.
//! 4. Engines: accesses to the vCPU's APIC page ([`Lapic::mmio_base`], normally
//!    [`APIC_DEFAULT_BASE`]) go to *that vCPU's* `UserspaceLapic::mmio_read/mmio_write` before
//!    the shared address space (the page is per CPU, so it cannot be one bus region);
//!    RDMSR/WRMSR of 0x1b, 0x6e0 and 0x800-0x8ff go to `read_msr/write_msr` (an `Err` is #GP);
//!    CR8 reads and writes are TPR bits 7-4 (`cr8`/`set_cr8`). On the pin rising: first
//!    `take_events()` (NMI regardless of IF; INIT resets the vCPU into wait-for-SIPI; SIPI starts
//!    it at `vector << 12`), then, if the pin is still raised and IF=1, `acknowledge()` for the
//!    vector. Today's `IrqchipConnection::Userspace { pin, ack }` carries exactly this: the
//!    vCPU's pin and its `UserspaceLapic` as the acknowledge side. The vCPU owner keeps
//!    [`Lapic::set_tsc_clock`] in step with guest TSC writes for IA32_TSC_DEADLINE.
//! 5. Timers: a halted vCPU sleeps on its pin until `next_deadline_ns()`, then calls `tick()`;
//!    the main loop's timer thread can instead wait for the earliest deadline of all local APICs
//!    and the PIT, re-armed by [`UserspaceLapic::set_timer_hook`]. Nobody polls.
//!
//! The board does 1-3 in `pc::irqchip`; engines reach 4 and 5 without knowing this crate, through
//! softmmu's [`LocalApic`](tandem_softmmu::irq::LocalApic) trait, which [`UserspaceLapic`]
//! implements and returns from `InterruptAcknowledge::local_apic`.
//!
//! Warts: no APIC bus arbitration, delivery-status bits always read idle, focus processor
//! checking and EOI-broadcast suppression are not modelled, SMI is only reported as an event,
//! ExtINT messages from the I/O APIC are dropped (only LINT0 ExtINT reaches the PIC), LINT0/1
//! level-triggered Remote-IRR is not modelled (inputs act on rising edges). Fixed interrupts
//! sent to a software-disabled APIC are discarded (as KVM does); NMI, INIT and start-up are
//! still accepted. At power-on vCPU 0's LINT0 is ExtINT and LINT1 is NMI, unmasked, as firmware
//! leaves them (virtual-wire mode), so a kernel loaded without a BIOS still sees the PIC.

mod cpu_interface;
mod delivery;
mod regs;
mod shared;
mod timer;
mod x2apic;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_timer;

pub use delivery::{
    ApicBus, ApicEvents, ApicMessage, DeliveryMode, DestMode, Ipi, LapicOutput, Shorthand,
    TriggerMode,
};
pub use regs::{Bitmap256, APIC_DEFAULT_BASE, APIC_MMIO_SIZE, APIC_VERSION};
pub use shared::{ApicRouter, LapicMmio, UserspaceLapic};
pub use timer::{TimerMode, MIN_PERIOD_NS};
pub use x2apic::{ApicMsrError, TscClock, MSR_APIC_BASE, MSR_TSC_DEADLINE};

use regs::*;

/// One local APIC.
#[derive(Debug, Clone)]
pub struct Lapic {
    id: u32,
    apic_base: u64,
    tpr: u8,
    /// Cached processor priority, recomputed when TPR or ISR change.
    ppr: u8,
    ldr: u32,
    dfr: u32,
    svr: u32,
    isr: Bitmap256,
    tmr: Bitmap256,
    irr: Bitmap256,
    /// ESR as the guest reads it: errors latched by the last ESR write.
    esr: u32,
    /// Errors seen since the last ESR write.
    esr_pending: u32,
    icr: u64,
    lvt: [u32; LVT_COUNT],
    lint_levels: [bool; 2],
    timer: timer::ApicTimer,
    events: ApicEvents,
    tsc: TscClock,
}

impl Lapic {
    /// The local APIC of the processor with APIC ID `id`, at power-on, globally enabled at
    /// [`APIC_DEFAULT_BASE`]; `bsp` marks the bootstrap processor (APIC base bit 8) and gives it
    /// firmware's virtual-wire LINT0/LINT1 setup.
    pub fn new(id: u32, bsp: bool) -> Self {
        let mut lapic = Self {
            id,
            apic_base: APIC_DEFAULT_BASE
                | x2apic::BASE_ENABLE
                | if bsp { x2apic::BASE_BSP } else { 0 },
            tpr: 0,
            ppr: 0,
            ldr: 0,
            dfr: 0,
            svr: 0,
            isr: Bitmap256::default(),
            tmr: Bitmap256::default(),
            irr: Bitmap256::default(),
            esr: 0,
            esr_pending: 0,
            icr: 0,
            lvt: [LVT_MASKED; LVT_COUNT],
            lint_levels: [false; 2],
            timer: timer::ApicTimer::new(),
            events: ApicEvents::default(),
            tsc: TscClock::default(),
        };
        lapic.reset();
        if bsp {
            lapic.lvt[LVT_LINT0] = DeliveryMode::ExtInt.bits() << 8;
            lapic.lvt[LVT_LINT1] = DeliveryMode::Nmi.bits() << 8;
        }
        lapic
    }

    /// The register state after RESET or INIT (SDM 11.4.7.1): everything cleared but the APIC
    /// ID and base; DFR all ones, SVR 0xff (software disabled), LVTs masked.
    pub fn reset(&mut self) {
        self.tpr = 0;
        self.ppr = 0;
        self.ldr = if self.x2apic() {
            x2apic::x2apic_ldr(self.id)
        } else {
            0
        };
        self.dfr = u32::MAX;
        self.svr = 0xff;
        self.isr = Bitmap256::default();
        self.tmr = Bitmap256::default();
        self.irr = Bitmap256::default();
        self.esr = 0;
        self.esr_pending = 0;
        self.icr = 0;
        self.lvt = [LVT_MASKED; LVT_COUNT];
        self.lint_levels = [false; 2];
        self.timer = timer::ApicTimer::new();
        self.events = ApicEvents::default();
    }

    /// The APIC ID.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Physical address of the xAPIC page (APIC base MSR bits 12 and up).
    pub fn mmio_base(&self) -> u64 {
        self.apic_base & x2apic::BASE_ADDR_MASK
    }

    /// Globally enabled (APIC base bit 11).
    pub fn hw_enabled(&self) -> bool {
        self.apic_base & x2apic::BASE_ENABLE != 0
    }

    /// Globally and software enabled (SVR bit 8).
    pub fn sw_enabled(&self) -> bool {
        self.hw_enabled() && self.svr & SVR_ENABLE != 0
    }

    /// In x2APIC mode (APIC base bits 10 and 11).
    pub fn x2apic(&self) -> bool {
        self.apic_base & (x2apic::BASE_ENABLE | x2apic::BASE_EXTD)
            == x2apic::BASE_ENABLE | x2apic::BASE_EXTD
    }

    /// The task-priority register.
    pub fn tpr(&self) -> u8 {
        self.tpr
    }

    /// CR8 as the CPU reads it: TPR bits 7-4 (SDM 11.8.6.1).
    pub fn cr8(&self) -> u64 {
        u64::from(self.tpr >> 4)
    }

    /// A MOV to CR8: sets TPR to `value << 4` (bits above 3 are the CPU's #GP to check).
    pub fn set_cr8(&mut self, value: u64) {
        self.tpr = ((value & 0xf) as u8) << 4;
        self.refresh_ppr();
    }

    /// Processor priority: TPR if its class is at least that of the highest in-service vector,
    /// else that vector's class (SDM 11.8.3.1).
    pub fn ppr(&self) -> u8 {
        self.ppr
    }

    fn refresh_ppr(&mut self) {
        let isrv = self.isr.highest().unwrap_or(0);
        self.ppr = if self.tpr >> 4 >= isrv >> 4 {
            self.tpr
        } else {
            isrv & 0xf0
        };
    }

    /// Arbitration priority, used by the bus to choose among lowest-priority destinations.
    pub fn arbitration_priority(&self) -> u8 {
        let isrv = self.isr.highest().unwrap_or(0);
        let irrv = self.irr.highest().unwrap_or(0);
        if self.tpr >> 4 >= irrv >> 4 && self.tpr >> 4 > isrv >> 4 {
            self.tpr
        } else {
            (self.tpr & 0xf0).max(isrv & 0xf0).max(irrv & 0xf0)
        }
    }

    /// The interrupt request register.
    pub fn irr(&self) -> &Bitmap256 {
        &self.irr
    }

    /// The in-service register.
    pub fn isr(&self) -> &Bitmap256 {
        &self.isr
    }

    /// The trigger-mode register (set: the vector was accepted level-triggered).
    pub fn tmr(&self) -> &Bitmap256 {
        &self.tmr
    }

    /// Requests `vector` (a fixed interrupt accepted by this APIC). Vectors 0-15 are illegal
    /// and set ESR bit 6 instead; a software-disabled APIC discards the request.
    pub fn set_irr(&mut self, vector: u8, level_triggered: bool) {
        if !self.sw_enabled() {
            return;
        }
        if vector < 16 {
            self.raise_error(ESR_RECV_ILLEGAL_VECTOR);
            return;
        }
        self.irr.set(vector);
        if level_triggered {
            self.tmr.set(vector);
        } else {
            self.tmr.clear(vector);
        }
    }

    /// The vector the CPU would take now: the highest IRR vector whose priority class is
    /// above PPR's.
    pub fn pending_vector(&self) -> Option<u8> {
        if !self.sw_enabled() {
            return None;
        }
        self.irr.highest().filter(|v| v >> 4 > self.ppr >> 4)
    }

    /// Whether [`Lapic::acknowledge`] would deliver a vector other than the spurious one.
    pub fn has_interrupt(&self) -> bool {
        self.pending_vector().is_some()
    }

    /// The INTA cycle: moves the highest deliverable vector from IRR to ISR and returns it. If
    /// the request went away (masked by a TPR raise, say) the answer is the spurious vector
    /// from SVR, with ISR untouched (SDM 11.9). None while the APIC is disabled.
    pub fn acknowledge(&mut self) -> Option<u8> {
        if !self.sw_enabled() {
            return None;
        }
        let Some(v) = self.pending_vector() else {
            return Some(self.svr as u8);
        };
        self.irr.clear(v);
        self.isr.set(v);
        self.refresh_ppr();
        Some(v)
    }

    /// An EOI: ends the highest in-service vector. Returns it if it was accepted
    /// level-triggered, for the I/O APICs.
    pub fn eoi(&mut self) -> Option<u8> {
        let v = self.isr.highest()?;
        self.isr.clear(v);
        self.refresh_ppr();
        self.tmr.get(v).then_some(v)
    }

    /// Whether the vCPU needs attention: a deliverable vector or a pending event. Does not
    /// include the PIC behind LINT0 (see [`Lapic::lint0_extint`]).
    pub fn pin_level(&self) -> bool {
        self.has_interrupt() || !self.events.is_empty()
    }

    /// Takes the pending NMI/SMI/INIT/SIPI events.
    pub fn take_events(&mut self) -> ApicEvents {
        std::mem::take(&mut self.events)
    }

    /// Whether the CPU takes vectors from the 8259 PIC: the APIC is globally disabled (its
    /// LINT0 is then the CPU's INTR) or LINT0 is unmasked in ExtINT mode.
    pub fn lint0_extint(&self) -> bool {
        let lvt = self.lvt[LVT_LINT0];
        !self.hw_enabled()
            || (lvt & LVT_MASKED == 0
                && DeliveryMode::from_bits(lvt >> 8) == Some(DeliveryMode::ExtInt))
    }

    /// Drives the LINT0 (`pin` 0) or LINT1 (`pin` 1) input; a rising edge delivers per the LVT
    /// entry (Fixed, NMI, SMI, INIT; ExtINT is the PIC path and is not delivered here).
    pub fn set_lint(&mut self, pin: usize, level: bool) {
        let Some(old) = self.lint_levels.get_mut(pin) else {
            return;
        };
        let rising = level && !*old;
        *old = level;
        if rising {
            self.fire_lvt(LVT_LINT0 + pin);
        }
    }

    /// The timer mode selected by the LVT timer entry.
    pub fn timer_mode(&self) -> TimerMode {
        self.timer.mode()
    }

    /// Clock time of the timer's next expiry, if armed and unmasked.
    pub fn next_deadline_ns(&self) -> Option<u64> {
        if self.lvt[LVT_TIMER] & LVT_MASKED != 0 {
            return None;
        }
        self.timer.next_deadline()
    }

    /// Runs the timer up to `now_ns`: an expiry raises the timer LVT's vector (a masked timer
    /// still counts and reloads, but interrupts nobody). Returns [`Lapic::next_deadline_ns`].
    pub fn tick(&mut self, now_ns: u64) -> Option<u64> {
        if self.timer.expire(now_ns) {
            self.fire_lvt(LVT_TIMER);
        }
        self.next_deadline_ns()
    }

    /// Delivers local interrupt `index` per its LVT entry, unless masked.
    fn fire_lvt(&mut self, index: usize) {
        let lvt = self.lvt[index];
        if lvt & LVT_MASKED != 0 {
            return;
        }
        // The timer and error entries have no delivery-mode field: always fixed.
        let mode = if index == LVT_TIMER || index == LVT_ERROR {
            Some(DeliveryMode::Fixed)
        } else {
            DeliveryMode::from_bits(lvt >> 8)
        };
        let level = index != LVT_TIMER && lvt & (1 << 15) != 0;
        let trigger = if level {
            TriggerMode::Level
        } else {
            TriggerMode::Edge
        };
        if let Some(delivery_mode) = mode {
            self.deliver(&ApicMessage {
                dest: self.id,
                dest_mode: DestMode::Physical,
                delivery_mode,
                vector: lvt as u8,
                level: true,
                trigger,
            });
        }
    }

    /// Records APIC errors and raises the error LVT. An illegal vector in the error LVT
    /// itself only sets ESR, so an error cannot recurse.
    fn raise_error(&mut self, bits: u32) {
        self.esr_pending |= bits;
        let lvt = self.lvt[LVT_ERROR];
        if lvt & LVT_MASKED == 0 && lvt as u8 >= 16 && self.sw_enabled() {
            self.irr.set(lvt as u8);
            self.tmr.clear(lvt as u8);
        }
    }
}
