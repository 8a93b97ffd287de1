//! The modern virtio-pci transport (virtio 1.x §4.1): a PCI function that carries any
//! [`VirtioDevice`].
//!
//! Identity: vendor 0x1af4, device 0x1040 + the virtio id (virtio-blk 0x1042), revision 1,
//! subsystem 0x1af4:0x1100 (as QEMU), the class of the device type. Registers live in one
//! 64-bit memory BAR ([`REGS_BAR`], 16 KiB), which vendor-specific capabilities describe:
//!
//! | offset | region | capability cfg_type |
//! | --- | --- | --- |
//! | 0x0000 | common configuration ([`common_cfg`]) | 1 |
//! | 0x1000 | ISR status (read clears, deasserts INTx) | 3 |
//! | 0x2000 | device configuration | 4 |
//! | 0x3000 | notifications: queue `q` at `q * 4` | 2, multiplier 4 |
//!
//! With an [`MsiSink`], an MSI-X capability follows, its table at 0 and PBA at 0x800 of a
//! 4 KiB 32-bit BAR ([`MSIX_BAR`]) with one vector per queue plus one for configuration
//! changes; without one, or while the guest leaves MSI-X disabled, interrupts are INTx (pin
//! INTA) with the ISR ([`interrupt`]).
//!
//! A notification reaches the device only after DRIVER_OK, with bus mastering on and the device
//! not broken. A device error (a malformed ring) sets DEVICE_NEEDS_RESET, signals a
//! configuration change, and is kept for the board to report ([`VirtioPci::take_error`]): hw
//! has no logger.
//!
//! Warts: no legacy interface, no PCI_CFG capability (type 5), no NOTIFICATION_DATA or
//! RING_RESET; queue_notify_data and queue_reset (virtio 1.2) are outside the common region
//! and read as zero.

pub mod common_cfg;
pub mod interrupt;

#[cfg(test)]
mod bus_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use tandem_softmmu::{Doorbell, IrqLine, MsiSink};
use thiserror::Error;

use self::interrupt::PciInterrupt;
use super::device::{DeviceError, GuestMemory, VirtioDevice, VirtioInterrupt};
use super::{device_type, status};
use crate::pci::config::{ConfigSpace, PciIds};
use crate::pci::{BarKind, ConfigError, MsiX, MsixError, PciDevice};

/// PCI vendor ID of virtio devices.
pub const VIRTIO_PCI_VENDOR: u16 = 0x1af4;
/// Modern device IDs are this plus the virtio device id.
pub const VIRTIO_PCI_DEVICE_BASE: u16 = 0x1040;
/// Subsystem ID (QEMU's).
pub const VIRTIO_PCI_SUBSYSTEM: u16 = 0x1100;

/// The BAR holding the virtio registers.
pub const REGS_BAR: u8 = 4;
/// Its size.
pub const REGS_BAR_SIZE: u64 = 0x4000;
/// Common configuration offset in [`REGS_BAR`].
pub const COMMON_OFFSET: u64 = 0x0000;
/// ISR status offset.
pub const ISR_OFFSET: u64 = 0x1000;
/// Device configuration offset.
pub const DEVICE_OFFSET: u64 = 0x2000;
/// Notification area offset.
pub const NOTIFY_OFFSET: u64 = 0x3000;
/// Bytes between two queues' notification addresses.
pub const NOTIFY_OFF_MULTIPLIER: u32 = 4;
/// Length of each region.
const REGION_LEN: u64 = 0x1000;
/// The BAR holding the MSI-X table (at 0) and PBA (at [`MSIX_PBA_OFFSET`]).
pub const MSIX_BAR: u8 = 1;
/// The PBA's offset in [`MSIX_BAR`].
pub const MSIX_PBA_OFFSET: u32 = 0x800;

/// Vendor-specific capability ID.
const CAP_VENDOR: u8 = 0x09;
const CFG_COMMON: u8 = 1;
const CFG_NOTIFY: u8 = 2;
const CFG_ISR: u8 = 3;
const CFG_DEVICE: u8 = 4;

/// Why the function cannot be built.
#[derive(Debug, Error)]
pub enum VirtioPciError {
    /// The configuration space layout.
    #[error("virtio-pci configuration space")]
    Config(#[from] ConfigError),
    /// The MSI-X capability.
    #[error("virtio-pci MSI-X")]
    Msix(#[from] MsixError),
    /// More queues than MSI-X vectors can serve.
    #[error("{0} queues: virtio-pci serves at most 2047 with MSI-X")]
    TooManyQueues(usize),
}

/// PCI class code of a virtio device type.
fn class_of(device_type: u32) -> u32 {
    match device_type {
        device_type::BLOCK => 0x01_8000,
        device_type::NET => 0x02_0000,
        device_type::CONSOLE => 0x07_8000,
        _ => 0xff_0000,
    }
}

/// A virtio device on the PCI bus.
pub struct VirtioPci {
    config: ConfigSpace,
    device: Box<dyn VirtioDevice>,
    memory: GuestMemory,
    interrupt: Arc<PciInterrupt>,
    /// Maximum size of each queue, as the device reports it.
    queue_max: Vec<u16>,
    common: common_cfg::CommonConfig,
    /// Per queue, the doorbell a notification rings instead of being served here.
    doorbells: Vec<Option<Doorbell>>,
    last_error: Option<DeviceError>,
}

impl VirtioPci {
    /// Puts `device` on a PCI function; `memory` is the guest memory its queues live in
    /// (connected by the board once the address space is built), `msi` enables MSI-X.
    pub fn new(
        device: Box<dyn VirtioDevice>,
        memory: GuestMemory,
        msi: Option<Arc<dyn MsiSink>>,
    ) -> Result<Self, VirtioPciError> {
        let kind = device.device_type();
        let queue_max = device.queue_max_sizes();
        let mut config = ConfigSpace::new(PciIds {
            vendor: VIRTIO_PCI_VENDOR,
            // Device types are small numbers; an absurd one still gives some ID.
            device: VIRTIO_PCI_DEVICE_BASE.wrapping_add(kind as u16),
            class: class_of(kind),
            revision: 1,
            subsystem_vendor: VIRTIO_PCI_VENDOR,
            subsystem: VIRTIO_PCI_SUBSYSTEM,
        });
        config.set_interrupt_pin(1);
        config.add_bar(
            REGS_BAR,
            BarKind::Memory64 {
                prefetchable: false,
            },
            REGS_BAR_SIZE,
        )?;
        let caps = [
            (CFG_COMMON, COMMON_OFFSET, common_cfg::COMMON_LEN),
            (CFG_NOTIFY, NOTIFY_OFFSET, REGION_LEN),
            (CFG_ISR, ISR_OFFSET, 1),
            (CFG_DEVICE, DEVICE_OFFSET, REGION_LEN),
        ];
        for (cfg_type, offset, len) in caps {
            add_virtio_cap(&mut config, cfg_type, offset, len)?;
        }
        let msix = match msi {
            Some(sink) => {
                let vectors = u16::try_from(queue_max.len() + 1)
                    .ok()
                    .filter(|&v| v <= crate::pci::msix::MSIX_MAX_VECTORS)
                    .ok_or(VirtioPciError::TooManyQueues(queue_max.len()))?;
                let mut msix = MsiX::new(MSIX_BAR, 0, MSIX_PBA_OFFSET, vectors, sink)?;
                msix.add_capability(&mut config)?;
                config.add_bar(MSIX_BAR, BarKind::Memory32, msix.bar_size().max(0x1000))?;
                Some(msix)
            }
            None => None,
        };
        let interrupt = Arc::new(PciInterrupt::new(msix, queue_max.len()));
        Ok(Self {
            config,
            device,
            memory,
            interrupt,
            common: common_cfg::CommonConfig::new(&queue_max),
            doorbells: queue_max.iter().map(|_| None).collect(),
            queue_max,
            last_error: None,
        })
    }

    /// Where the driver writes to notify `queue`: (BAR index, offset in it), so an engine can
    /// turn those writes into events (KVM ioeventfds) and call [`VirtioPci::notify_queue`].
    pub fn notify_address(&self, queue: u16) -> (u8, u64) {
        (
            REGS_BAR,
            NOTIFY_OFFSET + u64::from(queue) * u64::from(NOTIFY_OFF_MULTIPLIER),
        )
    }

    /// Number of queues the device has.
    pub fn num_queues(&self) -> u16 {
        // Devices have a handful of queues; clamp rather than wrap for an absurd one.
        u16::try_from(self.queue_max.len()).unwrap_or(u16::MAX)
    }

    /// Makes the driver's notifications of `queue` ring `bell` instead of being served on the
    /// notifying vCPU; whoever waits on the bell then calls [`VirtioPci::notify_queue`]. (Under
    /// KVM the same bell is an ioeventfd at [`VirtioPci::notify_address`], and those writes
    /// never reach the device model.) False if the device has no such queue.
    pub fn set_doorbell(&mut self, queue: u16, bell: Doorbell) -> bool {
        match self.doorbells.get_mut(usize::from(queue)) {
            Some(slot) => {
                *slot = Some(bell);
                true
            }
            None => false,
        }
    }

    /// Serves the driver's notification of `queue`: processes its available buffers. Called
    /// for a write to the notification address, or by the thread a doorbell woke.
    pub fn notify_queue(&mut self, queue: u16) {
        let st = self.common.status;
        let running = st & status::DRIVER_OK != 0 && st & status::DEVICE_NEEDS_RESET == 0;
        if !running || !self.config.bus_master() || queue >= self.num_queues() {
            return;
        }
        if let Err(e) = self.device.queue_notify(queue) {
            self.fail(e);
        }
    }

    /// The device status register (§2.1).
    pub fn device_status(&self) -> u8 {
        self.common.status
    }

    /// The last device error since it was last taken (the board logs it): set when the
    /// device entered DEVICE_NEEDS_RESET.
    pub fn take_error(&mut self) -> Option<DeviceError> {
        self.last_error.take()
    }

    /// The device broke: DEVICE_NEEDS_RESET, and a configuration-change interrupt if the
    /// driver is running (§2.1.2).
    fn fail(&mut self, e: DeviceError) {
        self.common.status |= status::DEVICE_NEEDS_RESET;
        self.last_error = Some(e);
        if self.common.status & status::DRIVER_OK != 0 {
            self.interrupt.signal_config_change();
        }
    }

    /// Device reset (status 0, or a machine reset): the device drops its queues, the
    /// transport forgets the negotiation and queue setup.
    fn reset_device(&mut self) {
        self.device.reset();
        self.common = common_cfg::CommonConfig::new(&self.queue_max);
        self.interrupt.reset();
    }

    fn regs_read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let region = offset / REGION_LEN * REGION_LEN;
        let off = offset - region;
        match region {
            COMMON_OFFSET => self.common_read(off, data),
            ISR_OFFSET if off == 0 => {
                if let Some(b) = data.first_mut() {
                    *b = self.interrupt.read_isr();
                }
            }
            DEVICE_OFFSET => self.device.read_config(off, data),
            // The notification area and the rest of the ISR region read as zero.
            _ => {}
        }
    }

    fn regs_write(&mut self, offset: u64, data: &[u8]) {
        let region = offset / REGION_LEN * REGION_LEN;
        let off = offset - region;
        match region {
            COMMON_OFFSET => self.common_write(off, data),
            DEVICE_OFFSET => self.device.write_config(off, data),
            NOTIFY_OFFSET => {
                // Without NOTIFICATION_DATA the value written is the queue index; the address
                // already says which queue, and is what an ioeventfd would see.
                let Ok(q) = u16::try_from(off / u64::from(NOTIFY_OFF_MULTIPLIER)) else {
                    return;
                };
                match self.doorbells.get(usize::from(q)) {
                    Some(Some(bell)) => bell.ring(),
                    _ => self.notify_queue(q),
                }
            }
            _ => {}
        }
    }
}

/// Appends a `virtio_pci_cap` (§4.1.4): cap_vndr, cap_next, cap_len, cfg_type, bar, id,
/// padding, offset, length, and for NOTIFY the notify_off_multiplier.
fn add_virtio_cap(
    config: &mut ConfigSpace,
    cfg_type: u8,
    offset: u64,
    len: u64,
) -> Result<(), ConfigError> {
    let cap_len = if cfg_type == CFG_NOTIFY { 20 } else { 16 };
    let at = config.add_capability(CAP_VENDOR, cap_len)?;
    config.set(at + 2, &[cap_len, cfg_type, REGS_BAR, 0]);
    // The regions lie in a 16 KiB BAR.
    config.set_u32(at + 8, offset as u32);
    config.set_u32(at + 12, len as u32);
    if cfg_type == CFG_NOTIFY {
        config.set_u32(at + 16, NOTIFY_OFF_MULTIPLIER);
    }
    Ok(())
}

impl PciDevice for VirtioPci {
    fn config_read(&mut self, offset: u16, data: &mut [u8]) {
        // INTx changes under the interrupt's own lock; the status bit is brought up to date
        // when the guest looks.
        self.config
            .set_interrupt_status(self.interrupt.intx_asserted());
        self.config.read(offset, data);
    }

    fn config_write(&mut self, offset: u16, data: &[u8]) {
        self.config.write(offset, data);
        let config = &self.config;
        self.interrupt.with_msix(|m| m.config_written(config));
        self.interrupt
            .set_intx_disabled(self.config.intx_disabled());
    }

    fn bars(&self) -> Vec<(u8, BarKind, u64)> {
        self.config.bars()
    }

    fn bar_read(&mut self, bar: u8, offset: u64, data: &mut [u8]) {
        match bar {
            REGS_BAR if offset < REGS_BAR_SIZE => self.regs_read(offset, data),
            MSIX_BAR => {
                let served = self.interrupt.with_msix(|m| m.bar_read(offset, data));
                if served != Some(true) {
                    data.fill(0);
                }
            }
            _ => data.fill(0),
        }
    }

    fn bar_write(&mut self, bar: u8, offset: u64, data: &[u8]) {
        match bar {
            REGS_BAR if offset < REGS_BAR_SIZE => self.regs_write(offset, data),
            MSIX_BAR => {
                self.interrupt.with_msix(|m| m.bar_write(offset, data));
            }
            _ => {}
        }
    }

    fn connect_intx(&mut self, line: IrqLine) {
        self.interrupt.connect_intx(line);
    }

    fn reset(&mut self) {
        self.reset_device();
        self.config.reset();
        self.interrupt.with_msix(MsiX::reset);
        self.interrupt
            .set_intx_disabled(self.config.intx_disabled());
    }
}
