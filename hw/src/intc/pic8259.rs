//! The PC's pair of 8259A programmable interrupt controllers, after the Intel 8259A datasheet.
//!
//! [`Pic8259Pair`] is the state machine: a master (ports 0x20/0x21, IRQ 0-7) and a slave
//! (0xa0/0xa1, IRQ 8-15) whose INT output drives the master's IR2, plus the two edge/level
//! control registers (ELCR, 0x4d0/0x4d1) of PIIX-era chipsets. [`UserspacePic`] puts it behind
//! a mutex as the machine's [`IrqSink`] and [`InterruptAcknowledge`] and drives the CPU's
//! [`InterruptPin`]; [`PicPorts`] is its port-I/O face.
//!
//! Modelled: ICW1-ICW4 (single or cascade, ICW4 optional, LTIM), OCW1 (IMR), OCW2 (specific and
//! non-specific EOI, rotate on EOI, rotate in auto-EOI, set priority), OCW3 (read IRR/ISR, poll,
//! special mask mode), auto-EOI, special fully nested mode, rotating priorities, edge vs level
//! triggering per ELCR or ICW1 LTIM, and the spurious IR7 answer to an INTA cycle whose request
//! went away (ISR untouched).
//!
//! Warts: the cascade is fixed (slave on master IR2; ICW3 is accepted and ignored, and the
//! bus's IRQ2 is routed to IRQ9 as on an AT); MCS-80/85
//! mode (ICW4 bit 0 clear) and buffered mode are accepted but vectors are always 8086-style; as
//! in QEMU, an edge request stays latched in IRR until acknowledged even if the line drops
//! first (so a device's quick pulse is never lost), where a real 8259A would answer spurious
//! IR7; the IMR is all ones before the first initialisation (a real part is undefined) so an
//! uninitialised PIC delivers nothing. Accesses wider than a byte are split into byte accesses
//! at consecutive offsets (the ISA bus does the same); unknown offsets read 0xff.

use std::sync::{Arc, Mutex, MutexGuard};

use tandem_softmmu::device::{read_bytewise, write_bytewise};
use tandem_softmmu::{InterruptAcknowledge, InterruptPin, IrqSink, PortDevice};

/// Offset of the slave's ports (0xa0) from the master's (0x20).
pub const SLAVE_OFFSET: u16 = 0x80;
/// Offset of the ELCR ports (0x4d0) from the master's (0x20).
pub const ELCR_OFFSET: u16 = 0x4b0;

/// The master input the slave's INT output is wired to.
const CASCADE_IRQ: u8 = 2;

/// One 8259A.
#[derive(Debug, Clone)]
struct Pic {
    /// Levels of the IR input lines.
    lines: u8,
    irr: u8,
    isr: u8,
    imr: u8,
    /// IR input with the highest priority is `priority_add` (rotation).
    priority_add: u8,
    vector_base: u8,
    read_isr: bool,
    poll: bool,
    special_mask: bool,
    /// 0 when ready, else the ICW expected next (2, 3 or 4).
    init_step: u8,
    needs_icw4: bool,
    single: bool,
    ltim: bool,
    auto_eoi: bool,
    rotate_on_auto_eoi: bool,
    special_fully_nested: bool,
    elcr: u8,
    /// ELCR bits that exist (IRQ 0, 1, 2, 8 and 13 are always edge on a PC).
    elcr_mask: u8,
    is_master: bool,
}

impl Pic {
    fn new(is_master: bool) -> Self {
        Self {
            lines: 0,
            irr: 0,
            isr: 0,
            imr: 0xff,
            priority_add: 0,
            vector_base: 0,
            read_isr: false,
            poll: false,
            special_mask: false,
            init_step: 0,
            needs_icw4: false,
            single: false,
            ltim: false,
            auto_eoi: false,
            rotate_on_auto_eoi: false,
            special_fully_nested: false,
            elcr: 0,
            elcr_mask: if is_master { 0xf8 } else { 0xde },
            is_master,
        }
    }

    fn level_mask(&self) -> u8 {
        if self.ltim {
            0xff
        } else {
            self.elcr
        }
    }

    fn set_line(&mut self, irq: u8, level: bool) {
        let bit = 1u8 << (irq & 7);
        if self.level_mask() & bit != 0 {
            if level {
                self.irr |= bit;
            } else {
                self.irr &= !bit;
            }
        } else if level && self.lines & bit == 0 {
            self.irr |= bit;
        }
        if level {
            self.lines |= bit;
        } else {
            self.lines &= !bit;
        }
    }

    /// Priority rank (0 highest) of the best IR set in `mask`, or 8 for none.
    fn best_rank(&self, mask: u8) -> u8 {
        (0..8)
            .find(|&rank| mask & (1 << ((rank + self.priority_add) & 7)) != 0)
            .unwrap_or(8)
    }

    /// The IR this chip would interrupt for now, if any.
    fn pending_irq(&self) -> Option<u8> {
        let rank = self.best_rank(self.irr & !self.imr);
        if rank == 8 {
            return None;
        }
        let mut in_service = self.isr;
        if self.special_mask {
            // Masked levels in service do not block lower ones in special mask mode.
            in_service &= !self.imr;
        }
        if self.special_fully_nested && self.is_master {
            // Lets a higher-priority slave request through while the slave is in service.
            in_service &= !(1 << CASCADE_IRQ);
        }
        (rank < self.best_rank(in_service)).then_some((rank + self.priority_add) & 7)
    }

    fn output(&self) -> bool {
        self.pending_irq().is_some()
    }

    /// The chip's part of an INTA cycle for `irq`.
    fn ack(&mut self, irq: u8) {
        let bit = 1u8 << irq;
        if self.auto_eoi {
            if self.rotate_on_auto_eoi {
                self.priority_add = (irq + 1) & 7;
            }
        } else {
            self.isr |= bit;
        }
        if self.level_mask() & bit == 0 {
            self.irr &= !bit;
        }
    }

    fn poll_read(&mut self) -> u8 {
        self.poll = false;
        match self.pending_irq() {
            Some(irq) => {
                self.ack(irq);
                0x80 | irq
            }
            None => 0,
        }
    }

    fn read(&mut self, a0: bool) -> u8 {
        if self.poll {
            return self.poll_read();
        }
        if a0 {
            self.imr
        } else if self.read_isr {
            self.isr
        } else {
            self.irr
        }
    }

    fn write(&mut self, a0: bool, v: u8) {
        if !a0 {
            if v & 0x10 != 0 {
                self.icw1(v);
            } else if v & 0x08 != 0 {
                self.ocw3(v);
            } else {
                self.ocw2(v);
            }
            return;
        }
        match self.init_step {
            2 => {
                self.vector_base = v & 0xf8;
                self.init_step = match (self.single, self.needs_icw4) {
                    (false, _) => 3,
                    (true, true) => 4,
                    (true, false) => 0,
                };
            }
            3 => self.init_step = if self.needs_icw4 { 4 } else { 0 },
            4 => {
                self.auto_eoi = v & 0x02 != 0;
                self.special_fully_nested = v & 0x10 != 0;
                self.init_step = 0;
            }
            _ => self.imr = v,
        }
    }

    fn icw1(&mut self, v: u8) {
        // Lines keep their levels: after ICW1 an edge input must go low then high again.
        let lines = self.lines;
        *self = Self {
            lines,
            elcr: self.elcr,
            ..Self::new(self.is_master)
        };
        self.imr = 0;
        self.ltim = v & 0x08 != 0;
        self.single = v & 0x02 != 0;
        self.needs_icw4 = v & 0x01 != 0;
        self.irr = lines & self.level_mask();
        self.init_step = 2;
    }

    fn ocw2(&mut self, v: u8) {
        let level = v & 7;
        match v >> 5 {
            0b000 => self.rotate_on_auto_eoi = false,
            0b100 => self.rotate_on_auto_eoi = true,
            0b001 | 0b101 => {
                let rank = self.best_rank(self.isr);
                if rank < 8 {
                    let irq = (rank + self.priority_add) & 7;
                    self.isr &= !(1 << irq);
                    if v >> 5 == 0b101 {
                        self.priority_add = (irq + 1) & 7;
                    }
                }
            }
            0b011 => self.isr &= !(1 << level),
            0b111 => {
                self.isr &= !(1 << level);
                self.priority_add = (level + 1) & 7;
            }
            0b110 => self.priority_add = (level + 1) & 7,
            _ => {} // 0b010: no operation
        }
    }

    fn ocw3(&mut self, v: u8) {
        if v & 0x04 != 0 {
            self.poll = true;
        }
        if v & 0x02 != 0 {
            self.read_isr = v & 0x01 != 0;
        }
        if v & 0x40 != 0 {
            self.special_mask = v & 0x20 != 0;
        }
    }

    fn write_elcr(&mut self, v: u8) {
        self.elcr = v & self.elcr_mask;
        // A line switched to level sensing requests exactly while it is high.
        let level = self.level_mask();
        self.irr = (self.irr & !level) | (self.lines & level);
    }
}

/// The PC's master and slave 8259A, the slave cascaded on the master's IR2.
#[derive(Debug, Clone)]
pub struct Pic8259Pair {
    master: Pic,
    slave: Pic,
}

impl Default for Pic8259Pair {
    fn default() -> Self {
        Self::new()
    }
}

impl Pic8259Pair {
    /// Both chips uninitialised, every input masked.
    pub fn new() -> Self {
        Self {
            master: Pic::new(true),
            slave: Pic::new(false),
        }
    }

    /// Sets the level of IRQ line `irq` (0..=15); other numbers are ignored. The bus's IRQ2
    /// reaches the slave's IR1 (IRQ9), as on an AT, since the master's IR2 is the cascade.
    pub fn set_irq(&mut self, irq: u8, level: bool) {
        match irq {
            CASCADE_IRQ => {
                self.slave.set_line(1, level);
                self.cascade();
            }
            0..=7 => self.master.set_line(irq, level),
            8..=15 => {
                self.slave.set_line(irq - 8, level);
                self.cascade();
            }
            _ => {}
        }
    }

    /// The INTR output to the CPU.
    pub fn output(&self) -> bool {
        self.master.output()
    }

    /// The INTA cycle: the vector to deliver. A request that went away is answered with the
    /// chip's IR7 vector without setting ISR (the spurious interrupt); it is never None.
    pub fn acknowledge(&mut self) -> Option<u8> {
        let vector = match self.master.pending_irq() {
            Some(CASCADE_IRQ) if !self.master.single => {
                let v = match self.slave.pending_irq() {
                    Some(irq) => {
                        self.slave.ack(irq);
                        self.slave.vector_base | irq
                    }
                    None => self.slave.vector_base | 7,
                };
                self.master.ack(CASCADE_IRQ);
                v
            }
            Some(irq) => {
                self.master.ack(irq);
                self.master.vector_base | irq
            }
            None => self.master.vector_base | 7,
        };
        self.cascade();
        Some(vector)
    }

    /// Guest read at `offset` from port 0x20 (0, 1, 0x80, 0x81, 0x4b0, 0x4b1); others read 0xff.
    pub fn read(&mut self, offset: u16) -> u8 {
        let v = match offset {
            0 | 1 => self.master.read(offset == 1),
            0x80 | 0x81 => self.slave.read(offset == 0x81),
            0x4b0 => self.master.elcr,
            0x4b1 => self.slave.elcr,
            _ => 0xff,
        };
        // A poll read acknowledges, which can change the slave's output.
        self.cascade();
        v
    }

    /// Guest write at `offset` from port 0x20 (offsets as for [`Pic8259Pair::read`]).
    pub fn write(&mut self, offset: u16, v: u8) {
        match offset {
            0 | 1 => self.master.write(offset == 1, v),
            0x80 | 0x81 => self.slave.write(offset == 0x81, v),
            0x4b0 => self.master.write_elcr(v),
            0x4b1 => self.slave.write_elcr(v),
            _ => {}
        }
        self.cascade();
    }

    /// Interrupt request register of the master (low byte) and slave (high byte).
    pub fn irr(&self) -> u16 {
        u16::from_le_bytes([self.master.irr, self.slave.irr])
    }

    /// In-service register of the master (low byte) and slave (high byte).
    pub fn isr(&self) -> u16 {
        u16::from_le_bytes([self.master.isr, self.slave.isr])
    }

    /// Interrupt mask register of the master (low byte) and slave (high byte).
    pub fn imr(&self) -> u16 {
        u16::from_le_bytes([self.master.imr, self.slave.imr])
    }

    fn cascade(&mut self) {
        let out = self.slave.output();
        self.master.set_line(CASCADE_IRQ, out);
    }
}

/// The pair as the machine's interrupt controller: takes device lines, drives the CPU's INTR.
///
/// Lock order: the pair's mutex, then the pin's (the pin is set with the pair locked, so two
/// threads cannot leave it at a stale level).
pub struct UserspacePic {
    pair: Mutex<Pic8259Pair>,
    pin: Arc<InterruptPin>,
}

impl UserspacePic {
    /// A fresh pair driving `pin`.
    pub fn new(pin: Arc<InterruptPin>) -> Arc<Self> {
        Arc::new(Self {
            pair: Mutex::new(Pic8259Pair::new()),
            pin,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Pic8259Pair> {
        self.pair.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the pair, then drives the pin from its output.
    pub fn with_pair<R>(&self, f: impl FnOnce(&mut Pic8259Pair) -> R) -> R {
        let mut pair = self.lock();
        let r = f(&mut pair);
        self.pin.set(pair.output());
        r
    }

    /// Guest read at `offset` from port 0x20.
    pub fn read(&self, offset: u16) -> u8 {
        self.with_pair(|p| p.read(offset))
    }

    /// Guest write at `offset` from port 0x20.
    pub fn write(&self, offset: u16, v: u8) {
        self.with_pair(|p| p.write(offset, v));
    }

    /// The INTR output.
    pub fn output(&self) -> bool {
        self.lock().output()
    }
}

impl IrqSink for UserspacePic {
    fn set_irq(&self, gsi: u32, level: bool) {
        if let Ok(irq @ 0..=15) = u8::try_from(gsi) {
            self.with_pair(|p| p.set_irq(irq, level));
        }
    }
}

impl InterruptAcknowledge for UserspacePic {
    fn acknowledge(&self) -> Option<u8> {
        self.with_pair(|p| p.acknowledge())
    }
}

/// The PIC's ports: 0x20/0x21 at offsets 0/1, 0xa0/0xa1 at 0x80/0x81, 0x4d0/0x4d1 at 0x4b0/0x4b1.
pub struct PicPorts(pub Arc<UserspacePic>);

impl PortDevice for PicPorts {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        read_bytewise(offset, data, |off| self.0.read(off));
    }

    fn write(&mut self, offset: u16, data: &[u8]) {
        write_bytewise(offset, data, |off, v| self.0.write(off, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PC BIOS / Linux setup: vectors 0x20 and 0x28, cascade on IR2, 8086 mode.
    fn init(p: &mut Pic8259Pair, auto_eoi: bool) {
        let icw4 = if auto_eoi { 0x03 } else { 0x01 };
        for (base, vec, icw3) in [(0u16, 0x20u8, 0x04u8), (0x80, 0x28, 0x02)] {
            p.write(base, 0x11);
            p.write(base + 1, vec);
            p.write(base + 1, icw3);
            p.write(base + 1, icw4);
            p.write(base + 1, 0x00);
        }
    }

    fn pair() -> Pic8259Pair {
        let mut p = Pic8259Pair::new();
        init(&mut p, false);
        p
    }

    #[test]
    fn uninitialised_pair_masks_everything() {
        let mut p = Pic8259Pair::new();
        p.set_irq(0, true);
        assert!(!p.output());
        assert_eq!(p.read(1), 0xff);
    }

    #[test]
    fn edge_irq_delivers_vector_and_sets_isr_until_eoi() {
        let mut p = pair();
        p.set_irq(1, true);
        assert!(p.output());
        assert_eq!(p.acknowledge(), Some(0x21));
        assert!(!p.output());
        assert_eq!(p.isr(), 0x0002);
        assert_eq!(p.irr(), 0);
        // Still high: an edge input needs a new rising edge.
        p.set_irq(1, true);
        assert!(!p.output());
        p.write(0, 0x20); // non-specific EOI
        assert_eq!(p.isr(), 0);
        assert!(!p.output());
        p.set_irq(1, false);
        p.set_irq(1, true);
        assert!(p.output());
    }

    #[test]
    fn pulse_is_latched_until_acknowledged() {
        let mut p = pair();
        p.set_irq(0, true);
        p.set_irq(0, false);
        assert!(p.output());
        assert_eq!(p.acknowledge(), Some(0x20));
    }

    #[test]
    fn fixed_priority_and_nesting() {
        let mut p = pair();
        p.set_irq(4, true);
        p.set_irq(3, true);
        assert_eq!(p.acknowledge(), Some(0x23));
        // IRQ4 is lower priority than IRQ3 in service: held off.
        assert!(!p.output());
        p.set_irq(0, true);
        assert!(p.output(), "IRQ0 nests over IRQ3");
        assert_eq!(p.acknowledge(), Some(0x20));
        p.write(0, 0x20);
        assert_eq!(p.isr(), 0x0008, "non-specific EOI ends the highest: IRQ0");
        p.write(0, 0x63); // specific EOI for IRQ3
        assert_eq!(p.acknowledge(), Some(0x24));
    }

    #[test]
    fn slave_cascades_through_irq2() {
        let mut p = pair();
        p.set_irq(12, true);
        assert!(p.output());
        assert_eq!(p.acknowledge(), Some(0x2c));
        assert_eq!(p.isr(), 0x1004, "slave IR4 and master IR2 in service");
        p.set_irq(12, false);
        p.set_irq(8, true);
        assert!(!p.output(), "master IR2 still in service");
        p.write(0x80, 0x20);
        p.write(0, 0x20);
        assert!(p.output());
        assert_eq!(p.acknowledge(), Some(0x28));
    }

    #[test]
    fn imr_masks_and_slave_mask_blocks_cascade() {
        let mut p = pair();
        p.write(1, 0x01);
        p.set_irq(0, true);
        assert!(!p.output());
        assert_eq!(p.read(1), 0x01);
        p.write(0x81, 0xff);
        p.set_irq(9, true);
        assert!(!p.output());
        p.write(0x81, 0x00);
        assert!(p.output());
        assert_eq!(p.acknowledge(), Some(0x29));
    }

    #[test]
    fn spurious_irq7_and_irq15() {
        let mut p = pair();
        assert_eq!(p.acknowledge(), Some(0x27));
        assert_eq!(p.isr(), 0, "spurious IR7 does not set ISR");
        // Level-triggered slave line dropped between INTR and INTA.
        p.write(0x4b1, 0x02);
        p.set_irq(9, true);
        assert!(p.output());
        p.set_irq(9, false);
        // The master latched the cascade edge, but the slave has nothing: IRQ15's vector.
        assert_eq!(p.acknowledge(), Some(0x2f));
        assert_eq!(p.isr(), 0x0004, "master IR2 in service, slave ISR clear");
    }

    #[test]
    fn level_triggered_follows_line() {
        let mut p = pair();
        p.write(0x4b0, 0xff);
        assert_eq!(p.read(0x4b0), 0xf8, "IRQ 0-2 cannot be level");
        p.set_irq(5, true);
        assert_eq!(p.acknowledge(), Some(0x25));
        p.write(0, 0x20);
        assert!(p.output(), "still high after EOI: requests again");
        p.set_irq(5, false);
        assert!(!p.output());
        p.write(0x4b1, 0xff);
        assert_eq!(p.read(0x4b1), 0xde);
    }

    #[test]
    fn bus_irq2_is_irq9() {
        let mut p = pair();
        p.set_irq(2, true);
        assert_eq!(p.acknowledge(), Some(0x29));
    }

    #[test]
    fn auto_eoi_leaves_isr_clear() {
        let mut p = Pic8259Pair::new();
        init(&mut p, true);
        p.set_irq(6, true);
        assert_eq!(p.acknowledge(), Some(0x26));
        assert_eq!(p.isr(), 0);
    }

    #[test]
    fn read_irr_isr_and_poll() {
        let mut p = pair();
        p.set_irq(3, true);
        assert_eq!(p.read(0), 0x08, "IRR by default after ICW1");
        p.write(0, 0x0b);
        assert_eq!(p.read(0), 0x00, "ISR");
        p.write(0, 0x0c); // poll
        assert_eq!(p.read(0), 0x83);
        assert_eq!(p.read(0), 0x08, "poll acknowledged IRQ3; back to ISR reads");
        p.write(0, 0x0c);
        assert_eq!(p.read(0), 0x00, "nothing pending");
    }

    #[test]
    fn rotation_on_nonspecific_eoi() {
        let mut p = pair();
        p.set_irq(1, true);
        assert_eq!(p.acknowledge(), Some(0x21));
        p.write(0, 0xa0); // rotate on non-specific EOI: IRQ1 becomes lowest
        p.set_irq(1, false);
        p.set_irq(1, true);
        p.set_irq(3, true);
        assert_eq!(p.acknowledge(), Some(0x23), "IRQ3 now outranks IRQ1");
        p.write(0, 0xc4); // set priority: IRQ4 lowest, IRQ5 highest
        p.write(0, 0x63);
        p.set_irq(5, true);
        assert_eq!(p.acknowledge(), Some(0x25));
    }

    #[test]
    fn special_mask_mode_lets_lower_levels_in() {
        let mut p = pair();
        p.set_irq(3, true);
        assert_eq!(p.acknowledge(), Some(0x23));
        p.set_irq(5, true);
        assert!(!p.output());
        p.write(1, 0x08);
        p.write(0, 0x68); // set special mask
        assert!(p.output());
        assert_eq!(p.acknowledge(), Some(0x25));
    }

    #[test]
    fn userspace_pic_drives_pin_and_ports() {
        let pin = InterruptPin::new();
        let pic = UserspacePic::new(pin.clone());
        let mut ports = PicPorts(pic.clone());
        for (off, v) in [(0u16, 0x11u8), (1, 0x20), (1, 4), (1, 1), (1, 0)] {
            ports.write(off, &[v]);
        }
        pic.set_irq(4, true);
        assert!(pin.is_raised());
        assert_eq!(pic.acknowledge(), Some(0x24));
        assert!(!pin.is_raised());
        pic.set_irq(99, true);
        let mut d = [0u8; 2];
        ports.read(0, &mut d);
        assert_eq!(d, [0x00, 0x00], "IRR (latched IRQ4 consumed), IMR");
        ports.write(0x4b0, &[0x20, 0x00]);
        let mut e = [0u8; 1];
        ports.read(0x4b0, &mut e);
        assert_eq!(e[0], 0x20);
        ports.read(0x300, &mut e);
        assert_eq!(e[0], 0xff);
    }
}
