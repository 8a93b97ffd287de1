//! PCI bus 0: 32 slots (function 0 of each), the host bridge in slot 0, configuration access
//! by slot, BAR assignment, INTx wiring and reset.
//!
//! The bus is a cheap handle ([`PciBus`] is `Clone`) on shared state, so the three faces the
//! board maps — the configuration ports ([`super::config_ports`]) and the MMIO and I/O windows
//! ([`super::decode`]) — and the board itself all reach the same devices. Devices sit behind
//! their own mutex ([`SharedPciDevice`]); the bus never holds one of its locks while it calls
//! into a device, so a device's lock is the only one held during its callbacks.
//!
//! Known warts: function 0 only (no multifunction devices); one bus (no bridges); a device that
//! changes its own BAR or command registers outside a guest config write (a device-internal
//! reset) must be followed by [`PciBus::refresh`].

use std::sync::{Arc, Mutex, RwLock};

use tandem_softmmu::{AddressSpaceBuilder, IrqLine, IrqSink, MapError, PortBus};
use thiserror::Error;

use super::bar_alloc::{allocate, BarRequest};
use super::config::{
    touches, BAR0, BAR_COUNT, COMMAND, COMMAND_BUS_MASTER, COMMAND_IO, COMMAND_MEMORY,
    INTERRUPT_LINE, INTERRUPT_PIN,
};
use super::config_ports::{PciConfigPorts, CONFIG_PORTS_BASE, CONFIG_PORTS_LEN};
use super::decode::{BarPlacement, DecodeTable, PciIoWindow, PciMmioWindow};
use super::device::{BarKind, PciDevice};
use super::host_bridge::I440fxHostBridge;
use super::intx::{IntxRouter, IntxWire, PciIrqRouting};

/// Slots on the bus.
pub const PCI_SLOTS: u8 = 32;
/// Slot of the host bridge.
pub const HOST_BRIDGE_SLOT: u8 = 0;

/// A PCI function shared between the bus and its owner.
pub type SharedPciDevice = Arc<Mutex<dyn PciDevice>>;

/// A range of guest-physical addresses or ports the bus decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PciWindow {
    /// First address.
    pub base: u64,
    /// Length in bytes (ports).
    pub len: u64,
}

impl PciWindow {
    /// The last address in the window (`base` for an empty one, which the bus refuses).
    pub fn last(&self) -> u64 {
        self.base.saturating_add(self.len.saturating_sub(1))
    }

    /// Whether `[addr, addr + len)` lies inside the window.
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        len > 0
            && addr >= self.base
            && addr
                .checked_add(len - 1)
                .is_some_and(|last| last <= self.last())
    }
}

/// The PC board's MMIO window: 0xE0000000 up to the I/O APIC at 0xFEC00000 (the local APICs
/// at 0xFEE00000 stay outside too).
pub const PC_MMIO_WINDOW: PciWindow = PciWindow {
    base: 0xe000_0000,
    len: 0xfec0_0000 - 0xe000_0000,
};
/// The PC board's I/O window: ports 0xC000-0xFFFF, as SeaBIOS uses.
pub const PC_IO_WINDOW: PciWindow = PciWindow {
    base: 0xc000,
    len: 0x4000,
};

/// How the board lays out the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciBusConfig {
    /// Where memory BARs are placed and decoded.
    pub mmio: PciWindow,
    /// Where I/O BARs are placed and decoded.
    pub io: PciWindow,
    /// The GSIs of the four INTx lines.
    pub routing: PciIrqRouting,
    /// How INTx levels reach the interrupt controller.
    pub wire: IntxWire,
}

impl PciBusConfig {
    /// The PC windows with `routing`, lines driven as logical levels.
    pub fn pc(routing: PciIrqRouting) -> Self {
        Self {
            mmio: PC_MMIO_WINDOW,
            io: PC_IO_WINDOW,
            routing,
            wire: IntxWire::Logical,
        }
    }
}

/// Why the bus refused a request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PciError {
    /// Slots are 0-31.
    #[error("PCI slot {0} does not exist (0-31)")]
    BadSlot(u8),
    /// The slot holds a device already.
    #[error("PCI slot {0} is taken")]
    SlotTaken(u8),
    /// All 32 slots hold devices.
    #[error("no free PCI slot")]
    NoFreeSlot,
    /// A device declared a BAR that cannot exist.
    #[error("PCI slot {slot} BAR {bar} of {size:#x} bytes is not a valid BAR")]
    BadBar {
        /// Slot of the device.
        slot: u8,
        /// BAR index.
        bar: u8,
        /// Declared size.
        size: u64,
    },
    /// The BARs do not fit the window.
    #[error("no room for a {size:#x}-byte {space} BAR in the window {base:#x}+{len:#x}")]
    WindowFull {
        /// "memory" or "I/O".
        space: &'static str,
        /// Size of the BAR that did not fit.
        size: u64,
        /// The window's base.
        base: u64,
        /// Its length.
        len: u64,
    },
    /// A window is empty, wraps, or (I/O) passes port 0xFFFF.
    #[error("PCI window {base:#x}+{len:#x} is empty or out of its address space")]
    BadWindow {
        /// The window's base.
        base: u64,
        /// Its length.
        len: u64,
    },
}

type PlacementListener = Box<dyn Fn(&[BarPlacement]) + Send + Sync>;

pub(super) struct BusState {
    pub(super) config: PciBusConfig,
    slots: RwLock<Vec<Option<SharedPciDevice>>>,
    intx: Arc<IntxRouter>,
    pub(super) decode: DecodeTable,
    listeners: Mutex<Vec<PlacementListener>>,
}

/// PCI bus 0.
#[derive(Clone)]
pub struct PciBus {
    pub(super) state: Arc<BusState>,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PciBus {
    /// A bus with the i440FX host bridge in slot 0, INTx lines driven on `irq`.
    pub fn new(config: PciBusConfig, irq: Arc<dyn IrqSink>) -> Result<Self, PciError> {
        for (w, top) in [(config.mmio, u64::MAX), (config.io, 0xffff)] {
            if w.len == 0 || w.base.checked_add(w.len - 1).is_none_or(|l| l > top) {
                return Err(PciError::BadWindow {
                    base: w.base,
                    len: w.len,
                });
            }
        }
        let bus = Self {
            state: Arc::new(BusState {
                config,
                slots: RwLock::new(vec![None; usize::from(PCI_SLOTS)]),
                intx: IntxRouter::new(irq, config.routing, config.wire),
                decode: DecodeTable::default(),
                listeners: Mutex::new(Vec::new()),
            }),
        };
        bus.add_at(
            HOST_BRIDGE_SLOT,
            Arc::new(Mutex::new(I440fxHostBridge::new())),
        )?;
        Ok(bus)
    }

    /// The layout the bus was built with.
    pub fn config(&self) -> PciBusConfig {
        self.state.config
    }

    /// Adds `device` in the lowest free slot and returns it.
    pub fn add(&self, device: SharedPciDevice) -> Result<u8, PciError> {
        let slot = {
            let slots = self.state.slots.read().unwrap_or_else(|e| e.into_inner());
            (0..PCI_SLOTS)
                .find(|&s| slots[usize::from(s)].is_none())
                .ok_or(PciError::NoFreeSlot)?
        };
        self.add_at(slot, device)?;
        Ok(slot)
    }

    /// Adds `device` in `slot`: its interrupt line register is set to the GSI its pin is
    /// routed to and it receives that line ([`PciDevice::connect_intx`]).
    pub fn add_at(&self, slot: u8, device: SharedPciDevice) -> Result<(), PciError> {
        if slot >= PCI_SLOTS {
            return Err(PciError::BadSlot(slot));
        }
        {
            let mut slots = self.state.slots.write().unwrap_or_else(|e| e.into_inner());
            let s = &mut slots[usize::from(slot)];
            if s.is_some() {
                return Err(PciError::SlotTaken(slot));
            }
            *s = Some(device.clone());
        }
        {
            let mut d = lock(&device);
            if let Some(line) = self.wire_intx(slot, &mut *d) {
                d.connect_intx(line);
            }
        }
        self.refresh_slot(slot);
        Ok(())
    }

    /// Writes the interrupt line register of the function in `slot` from its pin; returns the
    /// line the pin drives.
    fn wire_intx(&self, slot: u8, dev: &mut dyn PciDevice) -> Option<IrqLine> {
        let mut pin = [0u8];
        dev.config_read(INTERRUPT_PIN, &mut pin);
        let gsi = self.state.config.routing.gsi(slot, pin[0]);
        let reg = gsi.map_or(0xff, PciIrqRouting::interrupt_line_register);
        dev.config_write(INTERRUPT_LINE, &[reg]);
        self.state.intx.line(slot, pin[0])
    }

    /// The device in `slot`.
    pub fn device(&self, slot: u8) -> Option<SharedPciDevice> {
        let slots = self.state.slots.read().unwrap_or_else(|e| e.into_inner());
        slots.get(usize::from(slot))?.clone()
    }

    fn devices(&self) -> Vec<(u8, SharedPciDevice)> {
        let slots = self.state.slots.read().unwrap_or_else(|e| e.into_inner());
        (0u8..)
            .zip(slots.iter())
            .filter_map(|(s, d)| Some((s, d.clone()?)))
            .collect()
    }

    /// The INTx line of `slot`'s function, as routed (None: empty slot or no pin).
    pub fn intx_line(&self, slot: u8) -> Option<IrqLine> {
        let dev = self.device(slot)?;
        let mut pin = [0u8];
        lock(&dev).config_read(INTERRUPT_PIN, &mut pin);
        self.state.intx.line(slot, pin[0])
    }

    /// The router behind every function's INTx line.
    pub fn intx_router(&self) -> &Arc<IntxRouter> {
        &self.state.intx
    }

    /// A configuration read of function 0 in `slot`; an empty slot reads all-ones.
    pub fn config_read(&self, slot: u8, offset: u16, data: &mut [u8]) {
        match self.device(slot) {
            Some(dev) => lock(&dev).config_read(offset, data),
            None => data.fill(0xff),
        }
    }

    /// A configuration write to function 0 in `slot`; one reaching the command register or a
    /// BAR updates the windows' routing.
    pub fn config_write(&self, slot: u8, offset: u16, data: &[u8]) {
        let Some(dev) = self.device(slot) else { return };
        lock(&dev).config_write(offset, data);
        if touches(offset, data.len(), COMMAND, 2) || touches(offset, data.len(), BAR0, 24) {
            self.refresh_slot(slot);
        }
    }

    /// Places every BAR of every function in the windows (see [`super::bar_alloc`]), writes
    /// the addresses, and turns on memory and I/O decoding and bus mastering for each function
    /// with BARs, as firmware does before the OS starts.
    pub fn assign_bars(&self) -> Result<(), PciError> {
        let devices = self.devices();
        let mut requests = Vec::new();
        for (slot, dev) in &devices {
            for (bar, kind, size) in lock(dev).bars() {
                if usize::from(bar) + kind.registers() > BAR_COUNT || !size.is_power_of_two() {
                    return Err(PciError::BadBar {
                        slot: *slot,
                        bar,
                        size,
                    });
                }
                requests.push(BarRequest {
                    slot: *slot,
                    bar,
                    kind,
                    size,
                });
            }
        }
        let config = self.state.config;
        let addrs = allocate(&requests, config.mmio, config.io)?;
        for (slot, dev) in &devices {
            let mut d = lock(dev);
            let mut cmd = [0u8; 2];
            d.config_read(COMMAND, &mut cmd);
            let mut cmd = u16::from_le_bytes(cmd);
            // Decoding stays off while the BARs move, as firmware leaves it.
            d.config_write(
                COMMAND,
                &(cmd & !(COMMAND_IO | COMMAND_MEMORY)).to_le_bytes(),
            );
            let mut any = false;
            for (r, addr) in requests.iter().zip(&addrs).filter(|(r, _)| r.slot == *slot) {
                let reg = BAR0 + 4 * u16::from(r.bar);
                d.config_write(reg, &(*addr as u32).to_le_bytes());
                cmd |= match r.kind {
                    BarKind::Io => COMMAND_IO,
                    BarKind::Memory32 => COMMAND_MEMORY,
                    BarKind::Memory64 { .. } => {
                        d.config_write(reg + 4, &((addr >> 32) as u32).to_le_bytes());
                        COMMAND_MEMORY
                    }
                };
                any = true;
            }
            if any {
                cmd |= COMMAND_BUS_MASTER;
            }
            d.config_write(COMMAND, &cmd.to_le_bytes());
        }
        self.refresh();
        Ok(())
    }

    /// Re-reads every function's BARs and command register into the windows' routing.
    pub fn refresh(&self) {
        for slot in 0..PCI_SLOTS {
            self.refresh_slot(slot);
        }
    }

    fn refresh_slot(&self, slot: u8) {
        let device = self.device(slot);
        let changed = self.state.decode.refresh_slot(slot, device.as_ref());
        if changed {
            let now = self.placements();
            for listener in lock(&self.state.listeners).iter() {
                listener(&now);
            }
        }
    }

    /// Where every BAR decodes now (those a function does not decode are absent), in (slot,
    /// BAR) order: for an engine that registers ioeventfds at notify addresses.
    pub fn placements(&self) -> Vec<BarPlacement> {
        self.state.decode.placements()
    }

    /// Calls `listener` with the new placements whenever a BAR starts or stops decoding or
    /// moves (a guest config write, [`PciBus::assign_bars`], a reset). It runs on the thread
    /// that made the change and must not register listeners itself.
    pub fn on_placement_change(&self, listener: impl Fn(&[BarPlacement]) + Send + Sync + 'static) {
        lock(&self.state.listeners).push(Box::new(listener));
    }

    /// A machine reset: every function back to power-on, INTx lines idle, interrupt line
    /// registers and BARs assigned again. Call it after the interrupt controllers' own reset,
    /// so the idle levels reach the reset controller.
    pub fn reset(&self) -> Result<(), PciError> {
        for (slot, dev) in self.devices() {
            let mut d = lock(&dev);
            d.reset();
            self.wire_intx(slot, &mut *d);
        }
        self.state.intx.reset();
        self.assign_bars()
    }

    /// The configuration-mechanism-#1 ports, for [`CONFIG_PORTS_BASE`] (8 ports).
    pub fn config_ports(&self) -> Arc<Mutex<PciConfigPorts>> {
        Arc::new(Mutex::new(PciConfigPorts::new(self.clone())))
    }

    /// The device decoding the whole MMIO window, for `config().mmio`.
    pub fn mmio_window(&self) -> Arc<Mutex<PciMmioWindow>> {
        Arc::new(Mutex::new(PciMmioWindow::new(self.clone())))
    }

    /// The device decoding the whole I/O window, for `config().io`.
    pub fn io_window(&self) -> Arc<Mutex<PciIoWindow>> {
        Arc::new(Mutex::new(PciIoWindow::new(self.clone())))
    }

    /// Maps the configuration ports, the I/O window and the MMIO window.
    pub fn register(
        &self,
        ports: &mut PortBus,
        map: &mut AddressSpaceBuilder,
    ) -> Result<(), MapError> {
        let config = self.state.config;
        ports.register(CONFIG_PORTS_BASE, CONFIG_PORTS_LEN, self.config_ports())?;
        // The window was checked to end at port 0xffff or below in `new`.
        let (io_base, io_len) = (config.io.base as u16, config.io.len as u16);
        if config.io.len > 0xffff {
            return Err(MapError::BadRange {
                base: config.io.base,
                len: config.io.len,
            });
        }
        ports.register(io_base, io_len, self.io_window())?;
        map.mmio(config.mmio.base, config.mmio.len, self.mmio_window())
    }
}

#[cfg(test)]
#[path = "bus_tests.rs"]
mod tests;
