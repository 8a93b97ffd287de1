//! The i440FX host bridge at 00:00.0, as QEMU's `pc` machine shows it to the guest.
//!
//! Identity: Intel 440FX - 82441FX PMC "Natoma" (8086:1237), revision 02, class 0x060000
//! (host bridge), subsystem Red Hat QEMU virtual machine (1af4:1100). Linux's type-1 sanity
//! check (arch/x86/pci/direct.c) looks for a host bridge or an Intel device on bus 0, and this
//! is it. Known warts: the chipset registers past the header (PAM at 0x59-0x5f, SMRAM at 0x72)
//! read 0 and ignore writes: there is no firmware shadowing to control.

use super::config::{ConfigSpace, PciIds};
use super::device::{BarKind, PciDevice};

/// The i440FX's IDs.
pub const I440FX_IDS: PciIds = PciIds {
    vendor: 0x8086,
    device: 0x1237,
    class: 0x06_0000,
    revision: 0x02,
    subsystem_vendor: 0x1af4,
    subsystem: 0x1100,
};

/// The host bridge function.
#[derive(Debug, Clone)]
pub struct I440fxHostBridge {
    config: ConfigSpace,
}

impl Default for I440fxHostBridge {
    fn default() -> Self {
        Self::new()
    }
}

impl I440fxHostBridge {
    /// A host bridge in its power-on state.
    pub fn new() -> Self {
        Self {
            config: ConfigSpace::new(I440FX_IDS),
        }
    }
}

impl PciDevice for I440fxHostBridge {
    fn config_read(&mut self, offset: u16, data: &mut [u8]) {
        self.config.read(offset, data);
    }

    fn config_write(&mut self, offset: u16, data: &[u8]) {
        self.config.write(offset, data);
    }

    fn bars(&self) -> Vec<(u8, BarKind, u64)> {
        Vec::new()
    }

    fn bar_read(&mut self, _bar: u8, _offset: u64, data: &mut [u8]) {
        data.fill(0xff);
    }

    fn bar_write(&mut self, _bar: u8, _offset: u64, _data: &[u8]) {}

    fn reset(&mut self) {
        self.config.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_as_qemus_i440fx() {
        let mut hb = I440fxHostBridge::new();
        let mut d = [0u8; 4];
        hb.config_read(0, &mut d);
        assert_eq!(u32::from_le_bytes(d), 0x1237_8086);
        hb.config_read(8, &mut d);
        assert_eq!(u32::from_le_bytes(d), 0x0600_0002);
        hb.config_read(0x2c, &mut d);
        assert_eq!(u32::from_le_bytes(d), 0x1100_1af4);
        hb.config_read(0x0c, &mut d);
        assert_eq!(d[2], 0, "single-function type-0 header");
        assert!(hb.bars().is_empty());
        hb.config_write(0x59, &[0x33]);
        hb.config_read(0x58, &mut d);
        assert_eq!(d, [0; 4]);
    }
}
