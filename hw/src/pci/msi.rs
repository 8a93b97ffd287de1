//! MSI: the message-signalled interrupt capability, whose whole state lives in configuration
//! space.
//!
//! Spec: PCI Local Bus 3.0, 6.8.1. This is the 64-bit form with per-vector masking, 24 bytes:
//! message control (+2: enable bit 0, Multiple Message Capable bits 3-1, Multiple Message
//! Enable bits 6-4, 64-bit capable bit 7, per-vector masking capable bit 8), address low (+4,
//! bits 1-0 reserved), address high (+8), data (+12, 16 bits), mask bits (+16), pending bits
//! (+20, read-only to the guest). With n vectors enabled, vector v sends the data with its low
//! log2(n) bits replaced by v.
//!
//! A masked vector sets its pending bit instead of sending (while MSI is off nothing is sent
//! or kept: the device uses INTx then); [`Msi::config_written`] sends the pending vectors a
//! mask write cleared. Known warts: the bus-master bit is not checked; a 32-bit-only layout is not
//! offered (every x86 OS handles the 64-bit one).

use std::sync::Arc;

use tandem_softmmu::MsiSink;
use thiserror::Error;

use super::config::{ConfigError, ConfigSpace};
use super::msix::MsiMessage;

/// Capability ID of MSI.
pub const MSI_CAP_ID: u8 = 0x05;
/// Length of the 64-bit, per-vector-masking capability.
pub const MSI_CAP_LEN: u8 = 24;
/// Message control: MSI enable.
pub const MSI_ENABLE: u16 = 1 << 0;
/// Message control: the address is 64 bits.
pub const MSI_64BIT: u16 = 1 << 7;
/// Message control: per-vector masking.
pub const MSI_PER_VECTOR_MASK: u16 = 1 << 8;
/// Message control: the Multiple Message Enable field.
const MSI_MME_MASK: u16 = 0x7 << 4;

const ADDRESS_LO: u16 = 4;
const ADDRESS_HI: u16 = 8;
const DATA: u16 = 12;
const MASK: u16 = 16;
const PENDING: u16 = 20;

/// An MSI layout that cannot exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MsiError {
    /// MSI offers 1, 2, 4, 8, 16 or 32 vectors.
    #[error("MSI with {0} vectors (a power of two up to 32)")]
    BadVectorCount(u8),
    /// The capability did not fit in configuration space.
    #[error("adding the MSI capability")]
    Config(#[from] ConfigError),
}

/// One function's MSI capability.
pub struct Msi {
    cap: u16,
    vectors: u8,
    sink: Arc<dyn MsiSink>,
}

impl std::fmt::Debug for Msi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Msi")
            .field("cap", &self.cap)
            .field("vectors", &self.vectors)
            .finish_non_exhaustive()
    }
}

impl Msi {
    /// Appends the capability for `vectors` vectors to `config`, messages to `sink`.
    pub fn add(
        config: &mut ConfigSpace,
        vectors: u8,
        sink: Arc<dyn MsiSink>,
    ) -> Result<Self, MsiError> {
        if !vectors.is_power_of_two() || vectors > 32 {
            return Err(MsiError::BadVectorCount(vectors));
        }
        let cap = config.add_capability(MSI_CAP_ID, MSI_CAP_LEN)?;
        let mmc = vectors.trailing_zeros() as u16;
        config.set_u16(cap + 2, MSI_64BIT | MSI_PER_VECTOR_MASK | mmc << 1);
        config.set_wmask(cap + 2, &(MSI_ENABLE | MSI_MME_MASK).to_le_bytes());
        config.set_wmask(cap + ADDRESS_LO, &0xffff_fffcu32.to_le_bytes());
        config.set_wmask(cap + ADDRESS_HI, &[0xff; 4]);
        config.set_wmask(cap + DATA, &[0xff; 2]);
        let mask_bits = if vectors == 32 {
            u32::MAX
        } else {
            (1u32 << vectors) - 1
        };
        config.set_wmask(cap + MASK, &mask_bits.to_le_bytes());
        Ok(Self { cap, vectors, sink })
    }

    /// Offset of the capability.
    pub fn capability(&self) -> u16 {
        self.cap
    }

    /// Whether the guest enabled MSI.
    pub fn is_enabled(&self, config: &ConfigSpace) -> bool {
        config.u16(self.cap + 2) & MSI_ENABLE != 0
    }

    /// How many vectors the guest enabled (Multiple Message Enable, capped at what the
    /// function offers).
    pub fn enabled_vectors(&self, config: &ConfigSpace) -> u8 {
        let mme = (config.u16(self.cap + 2) & MSI_MME_MASK) >> 4;
        (1u8 << mme.min(5)).min(self.vectors)
    }

    /// The message `vector` sends, if it is among the enabled vectors.
    pub fn message(&self, config: &ConfigSpace, vector: u8) -> Option<MsiMessage> {
        let n = self.enabled_vectors(config);
        (vector < n).then(|| {
            let address = u64::from(config.u32(self.cap + ADDRESS_LO))
                | u64::from(config.u32(self.cap + ADDRESS_HI)) << 32;
            let data = u32::from(config.u16(self.cap + DATA));
            MsiMessage {
                address,
                data: (data & !(u32::from(n) - 1)) | u32::from(vector),
            }
        })
    }

    /// Signals `vector`: sent if MSI is on and the vector unmasked, left pending if masked,
    /// dropped if MSI is off or the vector is not enabled. True if sent.
    pub fn notify(&self, config: &mut ConfigSpace, vector: u8) -> bool {
        if !self.is_enabled(config) {
            return false;
        }
        let Some(m) = self.message(config, vector) else {
            return false;
        };
        let bit = 1u32 << vector;
        if config.u32(self.cap + MASK) & bit != 0 {
            let pending = config.u32(self.cap + PENDING) | bit;
            config.set_u32(self.cap + PENDING, pending);
            return false;
        }
        self.sink.send_msi(m.address, m.data);
        true
    }

    /// After a config write: sends the pending vectors that are now unmasked.
    pub fn config_written(&self, config: &mut ConfigSpace) {
        if !self.is_enabled(config) {
            return;
        }
        let ready = config.u32(self.cap + PENDING) & !config.u32(self.cap + MASK);
        for v in 0..self.vectors {
            if ready & (1 << v) != 0 {
                let pending = config.u32(self.cap + PENDING) & !(1 << v);
                config.set_u32(self.cap + PENDING, pending);
                self.notify(config, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::PciIds;
    use super::super::testing::SentMsis as Sent;
    use super::*;

    fn cfg() -> ConfigSpace {
        ConfigSpace::new(PciIds {
            vendor: 0x8086,
            device: 0x100e,
            class: 0x02_0000,
            revision: 3,
            subsystem_vendor: 0x1af4,
            subsystem: 0x1100,
        })
    }

    #[test]
    fn messages_follow_the_enabled_vector_count_and_masks() {
        let sent = Arc::new(Sent::default());
        let mut c = cfg();
        let msi = Msi::add(&mut c, 4, sent.clone()).unwrap();
        let cap = msi.capability();
        assert_eq!(c.find_capability(MSI_CAP_ID), Some(cap));
        assert_eq!(
            c.u16(cap + 2),
            0x0184,
            "64-bit, maskable, 4 vectors capable"
        );
        assert!(!msi.notify(&mut c, 0), "off: dropped");
        c.write(cap + 4, &0xfee0_1003u32.to_le_bytes());
        c.write(cap + 12, &0x4043u16.to_le_bytes());
        // Enable with 2 vectors (MME = 1).
        c.write(cap + 2, &(MSI_ENABLE | 1 << 4).to_le_bytes());
        assert_eq!(msi.enabled_vectors(&c), 2);
        assert!(msi.notify(&mut c, 1));
        assert!(!msi.notify(&mut c, 2), "not enabled");
        assert_eq!(*sent.0.lock().unwrap(), vec![(0xfee0_1000, 0x4043)]);
        // Mask vector 0: it pends; the guest cannot clear the pending bit; unmask sends.
        c.write(cap + 16, &1u32.to_le_bytes());
        assert!(!msi.notify(&mut c, 0));
        c.write(cap + 20, &0u32.to_le_bytes());
        assert_eq!(c.u32(cap + 20), 1);
        c.write(cap + 16, &0u32.to_le_bytes());
        msi.config_written(&mut c);
        assert_eq!(c.u32(cap + 20), 0);
        assert_eq!(sent.0.lock().unwrap().last(), Some(&(0xfee0_1000, 0x4042)));
        // MME past the capable count is capped.
        c.write(cap + 2, &(MSI_ENABLE | 5 << 4).to_le_bytes());
        assert_eq!(msi.enabled_vectors(&c), 4);
    }

    #[test]
    fn bad_vector_counts_are_errors() {
        let sink: Arc<dyn MsiSink> = Arc::new(Sent::default());
        for n in [0u8, 3, 64] {
            assert_eq!(
                Msi::add(&mut cfg(), n, sink.clone()).unwrap_err(),
                MsiError::BadVectorCount(n)
            );
        }
        let mut c = cfg();
        let m = Msi::add(&mut c, 32, sink).unwrap();
        c.write(m.capability() + 16, &[0xff; 4]);
        assert_eq!(c.u32(m.capability() + 16), u32::MAX);
    }
}
