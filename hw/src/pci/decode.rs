//! Which BAR decodes which address now, and the two window devices that route guest accesses
//! by it.
//!
//! The board maps one [`PciMmioWindow`] over the whole MMIO window and one [`PciIoWindow`] over
//! the whole I/O window (its address space is frozen once built; BARs move under it). Each
//! access goes to the BAR that decodes its address, read from the function's BAR and command
//! registers as they stand: the table of placements is rebuilt for a slot whenever a config
//! write through the bus reaches its command register or a BAR, so a guest that moves or
//! disables a BAR is followed. An access nothing decodes, or one that runs past the end of the
//! BAR it starts in, reads all-ones and its writes vanish.
//!
//! Overlapping BARs (a guest may program them so) go to the lowest (slot, BAR); QEMU leaves
//! that case to priorities too. Known warts: a BAR the guest moves outside the windows decodes
//! nothing; every access through a window takes that window's mutex (the bus's
//! `Arc<Mutex<dyn MmioDevice>>` contract), so accesses to different devices through one window
//! are serialised.

use std::sync::RwLock;

use tandem_softmmu::{MmioDevice, PortDevice};

use super::bus::{PciBus, SharedPciDevice};
use super::config::{bar_mapping, BAR0, BAR_COUNT, COMMAND};
use super::device::{BarKind, PciDevice};

/// Where one BAR decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarPlacement {
    /// Slot of the function.
    pub slot: u8,
    /// BAR index.
    pub bar: u8,
    /// The BAR's kind (I/O: `address` is a port).
    pub kind: BarKind,
    /// First address decoded.
    pub address: u64,
    /// Size in bytes.
    pub size: u64,
}

impl BarPlacement {
    fn is_io(&self) -> bool {
        self.kind == BarKind::Io
    }

    /// The offset in the BAR of `[addr, addr + len)`, if it lies wholly inside.
    fn offset_of(&self, addr: u64, len: u64) -> Option<u64> {
        let off = addr.checked_sub(self.address)?;
        (len > 0 && off < self.size && len <= self.size - off).then_some(off)
    }
}

struct Entry {
    placement: BarPlacement,
    device: SharedPciDevice,
}

/// The placements of every decoding BAR.
#[derive(Default)]
pub(super) struct DecodeTable {
    entries: RwLock<Vec<Entry>>,
}

/// The BARs `dev` in `slot` decodes now.
fn decode_device(slot: u8, dev: &mut dyn PciDevice) -> Vec<BarPlacement> {
    let mut cmd = [0u8; 2];
    dev.config_read(COMMAND, &mut cmd);
    let cmd = u16::from_le_bytes(cmd);
    let bars = dev.bars();
    let mut reg = |index: u8| {
        let mut v = [0u8; 4];
        dev.config_read(BAR0 + 4 * u16::from(index), &mut v);
        u64::from(u32::from_le_bytes(v))
    };
    let mut out = Vec::new();
    for (bar, kind, size) in bars {
        let wide = kind.registers() == 2;
        if usize::from(bar) + kind.registers() > BAR_COUNT {
            continue;
        }
        let raw = if wide {
            reg(bar) | reg(bar + 1) << 32
        } else {
            reg(bar)
        };
        if let Some(address) = bar_mapping(kind, size, raw, cmd) {
            out.push(BarPlacement {
                slot,
                bar,
                kind,
                address,
                size,
            });
        }
    }
    out
}

impl DecodeTable {
    /// Re-reads `slot`'s BARs; true if its placements changed.
    pub(super) fn refresh_slot(&self, slot: u8, device: Option<&SharedPciDevice>) -> bool {
        // The table stays locked while the device is read, so two refreshes of one slot
        // cannot store an older reading over a newer one. (Lock order: table, then device;
        // nothing takes the table while holding a device.)
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let now = match device {
            Some(d) => decode_device(slot, &mut *d.lock().unwrap_or_else(|e| e.into_inner())),
            None => Vec::new(),
        };
        let before: Vec<BarPlacement> = entries
            .iter()
            .filter(|e| e.placement.slot == slot)
            .map(|e| e.placement)
            .collect();
        if before == now {
            return false;
        }
        entries.retain(|e| e.placement.slot != slot);
        if let Some(device) = device {
            entries.extend(now.into_iter().map(|placement| Entry {
                placement,
                device: device.clone(),
            }));
        }
        entries.sort_by_key(|e| (e.placement.slot, e.placement.bar));
        true
    }

    pub(super) fn placements(&self) -> Vec<BarPlacement> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.iter().map(|e| e.placement).collect()
    }

    /// The device, BAR and offset an access of `len` bytes at `addr` reaches.
    fn route(&self, io: bool, addr: u64, len: u64) -> Option<(SharedPciDevice, u8, u64)> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.iter().find_map(|e| {
            let p = &e.placement;
            (p.is_io() == io)
                .then(|| p.offset_of(addr, len))
                .flatten()
                .map(|off| (e.device.clone(), p.bar, off))
        })
    }
}

impl PciBus {
    fn window_read(&self, io: bool, addr: u64, data: &mut [u8]) {
        match self.state.decode.route(io, addr, data.len() as u64) {
            Some((dev, bar, off)) => dev
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .bar_read(bar, off, data),
            None => data.fill(0xff),
        }
    }

    fn window_write(&self, io: bool, addr: u64, data: &[u8]) {
        if let Some((dev, bar, off)) = self.state.decode.route(io, addr, data.len() as u64) {
            dev.lock()
                .unwrap_or_else(|e| e.into_inner())
                .bar_write(bar, off, data);
        }
    }
}

/// The MMIO window: routes each access to the memory BAR decoding it.
pub struct PciMmioWindow {
    bus: PciBus,
    base: u64,
}

impl PciMmioWindow {
    pub(super) fn new(bus: PciBus) -> Self {
        let base = bus.config().mmio.base;
        Self { bus, base }
    }
}

impl MmioDevice for PciMmioWindow {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match self.base.checked_add(offset) {
            Some(addr) => self.bus.window_read(false, addr, data),
            None => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let Some(addr) = self.base.checked_add(offset) {
            self.bus.window_write(false, addr, data);
        }
    }
}

/// The I/O window: routes each access to the I/O BAR decoding it.
pub struct PciIoWindow {
    bus: PciBus,
    base: u64,
}

impl PciIoWindow {
    pub(super) fn new(bus: PciBus) -> Self {
        let base = bus.config().io.base;
        Self { bus, base }
    }
}

impl PortDevice for PciIoWindow {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        self.bus
            .window_read(true, self.base + u64::from(offset), data);
    }

    fn write(&mut self, offset: u16, data: &[u8]) {
        self.bus
            .window_write(true, self.base + u64::from(offset), data);
    }
}
