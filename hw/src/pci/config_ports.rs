//! Configuration mechanism #1: CONFIG_ADDRESS at port 0xCF8 and CONFIG_DATA at 0xCFC-0xCFF.
//!
//! Spec: PCI Local Bus 3.0, 3.2.2.3.2. CONFIG_ADDRESS is a dword register: bit 31 enables
//! config cycles, bits 23-16 bus, 15-11 device, 10-8 function, 7-2 dword register. Only a
//! dword write at 0xCF8 loads it (narrower writes there are other chipset registers on real
//! boards — 0xCF9 reset control among them — and are ignored); reads of any width return its
//! bytes, so Linux's type-1 probe (write 0x80000000, read it back) finds the mechanism.
//! CONFIG_DATA accepts byte, word and dword accesses at any offset that stays within the
//! dword: the byte at 0xCFC + n is register byte `(address & 0xfc) + n`. With the enable bit
//! clear, or for bus other than 0, a function other than 0, or an empty slot, reads are
//! all-ones and writes vanish, as for an absent device (master abort).

use tandem_softmmu::PortDevice;

use super::bus::PciBus;

/// Port of CONFIG_ADDRESS.
pub const CONFIG_PORTS_BASE: u16 = 0xcf8;
/// Ports the device covers (CONFIG_ADDRESS and CONFIG_DATA).
pub const CONFIG_PORTS_LEN: u16 = 8;
/// CONFIG_ADDRESS: config cycles enabled.
pub const CONFIG_ENABLE: u32 = 1 << 31;
/// The CONFIG_ADDRESS bits that hold state (enable, bus, device, function, register); the
/// reserved bits 30-24 and the low two bits read 0.
const CONFIG_ADDRESS_MASK: u32 = 0x80ff_fffc;

/// The port device at [`CONFIG_PORTS_BASE`].
pub struct PciConfigPorts {
    bus: PciBus,
    address: u32,
}

impl PciConfigPorts {
    pub(super) fn new(bus: PciBus) -> Self {
        Self { bus, address: 0 }
    }

    /// CONFIG_ADDRESS as the guest last wrote it (masked).
    pub fn address(&self) -> u32 {
        self.address
    }

    /// The (slot, register) CONFIG_DATA byte `byte` (0-3) reaches now, if a function 0 on bus
    /// 0 is addressed.
    fn target(&self, byte: u16) -> Option<(u8, u16)> {
        let a = self.address;
        let bus = (a >> 16) & 0xff;
        let function = (a >> 8) & 0x7;
        if a & CONFIG_ENABLE == 0 || bus != 0 || function != 0 {
            return None;
        }
        let slot = ((a >> 11) & 0x1f) as u8;
        Some((slot, (a & 0xfc) as u16 + byte))
    }
}

/// The CONFIG_DATA byte offset (0-3) of an access at port offset `offset`, if the access stays
/// within the dword.
fn data_byte(offset: u16, len: usize) -> Option<u16> {
    let byte = offset.checked_sub(4)?;
    (usize::from(byte) + len <= 4).then_some(byte)
}

impl PortDevice for PciConfigPorts {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        if offset < 4 {
            let bytes = self.address.to_le_bytes();
            for (i, b) in data.iter_mut().enumerate() {
                *b = *bytes.get(usize::from(offset) + i).unwrap_or(&0xff);
            }
            return;
        }
        match data_byte(offset, data.len()).and_then(|b| self.target(b)) {
            Some((slot, reg)) => self.bus.config_read(slot, reg, data),
            None => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u16, data: &[u8]) {
        if offset < 4 {
            if let (0, Ok(v)) = (offset, <[u8; 4]>::try_from(data)) {
                self.address = u32::from_le_bytes(v) & CONFIG_ADDRESS_MASK;
            }
            return;
        }
        if let Some((slot, reg)) = data_byte(offset, data.len()).and_then(|b| self.target(b)) {
            self.bus.config_write(slot, reg, data);
        }
    }
}
