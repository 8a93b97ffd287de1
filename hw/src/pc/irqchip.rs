//! The board's own interrupt controllers, for engines that have none: the 8259 pair and the
//! 8254 PIT, and with APICs also an I/O APIC and a local APIC per CPU, wired as the lapic
//! module's recipe says (see [`crate::intc::lapic`], "Wiring").
//!
//! With APICs: every CPU has its own INTR pin driven by its local APIC; the 8259 pair drives a
//! pin of its own, which CPU 0's LINT0 reads while in ExtINT mode (virtual wire, as firmware
//! leaves it); device lines go to both the 8259 and the I/O APIC (PIT on pin 2); IPIs and I/O
//! APIC messages travel on the [`ApicRouter`]; the I/O APIC is at [`IOAPIC_DEFAULT_BASE`].
//! Without: the 8259 pair drives the only CPU's pin directly.
//!
//! Known warts: a machine reset puts the local APICs and the I/O APIC back to power-on, not
//! the 8259 pair and the PIT (the guest reprograms those anyway).

use std::sync::{Arc, Mutex};

use tandem_softmmu::{
    AddressSpaceBuilder, InterruptAcknowledge, InterruptPin, IrqLine, IrqSink, PortBus, PortDevice,
};

use super::PcError;

use crate::intc::ioapic::{
    Ioapic, IoapicMmio, UserspaceIoapic, IOAPIC_DEFAULT_BASE, IOAPIC_MMIO_SIZE,
};
use crate::intc::isa_irq::IsaIrqRouter;
use crate::intc::lapic::{ApicBus, ApicRouter, Lapic, UserspaceLapic};
use crate::intc::pic8259::{PicPorts, UserspacePic};
use crate::timer::clock::Clock;
use crate::timer::pit8254::PitDevice;

/// How one CPU's interrupt input is driven.
#[derive(Clone)]
pub struct CpuInterrupts {
    /// The CPU's INTR pin.
    pub pin: Arc<InterruptPin>,
    /// Its INTA cycle: the local APIC, or the 8259 pair when there are no APICs.
    pub ack: Arc<dyn InterruptAcknowledge>,
    /// The CPU's local APIC, if the board has APICs.
    pub lapic: Option<Arc<UserspaceLapic>>,
}

/// The APIC side: the bus joining the local APICs and the I/O APIC.
pub struct Apics {
    /// The APIC bus (it holds the local APICs and the I/O APIC).
    pub router: Arc<ApicRouter>,
    /// The I/O APIC.
    pub ioapic: Arc<UserspaceIoapic>,
}

/// The userspace interrupt controllers and PIT.
pub struct UserspaceIrqchip {
    /// The 8259 pair.
    pub pic: Arc<UserspacePic>,
    /// The PIT, ticked by the main loop.
    pub pit: Arc<Mutex<PitDevice>>,
    /// Each CPU's interrupt input, by CPU index.
    pub cpus: Vec<CpuInterrupts>,
    /// The APICs, when the board has them.
    pub apics: Option<Apics>,
}

/// The 8259's ports, recomputing CPU 0's pin after each write: a PIC output that falls (a
/// mask, an EOI) reaches the local APIC's LINT0 only that way.
struct PicPortsBehindLint0 {
    ports: PicPorts,
    lapic: Arc<UserspaceLapic>,
}

impl PortDevice for PicPortsBehindLint0 {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        self.ports.read(offset, data);
    }

    fn write(&mut self, offset: u16, data: &[u8]) {
        self.ports.write(offset, data);
        self.lapic.refresh();
    }
}

impl UserspaceIrqchip {
    /// Builds the controllers for `cpus` CPUs (APICs if `apic`, else the 8259 alone for one
    /// CPU), registers their ports and maps the I/O APIC. Returns them and the sink device
    /// lines are to be wired to (by ISA IRQ number).
    pub(super) fn build(
        apic: bool,
        cpus: u32,
        clock: &Arc<dyn Clock>,
        ports: &mut PortBus,
        map: &mut AddressSpaceBuilder,
    ) -> Result<(Self, Arc<dyn IrqSink>), PcError> {
        let pic_pin = InterruptPin::new();
        let pic = UserspacePic::new(pic_pin.clone());
        let (cpus, apics, sink, pic_dev): (_, _, Arc<dyn IrqSink>, Arc<Mutex<dyn PortDevice>>) =
            if apic {
                let cpus: Vec<CpuInterrupts> = (0..cpus)
                    .map(|i| {
                        let pin = InterruptPin::new();
                        let lapic =
                            UserspaceLapic::new(Lapic::new(i, i == 0), pin.clone(), clock.clone());
                        CpuInterrupts {
                            pin,
                            ack: lapic.clone(),
                            lapic: Some(lapic),
                        }
                    })
                    .collect();
                let lapics: Vec<_> = cpus.iter().filter_map(|c| c.lapic.clone()).collect();
                let bsp = lapics.first().cloned().ok_or(PcError::BadCpuCount(0))?;
                bsp.connect_extint(pic_pin, pic.clone());
                let router = ApicRouter::new(lapics);
                let ioapic = UserspaceIoapic::new(&(router.clone() as Arc<dyn ApicBus>));
                router.connect_ioapic(ioapic.clone());
                map.mmio(
                    IOAPIC_DEFAULT_BASE,
                    IOAPIC_MMIO_SIZE,
                    Arc::new(Mutex::new(IoapicMmio(ioapic.clone()))),
                )?;
                let sink = IsaIrqRouter::new(pic.clone(), ioapic.clone());
                let pic_dev = Arc::new(Mutex::new(PicPortsBehindLint0 {
                    ports: PicPorts(pic.clone()),
                    lapic: bsp,
                }));
                (cpus, Some(Apics { router, ioapic }), sink, pic_dev)
            } else {
                let cpu = CpuInterrupts {
                    pin: pic_pin,
                    ack: pic.clone(),
                    lapic: None,
                };
                let pic_dev = Arc::new(Mutex::new(PicPorts(pic.clone())));
                (vec![cpu], None, pic.clone(), pic_dev)
            };
        ports.register_with_offset(0x20, 2, pic_dev.clone(), 0)?;
        ports.register_with_offset(0xa0, 2, pic_dev.clone(), 0x80)?;
        ports.register_with_offset(0x4d0, 2, pic_dev, 0x4b0)?;
        let pit = Arc::new(Mutex::new(PitDevice::new(
            IrqLine::new(sink.clone(), 0),
            clock.clone(),
        )));
        ports.register_with_offset(0x40, 4, pit.clone(), 0)?;
        ports.register_with_offset(0x61, 1, pit.clone(), 0x21)?;
        Ok((
            Self {
                pic,
                pit,
                cpus,
                apics,
            },
            sink,
        ))
    }

    /// The local APICs, by CPU index (empty without APICs).
    pub fn lapics(&self) -> Vec<Arc<UserspaceLapic>> {
        self.cpus.iter().filter_map(|c| c.lapic.clone()).collect()
    }

    /// A machine reset: the APICs back to their power-on state.
    pub fn reset(&self) {
        for (i, lapic) in self.lapics().iter().enumerate() {
            lapic.with_lapic(|l, _| *l = Lapic::new(i as u32, i == 0));
        }
        if let Some(a) = &self.apics {
            a.ioapic.with_ioapic(|io| {
                *io = Ioapic::new();
                Vec::new()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use tandem_softmmu::irq::LocalApic;

    use super::super::{BoardIrqchip, Pc, PcConfig};
    use super::*;

    fn board(irqchip: BoardIrqchip, cpus: u32) -> Pc {
        let config = PcConfig {
            ram_size: 16 << 20,
            mem_path: None,
            serial_out: Box::new(std::io::sink()),
        };
        Pc::with_irqchip(config, irqchip, cpus).unwrap()
    }

    fn out(pc: &Pc, port: u16, v: u8) {
        pc.ports.write(port, &[v]);
    }

    /// ICW1-4 (vectors 0x20 and 0x28, cascade on IRQ 2), then `imr` on the master.
    fn init_pic(pc: &Pc, imr: u8) {
        for (port, v) in [
            (0x20, 0x11),
            (0x21, 0x20),
            (0x21, 4),
            (0x21, 1),
            (0xa0, 0x11),
            (0xa1, 0x28),
            (0xa1, 2),
            (0xa1, 1),
            (0xa1, 0xff),
            (0x21, imr),
        ] {
            out(pc, port, v);
        }
    }

    fn ioapic_write(pc: &Pc, index: u8, value: u32) {
        pc.memory.mmio_write(IOAPIC_DEFAULT_BASE, &[index]);
        pc.memory
            .mmio_write(IOAPIC_DEFAULT_BASE + 0x10, &value.to_le_bytes());
    }

    fn ioapic_read(pc: &Pc, index: u8) -> u32 {
        pc.memory.mmio_write(IOAPIC_DEFAULT_BASE, &[index]);
        let mut d = [0u8; 4];
        pc.memory.mmio_read(IOAPIC_DEFAULT_BASE + 0x10, &mut d);
        u32::from_le_bytes(d)
    }

    fn lapic_write(l: &UserspaceLapic, reg: u64, v: u32) {
        LocalApic::mmio_write(l, reg, &v.to_le_bytes());
    }

    #[test]
    fn each_cpu_has_its_pin_and_local_apic_and_the_ioapic_is_mapped() {
        let pc = board(BoardIrqchip::Apic, 3);
        let chip = pc.userspace_irqchip.as_ref().unwrap();
        assert_eq!(chip.cpus.len(), 3);
        for (i, cpu) in chip.cpus.iter().enumerate() {
            let lapic = cpu.lapic.clone().unwrap();
            let mut id = [0u8; 4];
            LocalApic::mmio_read(lapic.as_ref(), 0x20, &mut id);
            assert_eq!(u32::from_le_bytes(id) >> 24, i as u32);
            assert!(cpu.ack.clone().local_apic().is_some());
        }
        assert!(!Arc::ptr_eq(&chip.cpus[0].pin, &chip.cpus[1].pin));
        assert_eq!(ioapic_read(&pc, 1), crate::intc::ioapic::IOAPIC_VERSION);
    }

    #[test]
    fn the_pit_reaches_the_cpu_through_ioapic_pin_2_with_the_pic_masked() {
        let pc = board(BoardIrqchip::Apic, 1);
        let chip = pc.userspace_irqchip.as_ref().unwrap();
        let cpu = &chip.cpus[0];
        let lapic = cpu.lapic.clone().unwrap();
        init_pic(&pc, 0xff);
        lapic_write(&lapic, 0xf0, 0x1ff);
        // Pin 2: vector 0x30, fixed, physical destination 0, edge, unmasked.
        ioapic_write(&pc, 0x10 + 2 * 2, 0x30);
        ioapic_write(&pc, 0x11 + 2 * 2, 0);
        // PIT counter 0, mode 2, a count of 2: an edge every few microseconds.
        for (port, v) in [(0x43, 0x34), (0x40, 2), (0x40, 0)] {
            out(&pc, port, v);
        }
        let tick = || chip.pit.lock().unwrap().tick();
        while !cpu.pin.is_raised() {
            let next = tick();
            let now = chip.pit.lock().unwrap().now_ns();
            let wait = next.map_or(1_000, |d| d.saturating_sub(now));
            std::thread::sleep(std::time::Duration::from_nanos(wait));
        }
        assert_eq!(cpu.ack.acknowledge(), Some(0x30));
        // The 8259 saw IRQ 0 too but is masked: nothing comes through LINT0.
        assert!(!chip.pic.output());
    }

    #[test]
    fn the_pic_reaches_cpu_0_through_lint0_and_a_mask_lowers_the_pin() {
        let pc = board(BoardIrqchip::Apic, 2);
        let chip = pc.userspace_irqchip.as_ref().unwrap();
        let (cpu0, cpu1) = (&chip.cpus[0], &chip.cpus[1]);
        init_pic(&pc, !(1 << 4));
        // COM1 raises IRQ 4 once its transmit-empty interrupt is enabled.
        out(&pc, 0x3f9, 0x02);
        assert!(cpu0.pin.is_raised());
        assert!(
            !cpu1.pin.is_raised(),
            "only the BSP's LINT0 is virtual wire"
        );
        // The I/O APIC's pin 4 is masked: the vector is the 8259's.
        out(&pc, 0x21, 0xff);
        assert!(
            !cpu0.pin.is_raised(),
            "masking IRQ 4 at the PIC lowers the pin"
        );
        out(&pc, 0x21, !(1 << 4));
        assert!(cpu0.pin.is_raised());
        assert_eq!(cpu0.ack.acknowledge(), Some(0x24));
    }

    #[test]
    fn without_apics_the_pic_drives_the_only_cpu() {
        let pc = board(BoardIrqchip::Pic, 1);
        let chip = pc.userspace_irqchip.as_ref().unwrap();
        assert!(chip.apics.is_none() && chip.lapics().is_empty());
        assert!(chip.cpus[0].ack.clone().local_apic().is_none());
        init_pic(&pc, !(1 << 4));
        out(&pc, 0x3f9, 0x02);
        assert!(chip.cpus[0].pin.is_raised());
        assert_eq!(chip.cpus[0].ack.acknowledge(), Some(0x24));
        // Nothing answers at the I/O APIC's address.
        assert_eq!(ioapic_read(&pc, 1), u32::MAX);
    }

    #[test]
    fn a_reset_returns_the_apics_to_power_on() {
        let pc = board(BoardIrqchip::Apic, 2);
        let chip = pc.userspace_irqchip.as_ref().unwrap();
        let lapics = chip.lapics();
        lapic_write(&lapics[1], 0x80, 0x50);
        lapic_write(&lapics[1], 0x20, 7 << 24);
        ioapic_write(&pc, 0x10, 0x31);
        pc.reset().unwrap();
        let mut d = [0u8; 4];
        LocalApic::mmio_read(lapics[1].as_ref(), 0x80, &mut d);
        assert_eq!(u32::from_le_bytes(d), 0);
        LocalApic::mmio_read(lapics[1].as_ref(), 0x20, &mut d);
        assert_eq!(u32::from_le_bytes(d) >> 24, 1);
        assert_eq!(ioapic_read(&pc, 0x10), 1 << 16, "masked again");
        // CPU 0 is the BSP again, with the PIC behind LINT0.
        assert_eq!(
            LocalApic::read_msr(lapics[0].as_ref(), 0x1b),
            Ok(0xfee0_0900)
        );
        assert_eq!(
            LocalApic::read_msr(lapics[1].as_ref(), 0x1b),
            Ok(0xfee0_0800)
        );
    }
}
