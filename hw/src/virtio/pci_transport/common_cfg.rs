//! The common configuration structure (virtio 1.x §4.1.4.3): feature negotiation, the device
//! status state machine (§3.1) and queue setup, as registers at the start of the BAR.
//!
//! Accesses of any width at any offset are served byte by byte against the field layout, so
//! the two 32-bit halves Linux writes for each 64-bit queue address need no special case, and
//! no guest access can fail. Read-only fields ignore writes. A status write of 0 resets the
//! device; FEATURES_OK is refused (it reads back clear) unless the driver accepted only
//! offered features, VERSION_1 among them; DRIVER_OK validates the enabled queues and
//! activates the device, or sets DEVICE_NEEDS_RESET.

use super::interrupt::NO_VECTOR;
use super::VirtioPci;
use crate::virtio::device::{Activation, DeviceError};
use crate::virtio::features::{RING_EVENT_IDX, RING_INDIRECT_DESC, VERSION_1};
use crate::virtio::queue::{Queue, QueueLayout};
use crate::virtio::status;

/// Bytes of the common configuration (the virtio 1.0 layout, up to queue_device).
pub const COMMON_LEN: u64 = 0x38;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    DeviceFeatureSelect,
    DeviceFeature,
    DriverFeatureSelect,
    DriverFeature,
    MsixConfig,
    NumQueues,
    DeviceStatus,
    ConfigGeneration,
    QueueSelect,
    QueueSize,
    QueueMsixVector,
    QueueEnable,
    QueueNotifyOff,
    QueueDesc,
    QueueDriver,
    QueueDevice,
}

/// (offset, width, field), in order.
const FIELDS: [(u64, u64, Field); 16] = [
    (0x00, 4, Field::DeviceFeatureSelect),
    (0x04, 4, Field::DeviceFeature),
    (0x08, 4, Field::DriverFeatureSelect),
    (0x0c, 4, Field::DriverFeature),
    (0x10, 2, Field::MsixConfig),
    (0x12, 2, Field::NumQueues),
    (0x14, 1, Field::DeviceStatus),
    (0x15, 1, Field::ConfigGeneration),
    (0x16, 2, Field::QueueSelect),
    (0x18, 2, Field::QueueSize),
    (0x1a, 2, Field::QueueMsixVector),
    (0x1c, 2, Field::QueueEnable),
    (0x1e, 2, Field::QueueNotifyOff),
    (0x20, 8, Field::QueueDesc),
    (0x28, 8, Field::QueueDriver),
    (0x30, 8, Field::QueueDevice),
];

/// One queue as the driver configures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct QueueConfig {
    size: u16,
    enabled: bool,
    desc: u64,
    driver: u64,
    device: u64,
}

/// The transport's negotiation and queue state (everything a device reset clears).
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// Device status (§2.1).
    pub status: u8,
    device_feature_select: u32,
    driver_feature_select: u32,
    driver_features: u64,
    queue_select: u16,
    queues: Vec<QueueConfig>,
}

impl CommonConfig {
    /// The reset state for queues of these maximum sizes.
    pub fn new(queue_max: &[u16]) -> Self {
        Self {
            status: 0,
            device_feature_select: 0,
            driver_feature_select: 0,
            driver_features: 0,
            queue_select: 0,
            queues: queue_max
                .iter()
                .map(|&size| QueueConfig {
                    size,
                    enabled: false,
                    desc: 0,
                    driver: 0,
                    device: 0,
                })
                .collect(),
        }
    }

    /// The features the driver accepted so far.
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    fn selected(&self) -> Option<&QueueConfig> {
        self.queues.get(usize::from(self.queue_select))
    }

    /// The selected queue while the driver may still change it (not yet enabled).
    fn selected_unlocked(&mut self) -> Option<&mut QueueConfig> {
        self.queues
            .get_mut(usize::from(self.queue_select))
            .filter(|q| !q.enabled)
    }
}

/// Half `select` (0: bits 31-0, 1: bits 63-32) of a feature word; 0 beyond.
fn feature_half(features: u64, select: u32) -> u64 {
    match select {
        0 => features & 0xffff_ffff,
        1 => features >> 32,
        _ => 0,
    }
}

impl VirtioPci {
    fn field_value(&self, f: Field) -> u64 {
        let c = &self.common;
        let q = c.selected();
        match f {
            Field::DeviceFeatureSelect => u64::from(c.device_feature_select),
            Field::DeviceFeature => feature_half(self.device.features(), c.device_feature_select),
            Field::DriverFeatureSelect => u64::from(c.driver_feature_select),
            Field::DriverFeature => feature_half(c.driver_features, c.driver_feature_select),
            Field::MsixConfig => u64::from(self.interrupt.config_vector()),
            Field::NumQueues => u64::from(self.num_queues()),
            Field::DeviceStatus => u64::from(c.status),
            // The device configuration never changes under the driver.
            Field::ConfigGeneration => 0,
            Field::QueueSelect => u64::from(c.queue_select),
            Field::QueueSize => q.map_or(0, |q| u64::from(q.size)),
            Field::QueueMsixVector => match q {
                Some(_) => u64::from(self.interrupt.queue_vector(c.queue_select)),
                None => u64::from(NO_VECTOR),
            },
            Field::QueueEnable => q.map_or(0, |q| u64::from(q.enabled)),
            Field::QueueNotifyOff => q.map_or(0, |_| u64::from(c.queue_select)),
            Field::QueueDesc => q.map_or(0, |q| q.desc),
            Field::QueueDriver => q.map_or(0, |q| q.driver),
            Field::QueueDevice => q.map_or(0, |q| q.device),
        }
    }

    fn set_field(&mut self, f: Field, v: u64) {
        // Each field's value fits its width: truncation keeps exactly the bytes written.
        let c = &mut self.common;
        match f {
            Field::DeviceFeatureSelect => c.device_feature_select = v as u32,
            Field::DriverFeatureSelect => c.driver_feature_select = v as u32,
            Field::DriverFeature => {
                // Features are fixed once FEATURES_OK was accepted.
                if c.status & status::FEATURES_OK == 0 {
                    match c.driver_feature_select {
                        0 => c.driver_features = (c.driver_features & !0xffff_ffff) | v,
                        1 => c.driver_features = (c.driver_features & 0xffff_ffff) | v << 32,
                        _ => {}
                    }
                }
            }
            Field::MsixConfig => self.interrupt.set_config_vector(v as u16),
            Field::DeviceStatus => self.set_status(v as u8),
            Field::QueueSelect => c.queue_select = v as u16,
            Field::QueueSize => {
                if let Some(q) = c.selected_unlocked() {
                    q.size = v as u16;
                }
            }
            Field::QueueMsixVector => {
                if c.selected().is_some() {
                    self.interrupt.set_queue_vector(c.queue_select, v as u16);
                }
            }
            Field::QueueEnable => {
                // Enabling is one-way until a reset (§4.1.4.3.2), and only before DRIVER_OK:
                // the device takes its queues when it is activated.
                let running = c.status & status::DRIVER_OK != 0;
                if let Some(q) = c.selected_unlocked().filter(|_| v == 1 && !running) {
                    q.enabled = true;
                }
            }
            Field::QueueDesc => {
                if let Some(q) = c.selected_unlocked() {
                    q.desc = v;
                }
            }
            Field::QueueDriver => {
                if let Some(q) = c.selected_unlocked() {
                    q.driver = v;
                }
            }
            Field::QueueDevice => {
                if let Some(q) = c.selected_unlocked() {
                    q.device = v;
                }
            }
            Field::DeviceFeature
            | Field::NumQueues
            | Field::ConfigGeneration
            | Field::QueueNotifyOff => {}
        }
    }

    /// A driver read in the common configuration region.
    pub(super) fn common_read(&mut self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            let at = offset + i as u64;
            *b = match FIELDS.iter().find(|(o, w, _)| (*o..o + w).contains(&at)) {
                Some(&(o, _, f)) => (self.field_value(f) >> (8 * (at - o))) as u8,
                None => 0,
            };
        }
    }

    /// A driver write in the common configuration region: each field it touches is updated
    /// with the bytes written, in field order.
    pub(super) fn common_write(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        for (o, w, f) in FIELDS {
            if end <= o || o + w <= offset {
                continue;
            }
            let mut v = self.field_value(f);
            for at in offset.max(o)..end.min(o + w) {
                let shift = 8 * (at - o);
                v = (v & !(0xff << shift)) | u64::from(data[(at - offset) as usize]) << shift;
            }
            self.set_field(f, v);
        }
    }

    fn features_acceptable(&self) -> bool {
        let f = self.common.driver_features;
        f & !self.device.features() == 0 && f & VERSION_1 != 0
    }

    /// A device_status write (§3.1.1, §4.1.4.3.2).
    fn set_status(&mut self, value: u8) {
        if value == 0 {
            self.reset_device();
            return;
        }
        let old = self.common.status;
        let mut new = value | (old & status::DEVICE_NEEDS_RESET);
        if new & status::FEATURES_OK != 0
            && old & status::FEATURES_OK == 0
            && !self.features_acceptable()
        {
            new &= !status::FEATURES_OK;
        }
        self.common.status = new;
        if new & status::DRIVER_OK != 0 && old & status::DRIVER_OK == 0 {
            if let Err(e) = self.activate() {
                self.fail(e);
            }
        }
    }

    /// DRIVER_OK: hands the enabled, validated queues to the device.
    fn activate(&mut self) -> Result<(), DeviceError> {
        if self.common.status & status::FEATURES_OK == 0 {
            return Err(DeviceError::NotNegotiated);
        }
        let mem = self.memory.get()?;
        let features = self.common.driver_features;
        let event_idx = features & RING_EVENT_IDX != 0;
        let indirect = features & RING_INDIRECT_DESC != 0;
        let mut queues = Vec::with_capacity(self.common.queues.len());
        for (index, (q, &max)) in (0u16..).zip(self.common.queues.iter().zip(&self.queue_max)) {
            if !q.enabled {
                queues.push(None);
                continue;
            }
            let layout = QueueLayout {
                size: q.size,
                desc_table: q.desc,
                avail_ring: q.driver,
                used_ring: q.device,
            };
            let queue = Queue::new(&mem, layout, max, event_idx, indirect)
                .map_err(|source| DeviceError::Queue { index, source })?;
            queues.push(Some(queue));
        }
        self.device.activate(Activation {
            memory: self.memory.clone(),
            features,
            queues,
            interrupt: self.interrupt.clone(),
        })
    }
}
