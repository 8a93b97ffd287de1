//! virtio-blk on the PC's PCI bus, as a board wires it: BARs placed by the bus, configuration
//! through ports 0xcf8/0xcfc, registers and notifications through the address space's MMIO
//! window, INTx through the bus's routing, DMA into RAM of the same address space.

use std::sync::{Arc, Mutex};

use tandem_softmmu::host_memory::HostMemory;
use tandem_softmmu::{AddressSpace, AddressSpaceBuilder, IrqSink, PortBus};

use super::tests::SectorDisk;
use super::*;
use crate::pci::{PciBus, PciBusConfig, PciIrqRouting};
use crate::virtio::blk::request::{req_type, status as blk_status};
use crate::virtio::testing::{DriverRing, DATA, RAM};

#[derive(Default)]
struct Record(Mutex<Vec<(u32, bool)>>);
impl IrqSink for Record {
    fn set_irq(&self, gsi: u32, level: bool) {
        self.0.lock().unwrap().push((gsi, level));
    }
}

struct Board {
    ports: PortBus,
    space: Arc<AddressSpace>,
    slot: u8,
    regs: u64,
    irqs: Arc<Record>,
    dev: Arc<Mutex<VirtioPci>>,
}

impl Board {
    fn new() -> Self {
        let irqs = Arc::new(Record::default());
        let bus = PciBus::new(PciBusConfig::pc(PciIrqRouting::IOAPIC), irqs.clone()).unwrap();
        let memory = GuestMemory::new();
        let dev = crate::virtio::blk_pci(
            Box::new(SectorDisk::new()),
            "bus",
            false,
            memory.clone(),
            None,
        );
        let dev = Arc::new(Mutex::new(dev.unwrap()));
        let slot = bus.add(dev.clone()).unwrap();
        bus.assign_bars().unwrap();
        let mut ports = PortBus::new();
        let mut map = AddressSpaceBuilder::new();
        map.ram(0, Arc::new(HostMemory::anonymous(RAM).unwrap()), 0, RAM)
            .unwrap();
        bus.register(&mut ports, &mut map).unwrap();
        let space = Arc::new(map.build());
        assert!(memory.connect(&space));
        let regs = bus
            .placements()
            .iter()
            .find(|p| p.slot == slot && p.bar == REGS_BAR)
            .expect("BAR 4 decodes")
            .address;
        Self {
            ports,
            space,
            slot,
            regs,
            irqs,
            dev,
        }
    }

    fn cfg_read(&self, reg: u8, len: usize) -> u32 {
        let a = 0x8000_0000u32 | u32::from(self.slot) << 11 | u32::from(reg & !3);
        self.ports.write(0xcf8, &a.to_le_bytes());
        let mut d = [0u8; 4];
        self.ports.read(0xcfc + u16::from(reg & 3), &mut d[..len]);
        u32::from_le_bytes(d)
    }

    fn rd(&self, offset: u64, len: usize) -> u64 {
        let mut b = [0u8; 8];
        self.space.mmio_read(self.regs + offset, &mut b[..len]);
        u64::from_le_bytes(b)
    }

    fn wr(&self, offset: u64, len: usize, v: u64) {
        self.space
            .mmio_write(self.regs + offset, &v.to_le_bytes()[..len]);
    }
}

#[test]
fn a_virtio_blk_read_through_the_pc_bus() {
    let b = Board::new();
    assert_eq!(b.cfg_read(0, 4), 0x1042_1af4);
    assert_eq!(b.cfg_read(0x0a, 2), 0x0180);
    // Linux's probe, through the MMIO window.
    b.wr(0x14, 1, 0);
    b.wr(0x14, 1, u64::from(status::ACKNOWLEDGE | status::DRIVER));
    b.wr(0x00, 4, 1);
    let hi = b.rd(0x04, 4);
    b.wr(0x00, 4, 0);
    let lo = b.rd(0x04, 4);
    for (sel, half) in [(0u64, lo), (1, hi)] {
        b.wr(0x08, 4, sel);
        b.wr(0x0c, 4, half);
    }
    b.wr(0x14, 1, 0x0b);
    assert_eq!(b.rd(0x14, 1), 0x0b);
    let mut ring = DriverRing::new(16);
    b.wr(0x16, 2, 0);
    b.wr(0x18, 2, 16);
    b.wr(0x20, 8, ring.layout.desc_table);
    b.wr(0x28, 8, ring.layout.avail_ring);
    b.wr(0x30, 8, ring.layout.used_ring);
    b.wr(0x1c, 2, 1);
    b.wr(0x14, 1, 0x0f);
    // A read of sector 3, announced at the queue's notify address.
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(&req_type::IN.to_le_bytes());
    h[8..].copy_from_slice(&3u64.to_le_bytes());
    b.space.write(DATA, &h).unwrap();
    ring.add_chain(
        &b.space,
        &[
            (DATA, 16, false),
            (DATA + 0x200, 512, true),
            (DATA + 0x10, 1, true),
        ],
    );
    let (bar, notify) = b.dev.lock().unwrap().notify_address(0);
    assert_eq!(bar, REGS_BAR);
    b.wr(notify, 2, 0);
    let mut got = vec![0u8; 513];
    b.space.read(DATA + 0x200, &mut got[..512]).unwrap();
    b.space.read(DATA + 0x10, &mut got[512..]).unwrap();
    assert_eq!(&got[..512], &[3; 512]);
    assert_eq!(got[512], blk_status::OK);
    assert_eq!(ring.used_idx(&b.space), 1);
    // INTx on the slot's routed GSI, lowered by the ISR read.
    let gsi = PciIrqRouting::IOAPIC.gsi(b.slot, 1).unwrap();
    assert_eq!(b.irqs.0.lock().unwrap().last(), Some(&(gsi, true)));
    assert_eq!(b.cfg_read(0x06, 2) & 0x8, 0x8);
    assert_eq!(b.rd(ISR_OFFSET, 1), 1);
    assert_eq!(b.irqs.0.lock().unwrap().last(), Some(&(gsi, false)));
    assert!(b.dev.lock().unwrap().take_error().is_none());
}
