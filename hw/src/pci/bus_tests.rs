//! Tests of the bus through the ports and address space a guest uses.

use std::sync::{Arc, Mutex};

use tandem_softmmu::{AddressSpace, AddressSpaceBuilder, IrqLine, IrqSink, PortBus};

use super::super::config::{ConfigSpace, PciIds, COMMAND_BUS_MASTER, COMMAND_IO, COMMAND_MEMORY};
use super::super::intx::{IntxWire, PciIrqRouting};
use super::*;

#[derive(Default)]
struct Record(Mutex<Vec<(u32, bool)>>);
impl IrqSink for Record {
    fn set_irq(&self, gsi: u32, level: bool) {
        self.0.lock().unwrap().push((gsi, level));
    }
}

/// A function with an I/O BAR 0 (32 ports), a 32-bit memory BAR 1 (4 KiB) and a 64-bit memory
/// BAR 2 (16 KiB), INTA#; BAR reads return `bar << 4 | offset` per byte.
struct TestDev {
    config: ConfigSpace,
    writes: Vec<(u8, u64, Vec<u8>)>,
    line: Option<IrqLine>,
    resets: u32,
}

impl TestDev {
    fn new(device: u16) -> Self {
        let mut config = ConfigSpace::new(PciIds {
            vendor: 0x1af4,
            device,
            class: 0xff_0000,
            revision: 0,
            subsystem_vendor: 0x1af4,
            subsystem: 0,
        });
        config.add_bar(0, BarKind::Io, 0x20).unwrap();
        config.add_bar(1, BarKind::Memory32, 0x1000).unwrap();
        config
            .add_bar(
                2,
                BarKind::Memory64 {
                    prefetchable: false,
                },
                0x4000,
            )
            .unwrap();
        config.set_interrupt_pin(1);
        Self {
            config,
            writes: Vec::new(),
            line: None,
            resets: 0,
        }
    }
}

impl PciDevice for TestDev {
    fn config_read(&mut self, offset: u16, data: &mut [u8]) {
        self.config.read(offset, data);
    }
    fn config_write(&mut self, offset: u16, data: &[u8]) {
        self.config.write(offset, data);
    }
    fn bars(&self) -> Vec<(u8, BarKind, u64)> {
        self.config.bars()
    }
    fn bar_read(&mut self, bar: u8, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = bar << 4 | ((offset as u8).wrapping_add(i as u8) & 0xf);
        }
    }
    fn bar_write(&mut self, bar: u8, offset: u64, data: &[u8]) {
        self.writes.push((bar, offset, data.to_vec()));
    }
    fn connect_intx(&mut self, line: IrqLine) {
        self.line = Some(line);
    }
    fn reset(&mut self) {
        self.config.reset();
        self.resets += 1;
    }
}

struct Machine {
    bus: PciBus,
    ports: PortBus,
    memory: AddressSpace,
    irqs: Arc<Record>,
}

fn machine_with(config: PciBusConfig) -> Machine {
    let irqs = Arc::new(Record::default());
    let bus = PciBus::new(config, irqs.clone()).unwrap();
    let mut ports = PortBus::new();
    let mut map = AddressSpaceBuilder::new();
    bus.register(&mut ports, &mut map).unwrap();
    Machine {
        bus,
        ports,
        memory: map.build(),
        irqs,
    }
}

fn machine() -> Machine {
    machine_with(PciBusConfig::pc(PciIrqRouting::IOAPIC))
}

impl Machine {
    fn select(&self, slot: u8, reg: u8) {
        let a = 0x8000_0000u32 | u32::from(slot) << 11 | u32::from(reg);
        self.ports.write(0xcf8, &a.to_le_bytes());
    }
    fn cfg_read(&self, slot: u8, reg: u8, len: usize) -> u32 {
        self.select(slot, reg & !3);
        let mut d = [0u8; 4];
        self.ports.read(0xcfc + u16::from(reg & 3), &mut d[..len]);
        u32::from_le_bytes(d)
    }
    fn cfg_write(&self, slot: u8, reg: u8, len: usize, v: u32) {
        self.select(slot, reg & !3);
        self.ports
            .write(0xcfc + u16::from(reg & 3), &v.to_le_bytes()[..len]);
    }
    fn add(&self, device: u16) -> (u8, Arc<Mutex<TestDev>>) {
        let dev = Arc::new(Mutex::new(TestDev::new(device)));
        let slot = self.bus.add(dev.clone()).unwrap();
        (slot, dev)
    }
}

#[test]
fn linux_type1_probe_and_host_bridge() {
    let m = machine();
    // arch/x86/pci/direct.c pci_check_type1: byte write to 0xcfb, then the dword round trip.
    m.ports.write(0xcfb, &[0x01]);
    m.ports.write(0xcf8, &0x8000_0000u32.to_le_bytes());
    let mut d = [0u8; 4];
    m.ports.read(0xcf8, &mut d);
    assert_eq!(u32::from_le_bytes(d), 0x8000_0000);
    assert_eq!(m.cfg_read(0, 0, 4), 0x1237_8086);
    assert_eq!(m.cfg_read(0, 0x0a, 2), 0x0600);
    // Absent slots, functions and buses read all-ones.
    assert_eq!(m.cfg_read(1, 0, 4), u32::MAX);
    m.ports.write(0xcf8, &0x8000_0100u32.to_le_bytes());
    m.ports.read(0xcfc, &mut d);
    assert_eq!(d, [0xff; 4], "function 1");
    m.ports.write(0xcf8, &0x8001_0000u32.to_le_bytes());
    m.ports.read(0xcfc, &mut d);
    assert_eq!(d, [0xff; 4], "bus 1");
    // Without the enable bit nothing is addressed.
    m.ports.write(0xcf8, &0u32.to_le_bytes());
    m.ports.read(0xcfc, &mut d);
    assert_eq!(d, [0xff; 4]);
    // Reserved and low address bits read 0.
    m.ports.write(0xcf8, &u32::MAX.to_le_bytes());
    m.ports.read(0xcf8, &mut d);
    assert_eq!(u32::from_le_bytes(d), 0x80ff_fffc);
}

#[test]
fn config_data_serves_every_width_at_every_offset() {
    let m = machine();
    let (slot, dev) = m.add(0x1234);
    for reg in (0u16..256).step_by(4) {
        let mut expect = [0u8; 4];
        dev.lock().unwrap().config.read(reg, &mut expect);
        for len in [1usize, 2, 4] {
            for off in 0..=(4 - len) {
                let got = m.cfg_read(slot, (reg as usize + off) as u8, len);
                let mut want = [0u8; 4];
                want[..len].copy_from_slice(&expect[off..off + len]);
                assert_eq!(
                    got,
                    u32::from_le_bytes(want),
                    "reg {reg:#x} +{off} len {len}"
                );
            }
        }
    }
    // An access running past 0xcff is not the device's: all-ones.
    m.select(slot, 0);
    let mut d = [0u8; 2];
    m.ports.read(0xcff, &mut d);
    assert_eq!(d, [0xff; 2]);
    // Writes at every offset of a writable dword (cache line, latency, header, BIST).
    for off in 0..4u8 {
        m.cfg_write(slot, 0x3c + off, 1, 0x40 + u32::from(off));
    }
    assert_eq!(
        m.cfg_read(slot, 0x3c, 4),
        0x0000_0140,
        "pin and grants are read-only"
    );
    m.cfg_write(slot, 0x0c, 2, 0x2010);
    assert_eq!(m.cfg_read(slot, 0x0c, 4), 0x2010);
    m.cfg_write(slot, 0x0d, 1, 0x33);
    assert_eq!(m.cfg_read(slot, 0x0c, 2), 0x3310);
    // Narrow writes to CONFIG_ADDRESS do not change it.
    m.select(slot, 0x3c);
    m.ports.write(0xcf8, &[0x00]);
    m.ports.write(0xcfa, &[0x00, 0x00]);
    let mut a = [0u8; 4];
    m.ports.read(0xcf8, &mut a);
    assert_eq!(u32::from_le_bytes(a), 0x8000_003c | u32::from(slot) << 11);
    m.ports.read(0xcfc, &mut a[..1]);
    assert_eq!(a[0], 0x40);
}

#[test]
fn bars_size_through_the_ports_and_assignment_enables_decoding() {
    let m = machine();
    let (slot, _) = m.add(1);
    for i in 0..6u8 {
        m.cfg_write(slot, 0x10 + 4 * i, 4, u32::MAX);
    }
    let sizes: Vec<u32> = (0..6u8)
        .map(|i| m.cfg_read(slot, 0x10 + 4 * i, 4))
        .collect();
    assert_eq!(
        sizes,
        vec![0xffff_ffe1, 0xffff_f000, 0xffff_c004, 0xffff_ffff, 0, 0]
    );
    assert!(m.bus.placements().is_empty(), "nothing decodes yet");
    m.bus.assign_bars().unwrap();
    let cmd = m.cfg_read(slot, 4, 2) as u16;
    assert_eq!(cmd, COMMAND_IO | COMMAND_MEMORY | COMMAND_BUS_MASTER);
    let p = m.bus.placements();
    let find = |bar: u8| p.iter().find(|p| p.bar == bar).copied().unwrap();
    assert_eq!(find(0).address, 0xc000);
    assert_eq!(find(2).address, 0xe000_0000, "16 KiB first");
    assert_eq!(find(1).address, 0xe000_4000);
    assert_eq!(m.cfg_read(slot, 0x18, 4), 0xe000_0004);
    assert_eq!(m.cfg_read(slot, 0x1c, 4), 0);
    assert_eq!(m.cfg_read(0, 4, 2), 0, "the host bridge has no BARs");
}

#[test]
fn the_windows_route_to_the_decoding_bar_and_follow_reprogramming() {
    let m = machine();
    let (slot, dev) = m.add(1);
    let (slot2, _) = m.add(2);
    m.bus.assign_bars().unwrap();
    let bar1 = m.cfg_read(slot, 0x14, 4) as u64;
    let mut d = [0u8; 4];
    m.memory.mmio_read(bar1 + 0x10, &mut d);
    assert_eq!(d, [0x10, 0x11, 0x12, 0x13]);
    m.memory.mmio_write(bar1 + 0x8, &[7, 8]);
    let io0 = m.cfg_read(slot, 0x10, 4) as u16 & !3;
    m.ports.read(io0 + 2, &mut d[..1]);
    assert_eq!(d[0], 0x02);
    m.ports.write(io0 + 4, &[9]);
    assert_eq!(
        dev.lock().unwrap().writes,
        vec![(1, 8, vec![7, 8]), (0, 4, vec![9])]
    );
    // An access running past the BAR's end, or nowhere, reads all-ones.
    m.memory.mmio_read(bar1 + 0xffe, &mut d);
    assert_eq!(d, [0xff; 4]);
    m.memory.mmio_read(0xfe00_0000, &mut d);
    assert_eq!(d, [0xff; 4]);

    // The guest moves BAR 1: the old address goes dead, the new one answers.
    m.cfg_write(slot, 0x14, 4, 0xf000_0000);
    m.memory.mmio_read(bar1, &mut d);
    assert_eq!(d, [0xff; 4]);
    m.memory.mmio_read(0xf000_0004, &mut d);
    assert_eq!(d, [0x14, 0x15, 0x16, 0x17]);
    // And moves the 64-bit BAR 2 with a word write to each half.
    m.cfg_write(slot, 0x18, 2, 0x0000);
    m.cfg_write(slot, 0x1a, 2, 0xf800);
    m.memory.mmio_read(0xf800_0000, &mut d[..1]);
    assert_eq!(d[0], 0x20);
    // Memory decoding off: every memory BAR goes dead, I/O stays.
    m.cfg_write(slot, 0x04, 2, u32::from(COMMAND_IO));
    m.memory.mmio_read(0xf000_0004, &mut d);
    assert_eq!(d, [0xff; 4]);
    m.ports.read(io0, &mut d[..1]);
    assert_eq!(d[0], 0x00);
    // The second device kept its placements throughout.
    assert_eq!(
        m.bus
            .placements()
            .iter()
            .filter(|p| p.slot == slot2)
            .count(),
        3
    );
    // A 64-bit BAR above 4 GiB is decoded (and reported) there, outside the window.
    m.cfg_write(slot, 0x04, 2, u32::from(COMMAND_MEMORY));
    m.cfg_write(slot, 0x1c, 4, 0x1);
    let p = m.bus.placements();
    assert!(p
        .iter()
        .any(|p| p.slot == slot && p.bar == 2 && p.address == 0x1_f800_0000));
}

#[test]
fn placement_listeners_see_every_move() {
    let m = machine();
    let (slot, _) = m.add(1);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    m.bus
        .on_placement_change(move |p| s.lock().unwrap().push(p.len()));
    m.bus.assign_bars().unwrap();
    m.cfg_write(slot, 0x04, 2, 0);
    // A write that changes nothing decodable is not reported.
    m.cfg_write(slot, 0x3c, 1, 5);
    m.cfg_write(slot, 0x04, 2, u32::from(COMMAND_MEMORY));
    assert_eq!(*seen.lock().unwrap(), vec![3, 0, 2]);
}

#[test]
fn intx_pins_get_the_swizzled_gsi_and_share_lines() {
    let m = machine();
    let (s1, d1) = m.add(1);
    let (s2, _) = m.add(2);
    assert_eq!((s1, s2), (1, 2));
    assert_eq!(m.cfg_read(s1, 0x3c, 2), 0x0111, "INTA# of slot 1 -> GSI 17");
    assert_eq!(m.cfg_read(s2, 0x3c, 1), 18);
    let line = d1.lock().unwrap().line.clone().unwrap();
    assert_eq!(line.gsi(), 17);
    m.irqs.0.lock().unwrap().clear();
    line.raise();
    assert_eq!(*m.irqs.0.lock().unwrap(), vec![(17, true)]);
    // A device in slot 5 shares GSI 17 with slot 1.
    let d5 = Arc::new(Mutex::new(TestDev::new(5)));
    m.bus.add_at(5, d5.clone()).unwrap();
    let line5 = d5.lock().unwrap().line.clone().unwrap();
    line5.raise();
    line.lower();
    assert!(m.bus.intx_router().is_asserted(1));
    line5.lower();
    assert_eq!(*m.irqs.0.lock().unwrap(), vec![(17, true), (17, false)]);
    assert_eq!(m.bus.intx_line(5).unwrap().gsi(), 17);
    assert!(m.bus.intx_line(0).is_none(), "the host bridge has no pin");
}

#[test]
fn slots_are_checked() {
    let m = machine();
    let dev = || Arc::new(Mutex::new(TestDev::new(1)));
    assert_eq!(m.bus.add_at(0, dev()), Err(PciError::SlotTaken(0)));
    assert_eq!(m.bus.add_at(32, dev()), Err(PciError::BadSlot(32)));
    for s in 1..32 {
        assert_eq!(m.bus.add(dev()), Ok(s));
    }
    assert_eq!(m.bus.add(dev()), Err(PciError::NoFreeSlot));
    // 31 devices of 20 KiB fit the window; their I/O BARs fit 0xc000-0xffff.
    m.bus.assign_bars().unwrap();
    assert_eq!(m.bus.placements().len(), 31 * 3);
}

#[test]
fn bad_windows_and_full_windows_are_errors() {
    let sink: Arc<dyn IrqSink> = Arc::new(Record::default());
    let bad = |mmio: PciWindow, io: PciWindow| {
        let config = PciBusConfig {
            mmio,
            io,
            ..PciBusConfig::pc(PciIrqRouting::IOAPIC)
        };
        PciBus::new(config, sink.clone()).err()
    };
    let io = PC_IO_WINDOW;
    assert!(bad(PciWindow { base: 0, len: 0 }, io).is_some());
    assert!(bad(
        PciWindow {
            base: u64::MAX,
            len: 2
        },
        io
    )
    .is_some());
    assert!(bad(
        PC_MMIO_WINDOW,
        PciWindow {
            base: 0xc000,
            len: 0x4001
        }
    )
    .is_some());
    let tiny = PciBusConfig {
        mmio: PciWindow {
            base: 0xe000_0000,
            len: 0x4000,
        },
        ..PciBusConfig::pc(PciIrqRouting::IOAPIC)
    };
    let m = machine_with(tiny);
    m.add(1);
    assert!(matches!(
        m.bus.assign_bars(),
        Err(PciError::WindowFull {
            space: "memory",
            ..
        })
    ));
}

#[test]
fn reset_restores_power_on_state_then_reassigns() {
    let m = machine_with(PciBusConfig {
        wire: IntxWire::ActiveLow,
        ..PciBusConfig::pc(PciIrqRouting::IOAPIC)
    });
    let (slot, dev) = m.add(1);
    m.bus.assign_bars().unwrap();
    let before = m.bus.placements();
    m.cfg_write(slot, 0x14, 4, 0xf000_0000);
    m.cfg_write(slot, 0x3c, 1, 3);
    dev.lock().unwrap().line.clone().unwrap().raise();
    m.irqs.0.lock().unwrap().clear();
    m.bus.reset().unwrap();
    assert_eq!(dev.lock().unwrap().resets, 1);
    assert_eq!(m.bus.placements(), before);
    assert_eq!(m.cfg_read(slot, 0x3c, 1), 17);
    // Every line driven idle: high, since these wires are active-low.
    let irqs = m.irqs.0.lock().unwrap().clone();
    assert_eq!(irqs, vec![(16, true), (17, true), (18, true), (19, true)]);
}

#[test]
fn the_pic_routing_writes_isa_irqs() {
    let m = machine_with(PciBusConfig::pc(PciIrqRouting::PIC));
    let (slot, _) = m.add(1);
    assert_eq!(m.cfg_read(slot, 0x3c, 1), 11);
    let (slot, _) = m.add(2);
    assert_eq!(m.cfg_read(slot, 0x3c, 1), 5);
}

/// A function with MSI-X in BAR 0: table at 0, PBA at 0x800, two vectors.
struct MsixDev {
    config: ConfigSpace,
    msix: super::super::msix::MsiX,
}

impl PciDevice for MsixDev {
    fn config_read(&mut self, offset: u16, data: &mut [u8]) {
        self.config.read(offset, data);
    }
    fn config_write(&mut self, offset: u16, data: &[u8]) {
        self.config.write(offset, data);
        self.msix.config_written(&self.config);
    }
    fn bars(&self) -> Vec<(u8, BarKind, u64)> {
        self.config.bars()
    }
    fn bar_read(&mut self, _bar: u8, offset: u64, data: &mut [u8]) {
        if !self.msix.bar_read(offset, data) {
            data.fill(0);
        }
    }
    fn bar_write(&mut self, _bar: u8, offset: u64, data: &[u8]) {
        self.msix.bar_write(offset, data);
    }
}

#[derive(Default)]
struct Msis(Mutex<Vec<(u64, u32)>>);
impl tandem_softmmu::MsiSink for Msis {
    fn send_msi(&self, address: u64, data: u32) {
        self.0.lock().unwrap().push((address, data));
    }
}

#[test]
fn msix_is_programmed_through_config_space_and_the_mmio_window() {
    use super::super::msix::{MsiX, MSIX_CAP_ID, MSIX_ENABLE};
    let m = machine();
    let msis = Arc::new(Msis::default());
    let mut config = ConfigSpace::new(PciIds {
        vendor: 0x1af4,
        device: 0x1041,
        class: 0x02_0000,
        revision: 1,
        subsystem_vendor: 0x1af4,
        subsystem: 1,
    });
    let mut msix = MsiX::new(0, 0, 0x800, 2, msis.clone()).unwrap();
    msix.add_capability(&mut config).unwrap();
    config
        .add_bar(0, BarKind::Memory32, msix.bar_size())
        .unwrap();
    let dev = Arc::new(Mutex::new(MsixDev { config, msix }));
    let slot = m.bus.add(dev.clone()).unwrap();
    m.bus.assign_bars().unwrap();
    let bar = u64::from(m.cfg_read(slot, 0x10, 4));
    // The guest finds the capability by walking the list from 0x34.
    let cap = m.cfg_read(slot, 0x34, 1) as u8;
    assert_eq!(m.cfg_read(slot, cap, 1), u32::from(MSIX_CAP_ID));
    // Program vector 1, unmask it, enable MSI-X with a word write to message control.
    m.memory.mmio_write(bar + 16, &0xfee0_0000u32.to_le_bytes());
    m.memory.mmio_write(bar + 16 + 8, &0x4031u32.to_le_bytes());
    m.memory.mmio_write(bar + 16 + 12, &0u32.to_le_bytes());
    assert!(!dev.lock().unwrap().msix.notify(1), "not enabled yet");
    m.cfg_write(slot, cap + 2, 2, u32::from(MSIX_ENABLE));
    assert_eq!(*msis.0.lock().unwrap(), vec![(0xfee0_0000, 0x4031)]);
    assert!(dev.lock().unwrap().msix.notify(1));
    assert_eq!(msis.0.lock().unwrap().len(), 2);
    // The PBA reads through the window too.
    dev.lock().unwrap().msix.notify(0);
    let mut pba = [0u8; 8];
    m.memory.mmio_read(bar + 0x800, &mut pba);
    assert_eq!(pba[0], 1);
}

#[test]
fn the_acpi_description_follows_the_bus_layout() {
    let m = machine_with(PciBusConfig::pc(PciIrqRouting::PIC));
    let acpi = crate::acpi::PciAcpi::new(&m.bus.config());
    assert_eq!(acpi.mmio, PC_MMIO_WINDOW);
    assert_eq!(acpi.routing, PciIrqRouting::PIC);
}
