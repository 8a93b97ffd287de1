//! virtio-blk (virtio 1.x §5.2): one request queue over a [`BlockDriver`].
//!
//! Offers VERSION_1, INDIRECT_DESC, EVENT_IDX, SEG_MAX, BLK_SIZE (512-byte logical blocks),
//! TOPOLOGY (4 KiB physical blocks), FLUSH, and for writable disks DISCARD and WRITE_ZEROES;
//! a read-only disk offers RO instead. Requests are served synchronously when the driver
//! notifies ([`request::process_queue`]).
//!
//! Warts: one queue (no MQ), no CONFIG_WCE (the cache is always write-back, and FLUSH is how
//! the guest makes writes durable), no geometry, no SECURE_ERASE or GET_LIFETIME (UNSUPP); a
//! disk whose size is not a multiple of 512 loses its last partial sector.

pub mod config;
mod iobuf;
pub mod request;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use tandem_block::BlockDriver;

use self::config::{feature, BlkConfig, SECTOR_SIZE};
use self::request::{BlkDisk, SERIAL_LEN};
use super::device::VirtioInterrupt;
use super::device::{read_config_bytes, Activation, DeviceError, GuestMemory, VirtioDevice};
use super::features::{RING_EVENT_IDX, RING_INDIRECT_DESC, VERSION_1};
use super::queue::Queue;

/// Entries of the request queue (as QEMU's default).
pub const QUEUE_SIZE: u16 = 256;
/// Most sectors one discard or write-zeroes segment may cover (32 MiB: the work is done on
/// the notifying thread).
const MAX_DWZ_SECTORS: u32 = 0x1_0000;

/// What the device runs on once the driver set DRIVER_OK.
struct Active {
    memory: GuestMemory,
    queue: Queue,
    interrupt: Arc<dyn VirtioInterrupt>,
}

/// A virtio-blk device.
pub struct VirtioBlk {
    disk: BlkDisk,
    features: u64,
    active: Option<Active>,
}

impl VirtioBlk {
    /// A device serving `driver`; `serial` is GET_ID's answer (truncated to 20 bytes), and a
    /// read-only image or `read_only` makes the device read-only.
    pub fn new(driver: Box<dyn BlockDriver>, serial: &str, read_only: bool) -> Self {
        let read_only = read_only || driver.is_read_only();
        let mut id = [0u8; SERIAL_LEN];
        let n = serial.len().min(SERIAL_LEN);
        id[..n].copy_from_slice(&serial.as_bytes()[..n]);
        let config = BlkConfig {
            capacity: driver.size() / SECTOR_SIZE,
            // Header and status take two descriptors of a direct chain.
            seg_max: u32::from(QUEUE_SIZE) - 2,
            blk_size: SECTOR_SIZE as u32,
            physical_block_exp: 3,
            max_discard_sectors: MAX_DWZ_SECTORS,
            max_discard_seg: 32,
            discard_sector_alignment: 8,
            max_write_zeroes_sectors: MAX_DWZ_SECTORS,
            max_write_zeroes_seg: 1,
            write_zeroes_may_unmap: true,
        };
        let mut features = VERSION_1
            | RING_INDIRECT_DESC
            | RING_EVENT_IDX
            | feature::SEG_MAX
            | feature::BLK_SIZE
            | feature::TOPOLOGY
            | feature::FLUSH;
        features |= if read_only {
            feature::RO
        } else {
            feature::DISCARD | feature::WRITE_ZEROES
        };
        Self {
            disk: BlkDisk::new(driver, id, read_only, config),
            features,
            active: None,
        }
    }

    /// Whether the device refuses writes.
    pub fn is_read_only(&self) -> bool {
        self.disk.read_only
    }
}

impl VirtioDevice for VirtioBlk {
    fn device_type(&self) -> u32 {
        super::device_type::BLOCK
    }

    fn features(&self) -> u64 {
        self.features
    }

    fn queue_max_sizes(&self) -> Vec<u16> {
        vec![QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.disk.config.to_bytes(), offset, data);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // Every field is read-only without CONFIG_WCE.
    }

    fn activate(&mut self, activation: Activation) -> Result<(), DeviceError> {
        let Some(Some(queue)) = activation.queues.into_iter().next() else {
            return Err(DeviceError::QueueNotEnabled(0));
        };
        self.active = Some(Active {
            memory: activation.memory,
            queue,
            interrupt: activation.interrupt,
        });
        Ok(())
    }

    fn queue_notify(&mut self, index: u16) -> Result<(), DeviceError> {
        let Some(active) = self.active.as_mut() else {
            // A notification before DRIVER_OK: nothing to serve yet.
            return Ok(());
        };
        if index != 0 {
            return Ok(());
        }
        let mem = active.memory.get()?;
        let notify = request::process_queue(&mut active.queue, &mem, &mut self.disk)
            .map_err(|source| DeviceError::Queue { index, source })?;
        if notify {
            active.interrupt.signal_used_queue(index);
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.active = None;
    }
}
