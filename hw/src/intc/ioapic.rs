//! The I/O APIC, after the Intel 82093AA datasheet (and SDM Vol. 3A 11.1): 24 interrupt pins,
//! each with a redirection entry that turns a pin's level into an [`ApicMessage`] for the local
//! APICs.
//!
//! [`Ioapic`] is the state machine: `set_irq`, `eoi` and register writes answer the messages to
//! send. [`UserspaceIoapic`] puts it behind a mutex, sends them on the machine's [`ApicBus`]
//! (outside its lock) and is the [`IrqSink`] device lines are wired to: GSI n is pin n. The MADT
//! the board publishes must match the wiring: ISA IRQ0 (the PIT) is GSI 2 through an interrupt
//! source override, so the PIT's line goes to pin 2; other ISA IRQs are pins 1-15 as numbered.
//!
//! Registers: IOREGSEL at offset 0x00 (any access of 1, 2 or 4 bytes; its low byte selects),
//! IOWIN at 0x10 (aligned 4-byte accesses only; others read 0 and are ignored, as QEMU does);
//! indirect registers 0x00 ID (bits 24-27), 0x01 version 0x00170011 (version 0x11, 24 entries),
//! 0x02 arbitration ID (equals the ID, loaded on ID writes), 0x10-0x3f the redirection table
//! (low dword at 0x10 + 2n, high at 0x11 + 2n); other indices read 0.
//!
//! Semantics: `set_irq` takes the wire level; a pin is asserted when that differs from its
//! polarity bit (1 = active low). Edge pins send on an asserting edge, only while unmasked (a
//! masked edge is lost, per the datasheet). Level pins send while asserted, unmasked and
//! Remote-IRR clear, then set Remote-IRR; the local APIC's EOI for the vector clears it and a
//! still-asserted pin sends again; unmasking an asserted level pin sends.
//!
//! Warts: delivery is instant, so delivery status reads 0; Remote-IRR is only set for Fixed and
//! LowestPriority messages (no EOI ever comes back for NMI, SMI, INIT or ExtINT); the reserved
//! delivery modes (0b011, 0b110) send nothing; a polarity change on an edge pin is not an edge;
//! the version-0x20 EOI register (offset 0x40) is absent, as on the 82093AA.

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tandem_softmmu::device::{data_to_u64, u64_to_data};
use tandem_softmmu::{IrqSink, MmioDevice};

use crate::intc::lapic::{ApicBus, ApicMessage, DeliveryMode, DestMode, TriggerMode};

/// Default physical address of the I/O APIC.
pub const IOAPIC_DEFAULT_BASE: u64 = 0xfec0_0000;
/// Size of its MMIO window.
pub const IOAPIC_MMIO_SIZE: u64 = 0x1000;
/// Number of interrupt pins (redirection entries).
pub const IOAPIC_PINS: usize = 24;
/// Version register: version 0x11, maximum redirection entry 23.
pub const IOAPIC_VERSION: u32 = 0x0017_0011;

const REG_IOREGSEL: u64 = 0x00;
const REG_IOWIN: u64 = 0x10;

const REDIR_ACTIVE_LOW: u64 = 1 << 13;
const REDIR_REMOTE_IRR: u64 = 1 << 14;
const REDIR_LEVEL: u64 = 1 << 15;
const REDIR_MASKED: u64 = 1 << 16;
/// Vector, delivery mode, destination mode, polarity, trigger, mask, destination.
const REDIR_WRITABLE: u64 = 0xff00_0000_0001_afff;

/// The 82093AA state.
#[derive(Debug, Clone)]
pub struct Ioapic {
    id: u32,
    ioregsel: u8,
    redir: [u64; IOAPIC_PINS],
    /// Wire levels of the pins.
    lines: u32,
}

impl Default for Ioapic {
    fn default() -> Self {
        Self::new()
    }
}

impl Ioapic {
    /// ID 0, every pin masked, all lines low.
    pub fn new() -> Self {
        Self {
            id: 0,
            ioregsel: 0,
            redir: [REDIR_MASKED; IOAPIC_PINS],
            lines: 0,
        }
    }

    /// Redirection entry of `pin`.
    pub fn redirection(&self, pin: usize) -> Option<u64> {
        self.redir.get(pin).copied()
    }

    fn asserted(&self, pin: usize) -> bool {
        let wire = self.lines & (1 << pin) != 0;
        wire != (self.redir[pin] & REDIR_ACTIVE_LOW != 0)
    }

    /// Sets the wire level of `pin`; returns the message to send, if any. Pins past 23 are
    /// ignored.
    pub fn set_irq(&mut self, pin: usize, level: bool) -> Option<ApicMessage> {
        if pin >= IOAPIC_PINS {
            return None;
        }
        let was = self.asserted(pin);
        if level {
            self.lines |= 1 << pin;
        } else {
            self.lines &= !(1 << pin);
        }
        let now = self.asserted(pin);
        let level_triggered = self.redir[pin] & REDIR_LEVEL != 0;
        if now && (level_triggered || !was) {
            self.service(pin)
        } else {
            None
        }
    }

    /// Sends `pin`'s message if unmasked and, for a level pin, not awaiting an EOI.
    fn service(&mut self, pin: usize) -> Option<ApicMessage> {
        let e = self.redir[pin];
        if e & REDIR_MASKED != 0 || e & REDIR_REMOTE_IRR != 0 {
            return None;
        }
        let delivery_mode =
            DeliveryMode::from_bits((e >> 8) as u32).filter(|&m| m != DeliveryMode::StartUp)?;
        let level = e & REDIR_LEVEL != 0;
        if level
            && matches!(
                delivery_mode,
                DeliveryMode::Fixed | DeliveryMode::LowestPriority
            )
        {
            self.redir[pin] |= REDIR_REMOTE_IRR;
        }
        Some(ApicMessage {
            dest: (e >> 56) as u32,
            dest_mode: if e & (1 << 11) != 0 {
                DestMode::Logical
            } else {
                DestMode::Physical
            },
            delivery_mode,
            vector: e as u8,
            level: true,
            trigger: if level {
                TriggerMode::Level
            } else {
                TriggerMode::Edge
            },
        })
    }

    /// A local APIC's EOI of level-triggered `vector`: clears Remote-IRR of the level pins with
    /// that vector and returns the messages of those still asserted.
    pub fn eoi(&mut self, vector: u8) -> Vec<ApicMessage> {
        let mut out = Vec::new();
        for pin in 0..IOAPIC_PINS {
            let e = self.redir[pin];
            if e as u8 == vector && e & REDIR_REMOTE_IRR != 0 {
                self.redir[pin] &= !REDIR_REMOTE_IRR;
                if e & REDIR_LEVEL != 0 && self.asserted(pin) {
                    out.extend(self.service(pin));
                }
            }
        }
        out
    }

    /// Reads indirect register `index`.
    pub fn read_reg(&self, index: u8) -> u32 {
        match index {
            0x00 | 0x02 => self.id << 24,
            0x01 => IOAPIC_VERSION,
            0x10..=0x3f => {
                let e = self.redir[usize::from((index - 0x10) / 2)];
                if index & 1 == 0 {
                    e as u32
                } else {
                    (e >> 32) as u32
                }
            }
            _ => 0,
        }
    }

    /// Writes indirect register `index`; returns a message if the write made a level pin
    /// deliverable (unmasked while asserted).
    pub fn write_reg(&mut self, index: u8, value: u32) -> Option<ApicMessage> {
        match index {
            0x00 => self.id = (value >> 24) & 0xf,
            0x10..=0x3f => {
                let pin = usize::from((index - 0x10) / 2);
                let old = self.redir[pin];
                let merged = if index & 1 == 0 {
                    (old & !0xffff_ffff) | u64::from(value)
                } else {
                    (old & 0xffff_ffff) | (u64::from(value) << 32)
                };
                let mut e = (merged & REDIR_WRITABLE) | (old & REDIR_REMOTE_IRR);
                if e & REDIR_LEVEL == 0 {
                    // Remote-IRR has no meaning for an edge pin (KVM clears it too).
                    e &= !REDIR_REMOTE_IRR;
                }
                self.redir[pin] = e;
                if e & REDIR_LEVEL != 0 && self.asserted(pin) {
                    return self.service(pin);
                }
            }
            _ => {}
        }
        None
    }

    /// A guest load at `offset` in the MMIO window.
    pub fn mmio_read(&self, offset: u64, data: &mut [u8]) {
        let value = match (offset, data.len()) {
            (REG_IOREGSEL, 1 | 2 | 4) => u64::from(self.ioregsel),
            (REG_IOWIN, 4) => u64::from(self.read_reg(self.ioregsel)),
            _ => 0,
        };
        u64_to_data(value, data);
    }

    /// A guest store at `offset` in the MMIO window.
    pub fn mmio_write(&mut self, offset: u64, data: &[u8]) -> Option<ApicMessage> {
        let value = data_to_u64(data) as u32;
        match (offset, data.len()) {
            (REG_IOREGSEL, 1 | 2 | 4) => self.ioregsel = value as u8,
            (REG_IOWIN, 4) => return self.write_reg(self.ioregsel, value),
            _ => {}
        }
        None
    }
}

/// The I/O APIC as the machine's interrupt sink, sending on an [`ApicBus`].
pub struct UserspaceIoapic {
    ioapic: Mutex<Ioapic>,
    bus: Weak<dyn ApicBus>,
}

impl UserspaceIoapic {
    /// A fresh I/O APIC sending on `bus` (held weakly: the bus owns it).
    pub fn new(bus: &Arc<dyn ApicBus>) -> Arc<Self> {
        Arc::new(Self {
            ioapic: Mutex::new(Ioapic::new()),
            bus: Arc::downgrade(bus),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Ioapic> {
        self.ioapic.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the I/O APIC, then sends the messages it returned (with the lock released,
    /// since delivery can come back here through an EOI).
    pub fn with_ioapic(&self, f: impl FnOnce(&mut Ioapic) -> Vec<ApicMessage>) {
        let out = f(&mut self.lock());
        if let Some(bus) = self.bus.upgrade() {
            for msg in out {
                bus.send(msg.into());
            }
        }
    }

    /// A local APIC's EOI of level-triggered `vector`.
    pub fn eoi(&self, vector: u8) {
        self.with_ioapic(|io| io.eoi(vector));
    }
}

impl IrqSink for UserspaceIoapic {
    fn set_irq(&self, gsi: u32, level: bool) {
        if let Ok(pin) = usize::try_from(gsi) {
            self.with_ioapic(|io| io.set_irq(pin, level).into_iter().collect());
        }
    }
}

/// The I/O APIC's MMIO window.
pub struct IoapicMmio(pub Arc<UserspaceIoapic>);

impl MmioDevice for IoapicMmio {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.0.lock().mmio_read(offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.0
            .with_ioapic(|io| io.mmio_write(offset, data).into_iter().collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(io: &mut Ioapic, index: u8, value: u32) -> Option<ApicMessage> {
        io.mmio_write(REG_IOREGSEL, &[index]);
        io.mmio_write(REG_IOWIN, &value.to_le_bytes())
    }

    fn read(io: &mut Ioapic, index: u8) -> u32 {
        io.mmio_write(REG_IOREGSEL, &[index]);
        let mut d = [0u8; 4];
        io.mmio_read(REG_IOWIN, &mut d);
        u32::from_le_bytes(d)
    }

    /// Programs `pin`: low dword `low`, destination APIC 0.
    fn program(io: &mut Ioapic, pin: u8, low: u32) -> Option<ApicMessage> {
        write(io, 0x11 + 2 * pin, 0);
        write(io, 0x10 + 2 * pin, low)
    }

    #[test]
    fn registers_and_access_widths() {
        let mut io = Ioapic::new();
        assert_eq!(read(&mut io, 0x01), 0x0017_0011);
        write(&mut io, 0x00, 0xffff_ffff);
        assert_eq!(read(&mut io, 0x00), 0x0f00_0000);
        assert_eq!(
            read(&mut io, 0x02),
            0x0f00_0000,
            "arbitration ID follows the ID"
        );
        write(&mut io, 0x01, 0);
        assert_eq!(read(&mut io, 0x01), 0x0017_0011, "version is read-only");
        assert_eq!(read(&mut io, 0x10), 0x0001_0000, "pins reset masked");
        write(&mut io, 0x10, 0xffff_ffff);
        assert_eq!(
            read(&mut io, 0x10),
            0x0001_afff,
            "delivery status, Remote-IRR read-only"
        );
        write(&mut io, 0x11, 0xffff_ffff);
        assert_eq!(read(&mut io, 0x11), 0xff00_0000);
        assert_eq!(io.redirection(0), Some(0xff00_0000_0001_afff));
        assert_eq!(read(&mut io, 0x40), 0, "past the table");
        io.mmio_write(REG_IOREGSEL, &0x0301u32.to_le_bytes());
        let mut sel = [0u8; 4];
        io.mmio_read(REG_IOREGSEL, &mut sel);
        assert_eq!(u32::from_le_bytes(sel), 0x01, "IOREGSEL is a byte");
        let mut narrow = [0xaau8; 2];
        io.mmio_read(REG_IOWIN, &mut narrow);
        assert_eq!(narrow, [0, 0], "IOWIN is dword-only");
        io.mmio_write(REG_IOREGSEL, &[0x12]);
        io.mmio_write(REG_IOWIN, &[0x55]);
        assert_eq!(
            read(&mut io, 0x12),
            0x0001_0000,
            "byte write to IOWIN ignored"
        );
        let mut other = [0xaau8; 4];
        io.mmio_read(0x20, &mut other);
        assert_eq!(other, [0; 4]);
        assert_eq!(io.set_irq(24, true), None);
    }

    #[test]
    fn edge_pins_send_on_rising_edges_only() {
        let mut io = Ioapic::new();
        assert_eq!(program(&mut io, 1, 0x31), None);
        let m = io.set_irq(1, true).unwrap();
        assert_eq!(
            m,
            ApicMessage {
                dest: 0,
                dest_mode: DestMode::Physical,
                delivery_mode: DeliveryMode::Fixed,
                vector: 0x31,
                level: true,
                trigger: TriggerMode::Edge,
            }
        );
        assert_eq!(io.set_irq(1, true), None, "no edge");
        assert_eq!(io.set_irq(1, false), None);
        assert!(io.set_irq(1, true).is_some());
        assert_eq!(io.redirection(1).map(|e| e & REDIR_REMOTE_IRR), Some(0));
    }

    #[test]
    fn masked_edges_are_lost() {
        let mut io = Ioapic::new();
        program(&mut io, 4, 0x1_0034);
        assert_eq!(io.set_irq(4, true), None);
        assert_eq!(
            program(&mut io, 4, 0x34),
            None,
            "unmasking does not replay an edge"
        );
    }

    #[test]
    fn level_pins_wait_for_eoi_and_redeliver() {
        let mut io = Ioapic::new();
        program(&mut io, 10, 0x803a);
        assert!(io.set_irq(10, true).is_some());
        assert_ne!(io.redirection(10).unwrap() & REDIR_REMOTE_IRR, 0);
        assert_eq!(io.set_irq(10, true), None, "Remote-IRR holds it");
        assert!(io.eoi(0x3b).is_empty(), "another vector");
        let again = io.eoi(0x3a);
        assert_eq!(again.len(), 1, "still asserted: sent again");
        assert_eq!(again[0].trigger, TriggerMode::Level);
        io.set_irq(10, false);
        assert!(io.eoi(0x3a).is_empty());
        assert_eq!(io.redirection(10).unwrap() & REDIR_REMOTE_IRR, 0);
        assert!(io.set_irq(10, true).is_some());
    }

    #[test]
    fn unmasking_an_asserted_level_pin_sends() {
        let mut io = Ioapic::new();
        program(&mut io, 5, 0x1_8035);
        assert_eq!(io.set_irq(5, true), None, "masked");
        assert!(program(&mut io, 5, 0x8035).is_some());
        // Switching to edge drops Remote-IRR.
        assert_eq!(program(&mut io, 5, 0x35), None);
        assert_eq!(io.redirection(5).unwrap() & REDIR_REMOTE_IRR, 0);
    }

    #[test]
    fn polarity_active_low() {
        let mut io = Ioapic::new();
        // Level, active low: the idle-low wire is asserted as soon as it is unmasked.
        assert!(program(&mut io, 16, 0xa050).is_some());
        assert_eq!(io.set_irq(16, true), None, "wire high: deasserted");
        assert!(io.eoi(0x50).is_empty());
        assert!(io.set_irq(16, false).is_some(), "wire low: asserted");
        // Edge, active low: a falling wire is the asserting edge.
        program(&mut io, 17, 0x2051);
        io.set_irq(17, true);
        assert!(io.set_irq(17, false).is_some());
        assert_eq!(io.set_irq(17, true), None);
    }

    #[test]
    fn reserved_modes_and_logical_destinations() {
        let mut io = Ioapic::new();
        program(&mut io, 2, 0x0320);
        assert_eq!(io.set_irq(2, true), None, "delivery mode 0b011 is reserved");
        io.set_irq(2, false);
        program(&mut io, 2, 0x0620);
        assert_eq!(io.set_irq(2, true), None, "no start-up from the I/O APIC");
        io.set_irq(2, false);
        program(&mut io, 2, 0x0920);
        write(&mut io, 0x15, 0x0f00_0000);
        let m = io.set_irq(2, true).unwrap();
        assert_eq!(
            (m.dest, m.dest_mode, m.delivery_mode, m.vector),
            (0x0f, DestMode::Logical, DeliveryMode::LowestPriority, 0x20)
        );
    }

    #[test]
    fn any_guest_access_is_harmless() {
        let mut io = Ioapic::new();
        for index in 0..=255u8 {
            write(&mut io, index, 0xffff_ffff);
            read(&mut io, index);
            io.set_irq(usize::from(index), true);
            io.eoi(index);
        }
        for offset in 0..0x1010u64 {
            for width in [0usize, 1, 2, 3, 4, 8] {
                let mut d = vec![0u8; width];
                io.mmio_read(offset, &mut d);
                io.mmio_write(offset, &vec![0xff; width]);
            }
        }
    }
}
