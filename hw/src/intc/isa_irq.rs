//! The ISA interrupt lines of a PC with APICs: each line goes to the 8259 pair and to the I/O
//! APIC pin the MADT names for it, as the chipset wires them.
//!
//! ISA IRQ 0 (the PIT) reaches I/O APIC pin 2 (the MADT's interrupt source override IRQ0 ->
//! GSI 2; pin 0 is the 8259's INTR on real boards and is left unconnected here); IRQ 2 is the
//! 8259 cascade and reaches no I/O APIC pin; IRQs 1 and 3-15 reach the pin of their number.
//! Lines numbered 16 and up (PCI, later) exist only on the I/O APIC.

use std::sync::Arc;

use tandem_softmmu::IrqSink;

/// The I/O APIC pin (GSI) an ISA IRQ or GSI line reaches, if any.
pub fn ioapic_pin(line: u32) -> Option<u32> {
    match line {
        0 => Some(2),
        2 => None,
        n => Some(n),
    }
}

/// Sends every device line to both interrupt controllers.
pub struct IsaIrqRouter {
    pic: Arc<dyn IrqSink>,
    ioapic: Arc<dyn IrqSink>,
}

impl IsaIrqRouter {
    /// Lines fanned out to `pic` (by ISA IRQ number) and `ioapic` (by pin).
    pub fn new(pic: Arc<dyn IrqSink>, ioapic: Arc<dyn IrqSink>) -> Arc<Self> {
        Arc::new(Self { pic, ioapic })
    }
}

impl IrqSink for IsaIrqRouter {
    fn set_irq(&self, line: u32, level: bool) {
        if line < 16 {
            self.pic.set_irq(line, level);
        }
        if let Some(pin) = ioapic_pin(line) {
            self.ioapic.set_irq(pin, level);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Record(Mutex<Vec<(u32, bool)>>);
    impl IrqSink for Record {
        fn set_irq(&self, gsi: u32, level: bool) {
            self.0.lock().unwrap().push((gsi, level));
        }
    }

    #[test]
    fn the_pit_reaches_pin_2_and_the_cascade_no_pin() {
        let (pic, ioapic) = (Arc::new(Record::default()), Arc::new(Record::default()));
        let r = IsaIrqRouter::new(pic.clone(), ioapic.clone());
        for line in [0, 2, 4, 9, 20] {
            r.set_irq(line, true);
        }
        assert_eq!(
            *pic.0.lock().unwrap(),
            vec![(0, true), (2, true), (4, true), (9, true)]
        );
        assert_eq!(
            *ioapic.0.lock().unwrap(),
            vec![(2, true), (4, true), (9, true), (20, true)]
        );
    }
}
