//! INTx: each function's interrupt pin routed to one of four board interrupt lines, the lines
//! shared between slots as wired-OR.
//!
//! Routing (the standard swizzle, PCI-to-PCI Bridge Architecture 1.2, 9.1): pin `p` (1-4 for
//! INTA#-INTD#) of slot `s` drives line `(s + p - 1) % 4`; [`PciIrqRouting`] names the GSI of
//! each line, chosen by the board: GSIs 16-19 with an I/O APIC (24 pins under both the JIT's
//! and KVM's irqchips), ISA IRQs such as 10, 11, 5 and 9 with the 8259 alone. The DSDT's
//! `_PRT` ([`crate::acpi::pci_root`]) is generated from the same routing, so the guest always
//! agrees with the wiring.
//!
//! Sharing: 32 slots share four lines, so a line is asserted while any function on it asserts
//! its pin. [`IntxRouter`] keeps each slot's level per line and drives the controller with
//! the OR; each function gets an [`IrqLine`] of its own that reports to the router.
//!
//! Polarity: ACPI says PCI interrupts from a `_PRT` GSI are level-triggered, active-low, and
//! Linux programs the I/O APIC pin so. A device's line level here is logical: true means
//! asserted. KVM's in-kernel I/O APIC and PIC, QEMU's, and the 8259 in level mode take the
//! logical level ([`IntxWire::Logical`]). tandem's userspace I/O APIC
//! ([`crate::intc::ioapic`]) models the wire instead and applies the polarity bit, so for it
//! the router drives the wire low when asserted and high when idle ([`IntxWire::ActiveLow`]);
//! after that I/O APIC is reset (its wires go low) call [`IntxRouter::resync`]. Use
//! `ActiveLow` only for lines that reach the I/O APIC alone (GSIs 16 and up on the board's
//! [`crate::intc::isa_irq::IsaIrqRouter`]): lines below 16 also reach the 8259, which wants
//! the logical level.

use std::sync::{Arc, Mutex};

use tandem_softmmu::{IrqLine, IrqSink};

/// Number of INTx lines the slots share.
pub const INTX_LINES: usize = 4;

/// The GSI of each of the four PCI interrupt lines (line `(slot + pin - 1) % 4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PciIrqRouting {
    /// GSIs of lines 0-3.
    pub gsis: [u32; INTX_LINES],
}

impl PciIrqRouting {
    /// With an I/O APIC: GSIs 16-19, pins no ISA device uses.
    pub const IOAPIC: Self = Self {
        gsis: [16, 17, 18, 19],
    };
    /// With the 8259 alone: ISA IRQs no board device uses (9 is shared with the ACPI SCI,
    /// which is also level-triggered).
    pub const PIC: Self = Self {
        gsis: [10, 11, 5, 9],
    };

    /// The line (0-3) pin `pin` (1-4) of `slot` drives; None for pin 0 (no INTx) or past 4.
    pub fn line_index(slot: u8, pin: u8) -> Option<usize> {
        matches!(pin, 1..=4).then(|| (usize::from(slot) + usize::from(pin) - 1) % INTX_LINES)
    }

    /// The GSI pin `pin` of `slot` reaches.
    pub fn gsi(&self, slot: u8, pin: u8) -> Option<u32> {
        Self::line_index(slot, pin).map(|i| self.gsis[i])
    }

    /// The value firmware puts in the interrupt line register for `gsi` (0xff: none or
    /// beyond what the byte holds).
    pub fn interrupt_line_register(gsi: u32) -> u8 {
        u8::try_from(gsi)
            .ok()
            .filter(|&l| l != 0xff)
            .unwrap_or(0xff)
    }
}

/// How the router presents a line's level to the interrupt controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntxWire {
    /// true = asserted (KVM's irqchip, the 8259 in level mode).
    #[default]
    Logical,
    /// The electrical level of an active-low line: low when asserted, high when idle (the
    /// board's userspace I/O APIC, which applies the polarity bit itself).
    ActiveLow,
}

/// The wired-OR of every slot's INTx on each line, driving an interrupt controller.
pub struct IntxRouter {
    sink: Arc<dyn IrqSink>,
    routing: PciIrqRouting,
    wire: IntxWire,
    /// Per line, a bit per slot asserting it.
    asserted: Mutex<[u32; INTX_LINES]>,
}

impl IntxRouter {
    /// A router driving `routing`'s GSIs on `sink`; every line starts idle (and is driven
    /// idle now, so an active-low wire starts high).
    pub fn new(sink: Arc<dyn IrqSink>, routing: PciIrqRouting, wire: IntxWire) -> Arc<Self> {
        let r = Arc::new(Self {
            sink,
            routing,
            wire,
            asserted: Mutex::new([0; INTX_LINES]),
        });
        r.resync();
        r
    }

    /// The routing this router drives.
    pub fn routing(&self) -> PciIrqRouting {
        self.routing
    }

    fn drive(&self, line: usize, asserted: bool) {
        let level = match self.wire {
            IntxWire::Logical => asserted,
            IntxWire::ActiveLow => !asserted,
        };
        self.sink.set_irq(self.routing.gsis[line], level);
    }

    /// Drives every line again from the recorded levels (after the controller was reset).
    pub fn resync(&self) {
        let state = self.asserted.lock().unwrap_or_else(|e| e.into_inner());
        for (line, slots) in state.iter().enumerate() {
            self.drive(line, *slots != 0);
        }
    }

    /// Every line idle, and driven so (a machine reset).
    pub fn reset(&self) {
        *self.asserted.lock().unwrap_or_else(|e| e.into_inner()) = [0; INTX_LINES];
        self.resync();
    }

    /// Whether `line` (0-3) is asserted by any slot.
    pub fn is_asserted(&self, line: usize) -> bool {
        let state = self.asserted.lock().unwrap_or_else(|e| e.into_inner());
        state.get(line).is_some_and(|s| *s != 0)
    }

    fn set(&self, slot: u8, line: usize, level: bool) {
        let mut state = self.asserted.lock().unwrap_or_else(|e| e.into_inner());
        let (Some(slots), Some(bit)) = (state.get_mut(line), 1u32.checked_shl(slot.into())) else {
            return;
        };
        let before = *slots != 0;
        if level {
            *slots |= bit;
        } else {
            *slots &= !bit;
        }
        let after = *slots != 0;
        // Level changes are sent under the lock so two slots cannot reorder them; the
        // controller never calls back into the router.
        if before != after {
            self.drive(line, after);
        }
    }

    /// The interrupt line of pin `pin` (1-4) of `slot` (0-31): its level is the slot's own,
    /// ORed with the other slots on the same line.
    pub fn line(self: &Arc<Self>, slot: u8, pin: u8) -> Option<IrqLine> {
        let line = PciIrqRouting::line_index(slot, pin).filter(|_| slot < 32)?;
        let source = Arc::new(SlotPin {
            router: self.clone(),
            slot,
            line,
        });
        Some(IrqLine::new(source, self.routing.gsis[line]))
    }
}

/// One slot's connection to a line: the [`IrqSink`] behind a function's [`IrqLine`].
struct SlotPin {
    router: Arc<IntxRouter>,
    slot: u8,
    line: usize,
}

impl IrqSink for SlotPin {
    fn set_irq(&self, _gsi: u32, level: bool) {
        self.router.set(self.slot, self.line, level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Record(Mutex<Vec<(u32, bool)>>);
    impl IrqSink for Record {
        fn set_irq(&self, gsi: u32, level: bool) {
            self.0.lock().unwrap().push((gsi, level));
        }
    }
    impl Record {
        fn take(&self) -> Vec<(u32, bool)> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    #[test]
    fn the_swizzle_rotates_pins_by_slot() {
        let r = PciIrqRouting::IOAPIC;
        assert_eq!(r.gsi(0, 1), Some(16));
        assert_eq!(r.gsi(1, 1), Some(17));
        assert_eq!(r.gsi(3, 2), Some(16));
        assert_eq!(r.gsi(31, 4), Some(18));
        assert_eq!(r.gsi(5, 0), None);
        assert_eq!(r.gsi(5, 5), None);
        assert_eq!(PciIrqRouting::PIC.gsi(2, 3), Some(10));
        assert_eq!(PciIrqRouting::interrupt_line_register(11), 11);
        assert_eq!(PciIrqRouting::interrupt_line_register(300), 0xff);
    }

    #[test]
    fn slots_sharing_a_line_are_wired_or() {
        let rec = Arc::new(Record::default());
        let router = IntxRouter::new(rec.clone(), PciIrqRouting::IOAPIC, IntxWire::Logical);
        assert_eq!(
            rec.take(),
            vec![(16, false), (17, false), (18, false), (19, false)]
        );
        // Slots 1 and 5 both reach line 1 (GSI 17) with INTA#.
        let a = router.line(1, 1).unwrap();
        let b = router.line(5, 1).unwrap();
        assert_eq!((a.gsi(), b.gsi()), (17, 17));
        a.raise();
        b.raise();
        a.lower();
        assert_eq!(rec.take(), vec![(17, true)], "b still holds the line");
        assert!(router.is_asserted(1));
        b.lower();
        assert_eq!(rec.take(), vec![(17, false)]);
        assert!(router.line(32, 1).is_none());
        assert!(router.line(3, 0).is_none());
    }

    #[test]
    fn active_low_wires_idle_high_and_resync() {
        let rec = Arc::new(Record::default());
        let router = IntxRouter::new(rec.clone(), PciIrqRouting::IOAPIC, IntxWire::ActiveLow);
        assert!(rec.take().iter().all(|&(_, level)| level));
        let a = router.line(2, 1).unwrap();
        a.raise();
        assert_eq!(rec.take(), vec![(18, false)]);
        router.resync();
        assert_eq!(
            rec.take(),
            vec![(16, true), (17, true), (18, false), (19, true)]
        );
        a.lower();
        assert_eq!(rec.take(), vec![(18, true)]);
    }

    #[test]
    fn with_the_userspace_ioapic_an_active_low_pin_fires_only_when_asserted() {
        use crate::intc::ioapic::Ioapic;
        struct Pin(Mutex<(Ioapic, u32)>);
        impl IrqSink for Pin {
            fn set_irq(&self, gsi: u32, level: bool) {
                let mut g = self.0.lock().unwrap();
                if g.0.set_irq(gsi as usize, level).is_some() {
                    g.1 += 1;
                }
            }
        }
        let pin = Arc::new(Pin(Mutex::new((Ioapic::new(), 0))));
        let router = IntxRouter::new(pin.clone(), PciIrqRouting::IOAPIC, IntxWire::ActiveLow);
        // What Linux writes for a _PRT GSI: level, active-low, vector 0x30, unmasked.
        let sent = pin.0.lock().unwrap().0.write_reg(0x10 + 2 * 16, 0xa030);
        assert!(sent.is_none(), "idle line: no interrupt on unmask");
        assert_eq!(pin.0.lock().unwrap().1, 0);
        router.line(0, 1).unwrap().raise();
        assert_eq!(pin.0.lock().unwrap().1, 1);
    }
}
