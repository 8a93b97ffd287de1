//! virtio-pci tests: the transport driven through configuration space and BAR accesses in the
//! order Linux's virtio_pci_modern does, ending in virtio-blk requests; negotiation failures,
//! resets, broken rings, MSI-X, and junk accesses that must never panic.

use std::sync::{Arc, Mutex};

use tandem_softmmu::{AddressSpace, IrqLine, IrqSink, MsiSink};

use super::interrupt::NO_VECTOR;
use super::*;
use crate::pci::config::{COMMAND, COMMAND_BUS_MASTER, COMMAND_INTX_DISABLE, COMMAND_MEMORY};
use crate::virtio::blk::request::{req_type, status as blk_status};
use crate::virtio::blk::VirtioBlk;
use crate::virtio::features::{RING_EVENT_IDX, RING_INDIRECT_DESC, VERSION_1};
use crate::virtio::queue::QueueError;
use crate::virtio::testing::*;

#[derive(Default)]
pub(super) struct Levels(pub(super) Mutex<Vec<bool>>);
impl IrqSink for Levels {
    fn set_irq(&self, _gsi: u32, level: bool) {
        self.0.lock().unwrap().push(level);
    }
}

use crate::pci::testing::SentMsis as Msis;

/// A 64 KiB "disk" whose sector `s` is filled with byte `s`.
pub(super) struct SectorDisk(pub(super) Vec<u8>);

impl SectorDisk {
    /// 128 sectors, sector `s` filled with byte `s`.
    pub(super) fn new() -> Self {
        Self((0..128u32).flat_map(|s| [s as u8; 512]).collect())
    }
}
impl tandem_block::BlockDriver for SectorDisk {
    fn format_name(&self) -> &'static str {
        "test"
    }
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn is_read_only(&self) -> bool {
        false
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), tandem_block::BlockError> {
        tandem_block::check_range(self.size(), offset, buf.len() as u64)?;
        buf.copy_from_slice(&self.0[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), tandem_block::BlockError> {
        tandem_block::check_range(self.size(), offset, data.len() as u64)?;
        self.0[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), tandem_block::BlockError> {
        Ok(())
    }
}

/// Offsets in BAR 4 the capabilities gave, as the driver found them.
#[derive(Debug, Default, PartialEq, Eq)]
struct Caps {
    common: u64,
    notify: u64,
    multiplier: u32,
    isr: u64,
    device: u64,
    msix: Option<u16>,
}

struct Guest {
    pci: VirtioPci,
    mem: Arc<AddressSpace>,
    levels: Arc<Levels>,
    msis: Arc<Msis>,
    caps: Caps,
}

impl Guest {
    fn new(msi: bool) -> Self {
        let mem = guest_memory();
        let disk = SectorDisk::new();
        let blk = VirtioBlk::new(Box::new(disk), "serial", false);
        let msis = Arc::new(Msis::default());
        let sink = msi.then(|| msis.clone() as Arc<dyn MsiSink>);
        let mut pci = VirtioPci::new(Box::new(blk), GuestMemory::connected(&mem), sink).unwrap();
        let levels = Arc::new(Levels::default());
        pci.connect_intx(IrqLine::new(levels.clone(), 11));
        let mut g = Self {
            pci,
            mem,
            levels,
            msis,
            caps: Caps::default(),
        };
        g.caps = g.find_caps();
        g
    }

    fn cfg(&mut self, offset: u16, len: usize) -> u32 {
        let mut b = [0u8; 4];
        self.pci.config_read(offset, &mut b[..len]);
        u32::from_le_bytes(b)
    }

    fn set_cfg(&mut self, offset: u16, len: usize, v: u32) {
        self.pci.config_write(offset, &v.to_le_bytes()[..len]);
    }

    fn rd(&mut self, offset: u64, len: usize) -> u64 {
        let mut b = [0u8; 8];
        self.pci.bar_read(REGS_BAR, offset, &mut b[..len]);
        u64::from_le_bytes(b)
    }

    fn wr(&mut self, offset: u64, len: usize, v: u64) {
        self.pci
            .bar_write(REGS_BAR, offset, &v.to_le_bytes()[..len]);
    }

    /// virtio_pci_find_capability: walk the list for vendor capabilities.
    fn find_caps(&mut self) -> Caps {
        let mut caps = Caps::default();
        assert_ne!(self.cfg(0x06, 2) & 0x10, 0, "capability list");
        let mut at = self.cfg(0x34, 1) as u16;
        while at != 0 {
            let id = self.cfg(at, 1) as u8;
            if id == 0x11 {
                caps.msix = Some(at);
            } else if id == 0x09 {
                let (cfg_type, bar) = (self.cfg(at + 3, 1), self.cfg(at + 4, 1));
                assert_eq!(bar, u32::from(REGS_BAR));
                let offset = u64::from(self.cfg(at + 8, 4));
                match cfg_type {
                    1 => caps.common = offset,
                    2 => {
                        caps.notify = offset;
                        caps.multiplier = self.cfg(at + 16, 4);
                    }
                    3 => caps.isr = offset,
                    4 => caps.device = offset,
                    t => panic!("unexpected cfg_type {t}"),
                }
            }
            at = self.cfg(at + 1, 1) as u16;
        }
        caps
    }

    fn status(&mut self) -> u8 {
        self.rd(self.caps.common + 0x14, 1) as u8
    }

    fn set_status(&mut self, s: u8) {
        self.wr(self.caps.common + 0x14, 1, u64::from(s));
    }

    /// vp_modern_get_features / set_features, then FEATURES_OK; returns whether it held.
    fn negotiate(&mut self, accept: impl Fn(u64) -> u64) -> bool {
        let c = self.caps.common;
        self.set_status(0);
        assert_eq!(self.status(), 0);
        self.set_status(status::ACKNOWLEDGE);
        self.set_status(status::ACKNOWLEDGE | status::DRIVER);
        self.wr(c, 4, 0);
        let lo = self.rd(c + 4, 4);
        self.wr(c, 4, 1);
        let hi = self.rd(c + 4, 4);
        let wanted = accept(lo | hi << 32);
        self.wr(c + 8, 4, 0);
        self.wr(c + 0xc, 4, wanted & 0xffff_ffff);
        self.wr(c + 8, 4, 1);
        self.wr(c + 0xc, 4, wanted >> 32);
        self.set_status(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK);
        self.status() & status::FEATURES_OK != 0
    }

    /// vp_modern queue setup of queue 0 at the test ring's addresses.
    fn setup_queue(&mut self, ring: &DriverRing, vector: u16) {
        let c = self.caps.common;
        self.wr(c + 0x16, 2, 0);
        assert_eq!(self.rd(c + 0x18, 2), 256);
        assert_eq!(self.rd(c + 0x1c, 2), 0);
        self.wr(c + 0x18, 2, u64::from(ring.layout.size));
        let addrs = [
            (0x20, ring.layout.desc_table),
            (0x28, ring.layout.avail_ring),
            (0x30, ring.layout.used_ring),
        ];
        for (off, addr) in addrs {
            // vp_iowrite64_twopart.
            self.wr(c + off, 4, addr & 0xffff_ffff);
            self.wr(c + off + 4, 4, addr >> 32);
        }
        self.wr(c + 0x1a, 2, u64::from(vector));
        self.wr(c + 0x1c, 2, 1);
        assert_eq!(self.rd(c + 0x1c, 2), 1);
    }

    /// The whole probe up to DRIVER_OK with every offered feature.
    fn probe(&mut self, ring: &DriverRing) {
        self.set_cfg(COMMAND, 2, u32::from(COMMAND_MEMORY | COMMAND_BUS_MASTER));
        assert!(self.negotiate(|offered| offered));
        self.setup_queue(ring, NO_VECTOR);
        self.set_status(
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK,
        );
    }

    fn notify(&mut self, queue: u16) {
        let off = self.rd(self.caps.common + 0x1e, 2);
        let at = self.caps.notify + off * u64::from(self.caps.multiplier);
        assert_eq!(self.pci.notify_address(queue), (REGS_BAR, at));
        self.wr(at, 2, u64::from(queue));
    }

    /// A read of `sectors` sectors from `sector` into DATA; returns the status byte.
    fn blk_read(&mut self, ring: &mut DriverRing, sector: u64, sectors: u32) -> u8 {
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&req_type::IN.to_le_bytes());
        h[8..].copy_from_slice(&sector.to_le_bytes());
        self.mem.write(DATA, &h).unwrap();
        self.mem.write(DATA + 0x10, &[0xff]).unwrap();
        ring.add_chain(
            &self.mem,
            &[
                (DATA, 16, false),
                (DATA + 0x1000, sectors * 512, true),
                (DATA + 0x10, 1, true),
            ],
        );
        self.notify(0);
        let mut s = [0u8];
        self.mem.read(DATA + 0x10, &mut s).unwrap();
        s[0]
    }
}

#[test]
fn identity_bars_and_capabilities() {
    let mut g = Guest::new(true);
    assert_eq!(g.cfg(0, 4), 0x1042_1af4);
    assert_eq!(g.cfg(0x08, 4), 0x0180_0001, "class 0x018000, revision 1");
    assert_eq!(g.cfg(0x2c, 4), 0x1100_1af4);
    assert_eq!(g.cfg(0x3d, 1), 1, "INTA");
    let caps = Caps {
        common: 0,
        notify: 0x3000,
        multiplier: 4,
        isr: 0x1000,
        device: 0x2000,
        msix: g.caps.msix,
    };
    assert_eq!(g.caps, caps);
    let msix = g.caps.msix.expect("MSI-X capability");
    assert_eq!(g.cfg(msix + 2, 2), 1, "two vectors: config and queue 0");
    assert_eq!(g.cfg(msix + 4, 4), u32::from(MSIX_BAR));
    assert_eq!(
        g.pci.bars(),
        vec![
            (1, BarKind::Memory32, 0x1000),
            (
                4,
                BarKind::Memory64 {
                    prefetchable: false
                },
                0x4000
            )
        ]
    );
    // BAR sizing as firmware does it.
    g.set_cfg(0x20, 4, u32::MAX);
    g.set_cfg(0x24, 4, u32::MAX);
    assert_eq!(g.cfg(0x20, 4), 0xffff_c004);
    assert_eq!(g.cfg(0x24, 4), u32::MAX);
    assert_eq!(g.pci.notify_address(0), (4, 0x3000));
    assert_eq!(g.pci.notify_address(3), (4, 0x300c));
    // The device configuration: capacity 128 sectors.
    assert_eq!(g.rd(g.caps.device, 8), 128);
    // Without an MSI sink there is no MSI-X.
    assert_eq!(Guest::new(false).caps.msix, None);
}

#[test]
fn linux_style_probe_then_blk_read_over_intx() {
    let mut g = Guest::new(false);
    let mut ring = DriverRing::new(16);
    g.probe(&ring);
    assert_eq!(g.status(), 0x0f);
    assert_eq!(
        g.pci.common.driver_features() & (VERSION_1 | RING_EVENT_IDX | RING_INDIRECT_DESC),
        VERSION_1 | RING_EVENT_IDX | RING_INDIRECT_DESC
    );
    assert_eq!(g.blk_read(&mut ring, 5, 2), blk_status::OK);
    let mut data = vec![0u8; 1024];
    g.mem.read(DATA + 0x1000, &mut data).unwrap();
    assert_eq!(&data[..512], &[5; 512]);
    assert_eq!(&data[512..], &[6; 512]);
    assert_eq!(ring.used_idx(&g.mem), 1);
    assert_eq!(ring.used(&g.mem, 0), (0, 1025));
    // INTx is asserted, shows in the status register, and the ISR read clears both.
    assert_eq!(*g.levels.0.lock().unwrap(), vec![true]);
    assert_ne!(g.cfg(0x06, 2) & 0x8, 0);
    assert_eq!(g.rd(g.caps.isr, 1), 1);
    assert_eq!(*g.levels.0.lock().unwrap(), vec![true, false]);
    assert_eq!(g.cfg(0x06, 2) & 0x8, 0);
    assert_eq!(g.rd(g.caps.isr, 1), 0);
    // A second request: the driver asks for the next interrupt through used_event.
    ring.set_used_event(&g.mem, 1);
    assert_eq!(g.blk_read(&mut ring, 127, 1), blk_status::OK);
    assert_eq!(g.rd(g.caps.isr, 4), 1);
    assert!(g.msis.0.lock().unwrap().is_empty());
    // INTx disabled in the command register: the ISR still records, the line stays low.
    g.set_cfg(
        COMMAND,
        2,
        u32::from(COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE),
    );
    ring.set_used_event(&g.mem, 2);
    g.blk_read(&mut ring, 0, 1);
    assert_eq!(g.levels.0.lock().unwrap().len(), 4);
    assert_eq!(g.rd(g.caps.isr, 1), 1);
}

#[test]
fn features_ok_is_refused_for_unoffered_or_legacy_features() {
    let mut g = Guest::new(false);
    assert!(!g.negotiate(|offered| offered | 1));
    assert!(!g.negotiate(|offered| offered & !VERSION_1));
    assert!(g.negotiate(|_| VERSION_1));
    // Features are fixed after FEATURES_OK.
    let c = g.caps.common;
    g.wr(c + 8, 4, 0);
    g.wr(c + 0xc, 4, 0xffff_ffff);
    assert_eq!(g.rd(c + 0xc, 4), 0);
    // DRIVER_OK without FEATURES_OK breaks the device.
    g.set_status(0);
    g.set_status(status::ACKNOWLEDGE | status::DRIVER | status::DRIVER_OK);
    assert_ne!(g.status() & status::DEVICE_NEEDS_RESET, 0);
    assert_eq!(g.pci.take_error(), Some(DeviceError::NotNegotiated));
}

#[test]
fn status_zero_resets_the_device() {
    let mut g = Guest::new(false);
    let mut ring = DriverRing::new(16);
    g.probe(&ring);
    let c = g.caps.common;
    g.set_status(0);
    assert_eq!(g.status(), 0);
    g.wr(c + 0x16, 2, 0);
    assert_eq!(
        (g.rd(c + 0x18, 2), g.rd(c + 0x1c, 2), g.rd(c + 0x20, 8)),
        (256, 0, 0)
    );
    g.wr(c + 8, 4, 1);
    assert_eq!(g.rd(c + 0xc, 4), 0);
    // A notification to a reset device does nothing.
    g.blk_read(&mut ring, 0, 1);
    assert_eq!(ring.used_idx(&g.mem), 0);
    // And the device comes back after a new probe.
    let mut ring = DriverRing::new(16);
    g.mem.write(USED, &[0; 8]).unwrap();
    g.probe(&ring);
    assert_eq!(g.blk_read(&mut ring, 1, 1), blk_status::OK);
}

#[test]
fn notifications_need_driver_ok_and_bus_mastering() {
    let mut g = Guest::new(false);
    let mut ring = DriverRing::new(16);
    assert!(g.negotiate(|o| o));
    g.setup_queue(&ring, NO_VECTOR);
    g.blk_read(&mut ring, 0, 1);
    assert_eq!(ring.used_idx(&g.mem), 0);
    g.set_status(0x0f);
    // Bus mastering is still off.
    g.notify(0);
    assert_eq!(ring.used_idx(&g.mem), 0);
    g.set_cfg(COMMAND, 2, u32::from(COMMAND_MEMORY | COMMAND_BUS_MASTER));
    g.notify(0);
    assert_eq!(ring.used_idx(&g.mem), 1);
    // Queues past the device's are ignored; queue registers of a missing queue read as zero.
    g.wr(g.caps.notify + 7 * 4, 2, 7);
    let c = g.caps.common;
    g.wr(c + 0x16, 2, 3);
    assert_eq!(
        (g.rd(c + 0x18, 2), g.rd(c + 0x1a, 2)),
        (0, u64::from(NO_VECTOR))
    );
}

#[test]
fn a_doorbell_defers_notifications_to_its_waiter() {
    let mut g = Guest::new(false);
    let mut ring = DriverRing::new(16);
    let bell = tandem_softmmu::Doorbell::new().unwrap();
    let waiter = bell.try_clone().unwrap();
    assert!(g.pci.set_doorbell(0, bell));
    assert!(!g
        .pci
        .set_doorbell(1, tandem_softmmu::Doorbell::new().unwrap()));
    g.probe(&ring);
    g.blk_read(&mut ring, 2, 1);
    assert_eq!(ring.used_idx(&g.mem), 0);
    assert!(waiter.take());
    g.pci.notify_queue(0);
    assert_eq!(ring.used_idx(&g.mem), 1);
}

#[test]
fn a_broken_ring_sets_needs_reset_and_interrupts() {
    let mut g = Guest::new(false);
    let ring = DriverRing::new(16);
    g.probe(&ring);
    // Descriptor 0 chains to itself.
    let mut ring = ring;
    ring.write_desc(&g.mem, 0, (DATA, 16, F_NEXT, 0));
    ring.publish(&g.mem, 0);
    g.notify(0);
    assert_eq!(g.status(), 0x0f | status::DEVICE_NEEDS_RESET);
    assert_eq!(g.rd(g.caps.isr, 1), u64::from(super::interrupt::ISR_CONFIG));
    assert_eq!(
        g.pci.take_error(),
        Some(DeviceError::Queue {
            index: 0,
            source: QueueError::ChainTooLong(16)
        })
    );
    assert_eq!(g.pci.take_error(), None);
    // The status keeps NEEDS_RESET through driver writes until a reset.
    g.set_status(0x0f);
    assert_ne!(g.status() & status::DEVICE_NEEDS_RESET, 0);
    g.set_status(0);
    assert_eq!(g.status(), 0);
}

#[test]
fn a_bad_queue_configuration_fails_driver_ok() {
    let mut g = Guest::new(false);
    let mut ring = DriverRing::new(16);
    ring.layout.used_ring = RAM - 8;
    g.set_cfg(COMMAND, 2, u32::from(COMMAND_MEMORY | COMMAND_BUS_MASTER));
    assert!(g.negotiate(|o| o));
    g.setup_queue(&ring, NO_VECTOR);
    g.set_status(0x0f);
    assert_ne!(g.status() & status::DEVICE_NEEDS_RESET, 0);
    assert!(matches!(
        g.pci.take_error(),
        Some(DeviceError::Queue {
            index: 0,
            source: QueueError::NotRam { .. }
        })
    ));
    // A queue size the device does not allow.
    let mut ring = DriverRing::new(16);
    ring.layout.size = 24;
    assert!(g.negotiate(|o| o));
    g.setup_queue(&ring, NO_VECTOR);
    g.set_status(0x0f);
    assert!(matches!(
        g.pci.take_error(),
        Some(DeviceError::Queue {
            source: QueueError::BadSize { .. },
            ..
        })
    ));
}

#[test]
fn guest_memory_must_be_connected() {
    let (driver, ring) = (SectorDisk(vec![0; 4096]), DriverRing::new(16));
    let blk = VirtioBlk::new(Box::new(driver), "", false);
    let mut g = Guest::new(false);
    g.pci = VirtioPci::new(Box::new(blk), GuestMemory::new(), None).unwrap();
    g.probe(&ring);
    assert_eq!(g.pci.take_error(), Some(DeviceError::NoMemory));
}

#[test]
fn msix_vectors_carry_queue_interrupts() {
    let mut g = Guest::new(true);
    let mut ring = DriverRing::new(16);
    let cap = g.caps.msix.unwrap();
    g.set_cfg(COMMAND, 2, u32::from(COMMAND_MEMORY | COMMAND_BUS_MASTER));
    // vp_request_msix_vectors: enable MSI-X, program and unmask both vectors.
    g.set_cfg(cap + 2, 2, 0x8000);
    for (v, data) in [(0u64, 0x30u32), (1, 0x31)] {
        let mut e = [0u8; 16];
        e[..8].copy_from_slice(&0xfee0_0000u64.to_le_bytes());
        e[8..12].copy_from_slice(&data.to_le_bytes());
        g.pci.bar_write(MSIX_BAR, v * 16, &e);
    }
    assert!(g.negotiate(|o| o));
    let c = g.caps.common;
    g.wr(c + 0x10, 2, 0);
    assert_eq!(g.rd(c + 0x10, 2), 0);
    g.setup_queue(&ring, 1);
    assert_eq!(g.rd(c + 0x1a, 2), 1);
    // A vector past the table reads back as NO_VECTOR: the driver sees the refusal.
    g.wr(c + 0x1a, 2, 2);
    assert_eq!(g.rd(c + 0x1a, 2), u64::from(NO_VECTOR));
    g.wr(c + 0x1a, 2, 1);
    g.set_status(0x0f);
    assert_eq!(g.blk_read(&mut ring, 9, 1), blk_status::OK);
    assert_eq!(*g.msis.0.lock().unwrap(), vec![(0xfee0_0000, 0x31)]);
    assert!(g.levels.0.lock().unwrap().is_empty());
    assert_eq!(g.rd(g.caps.isr, 1), 0);
    // A broken ring signals the configuration vector.
    ring.write_desc(&g.mem, 3, (DATA, 16, F_NEXT, 3));
    ring.publish(&g.mem, 3);
    g.notify(0);
    assert_eq!(g.msis.0.lock().unwrap().last(), Some(&(0xfee0_0000, 0x30)));
}

#[test]
fn junk_accesses_never_panic() {
    let mut g = Guest::new(true);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..3 {
        for offset in 0..0x4010u64 {
            for len in [1usize, 2, 4, 8] {
                let v = next().to_le_bytes();
                let mut b = [0u8; 8];
                for bar in [0u8, MSIX_BAR, REGS_BAR, 5, 200] {
                    g.pci.bar_read(bar, offset, &mut b[..len]);
                    if round > 0 || bar != REGS_BAR || offset >= 0x3000 {
                        g.pci.bar_write(bar, offset, &v[..len]);
                    }
                }
            }
        }
        for offset in 0..0x1010u16 {
            let v = next().to_le_bytes();
            let mut b = [0u8; 4];
            g.pci.config_read(offset, &mut b);
            g.pci.config_write(offset, &v[..4]);
        }
        g.pci.bar_read(REGS_BAR, u64::MAX - 2, &mut [0u8; 8]);
        g.pci.bar_write(REGS_BAR, u64::MAX - 2, &[1; 8]);
        g.pci.notify_queue(u16::MAX);
    }
    PciDevice::reset(&mut g.pci);
    assert_eq!(g.status(), 0);
}
