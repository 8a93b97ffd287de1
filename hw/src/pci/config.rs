//! A PCI function's configuration space: the type-0 header image and the masks that say which
//! bits a guest may change.
//!
//! Spec: PCI Local Bus 3.0, 6.1 (header layout), 6.2.2 (command), 6.2.3 (status), 6.2.5
//! (BARs and their sizing), 6.7 (capability list). As QEMU's `PCIDevice` does, three arrays
//! of the same length describe the space: the bytes (`config`), the bits a guest write may
//! set or clear (`wmask`), and the bits a guest write of 1 clears (`w1cmask`). Everything else
//! is read-only to the guest; the device model changes it through the `set_*` methods.
//!
//! A device embeds a [`ConfigSpace`] and forwards its [`PciDevice`](super::PciDevice)
//! `config_read`/`config_write` here. Registers with side effects (an MSI-X enable bit, a
//! vendor capability) are handled by the device after forwarding: it asks [`touches`] whether
//! the access reached its capability and then reads the new value back.
//!
//! BAR sizing needs no special case: the address bits below the BAR's size are absent from
//! `wmask`, so a guest that writes all-ones reads back the size mask with the type bits.
//! Known warts: no expansion ROM (its register reads 0, which says "none"), no multifunction
//! header bit, extended capabilities (offset 0x100 and up) are not linked by the builder.

use thiserror::Error;

use super::device::BarKind;

/// Size of a conventional configuration space.
pub const CONFIG_SPACE_SIZE: usize = 256;
/// Size of a PCI Express (extended) configuration space.
pub const EXTENDED_CONFIG_SPACE_SIZE: usize = 4096;

/// Vendor ID register (16 bits).
pub const VENDOR_ID: u16 = 0x00;
/// Device ID register (16 bits).
pub const DEVICE_ID: u16 = 0x02;
/// Command register (16 bits).
pub const COMMAND: u16 = 0x04;
/// Status register (16 bits).
pub const STATUS: u16 = 0x06;
/// Revision ID register.
pub const REVISION_ID: u16 = 0x08;
/// Class code: programming interface (0x09), subclass (0x0a), base class (0x0b).
pub const CLASS_CODE: u16 = 0x09;
/// Cache line size register.
pub const CACHE_LINE_SIZE: u16 = 0x0c;
/// Latency timer register.
pub const LATENCY_TIMER: u16 = 0x0d;
/// Header type register.
pub const HEADER_TYPE: u16 = 0x0e;
/// First base address register.
pub const BAR0: u16 = 0x10;
/// Subsystem vendor ID register (16 bits).
pub const SUBSYSTEM_VENDOR_ID: u16 = 0x2c;
/// Subsystem ID register (16 bits).
pub const SUBSYSTEM_ID: u16 = 0x2e;
/// Expansion ROM base address register.
pub const ROM_ADDRESS: u16 = 0x30;
/// Capabilities pointer.
pub const CAPABILITIES_POINTER: u16 = 0x34;
/// Interrupt line register (written by firmware, here by the bus).
pub const INTERRUPT_LINE: u16 = 0x3c;
/// Interrupt pin register: 0 none, 1-4 INTA#-INTD#.
pub const INTERRUPT_PIN: u16 = 0x3d;
/// Where the capability builder places the first capability (the header ends here).
pub const FIRST_CAPABILITY: u16 = 0x40;
/// Number of BARs in a type-0 header.
pub const BAR_COUNT: usize = 6;

/// Command: respond to I/O space accesses.
pub const COMMAND_IO: u16 = 1 << 0;
/// Command: respond to memory space accesses.
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// Command: may master the bus (DMA, MSI).
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// Command: parity error response.
pub const COMMAND_PARITY: u16 = 1 << 6;
/// Command: SERR# enable.
pub const COMMAND_SERR: u16 = 1 << 8;
/// Command: INTx emulation disabled.
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
/// The command bits a guest may change.
pub const COMMAND_WRITABLE: u16 = COMMAND_IO
    | COMMAND_MEMORY
    | COMMAND_BUS_MASTER
    | COMMAND_PARITY
    | COMMAND_SERR
    | COMMAND_INTX_DISABLE;

/// Status: the function's INTx is asserted.
pub const STATUS_INTERRUPT: u16 = 1 << 3;
/// Status: the capabilities pointer is valid.
pub const STATUS_CAP_LIST: u16 = 1 << 4;
/// Status bits that record errors and are cleared by writing 1 (master data parity error,
/// signaled/received target abort, received master abort, signaled system error, detected
/// parity error).
pub const STATUS_W1C: u16 = 0xf900;

/// BAR bit 0: an I/O BAR.
pub const BAR_IO: u32 = 0x1;
/// BAR bits 2-1 = 0b10: a 64-bit memory BAR.
pub const BAR_MEM_64: u32 = 0x4;
/// BAR bit 3: prefetchable memory.
pub const BAR_MEM_PREFETCH: u32 = 0x8;

/// Smallest memory BAR (PCI 3.0 6.2.5.1).
pub const MIN_MEMORY_BAR: u64 = 16;
/// Smallest I/O BAR.
pub const MIN_IO_BAR: u64 = 4;
/// Largest I/O BAR: x86 port space is 64 KiB.
pub const MAX_IO_BAR: u64 = 0x1_0000;

/// A configuration-space layout the device model asked for that cannot exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// BAR index past 5 (or past 4 for a 64-bit BAR, which takes two registers).
    #[error("BAR {0} does not exist for this kind")]
    BadBarIndex(u8),
    /// The BAR's register (or the second one of a 64-bit BAR) is already in use.
    #[error("BAR {0} is already defined")]
    BarInUse(u8),
    /// BAR sizes are powers of two, at least 16 bytes (memory) or 4 (I/O), at most 2 GiB for
    /// a 32-bit memory BAR and 64 KiB for I/O.
    #[error("BAR size {0:#x} is not a valid size for its kind")]
    BadBarSize(u64),
    /// The capability does not fit in the conventional configuration space.
    #[error("no room for a capability of {0} bytes")]
    NoCapabilitySpace(u8),
    /// A capability holds at least its ID and next pointer.
    #[error("capability length {0} is shorter than its 2-byte header")]
    BadCapabilityLength(u8),
}

/// The identity registers of a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciIds {
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Class code: base class, subclass, programming interface (0x060000 a host bridge).
    pub class: u32,
    /// Revision ID.
    pub revision: u8,
    /// Subsystem vendor ID.
    pub subsystem_vendor: u16,
    /// Subsystem ID.
    pub subsystem: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bar {
    kind: BarKind,
    size: u64,
}

/// Whether an access of `len` bytes at `offset` touches any byte of `[start, start + size)`:
/// how a device decides a config write reached a register it owns.
pub fn touches(offset: u16, len: usize, start: u16, size: u16) -> bool {
    let (a, b) = (usize::from(offset), usize::from(offset) + len);
    let (c, d) = (usize::from(start), usize::from(start) + usize::from(size));
    a < d && c < b
}

/// The guest-physical (or port) address a BAR decodes, if any: its kind's decode bit is set in
/// `command`, the address is nonzero, and the whole BAR fits its address space (a 32-bit BAR
/// below 4 GiB, an I/O BAR below 64 KiB: a BAR still holding the all-ones sizing pattern wraps
/// and so decodes nothing, as in QEMU; so does a memory BAR whose last byte is the last
/// address). `raw` is the register value, both registers of a
/// 64-bit BAR (high dword in bits 63-32).
pub fn bar_mapping(kind: BarKind, size: u64, raw: u64, command: u16) -> Option<u64> {
    if size == 0 || !size.is_power_of_two() {
        return None;
    }
    // The end bound (exclusive) of the BAR's last byte: a memory BAR ending exactly at 4 GiB
    // (or at 2^64) is the sizing pattern, not a placement; port 0xffff is a real port.
    let (enabled, addr, end_limit) = match kind {
        BarKind::Io => (command & COMMAND_IO != 0, raw & 0xffff_fffc, 1u128 << 16),
        BarKind::Memory32 => (
            command & COMMAND_MEMORY != 0,
            raw & 0xffff_fff0,
            (1u128 << 32) - 1,
        ),
        BarKind::Memory64 { .. } => (command & COMMAND_MEMORY != 0, raw & !0xf, (1u128 << 64) - 1),
    };
    let addr = addr & !(size - 1);
    (enabled && addr != 0 && u128::from(addr) + u128::from(size) <= end_limit).then_some(addr)
}

/// The configuration space image and its write masks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSpace {
    config: Vec<u8>,
    wmask: Vec<u8>,
    w1cmask: Vec<u8>,
    bars: [Option<Bar>; BAR_COUNT],
    /// Offset of the last capability in the list (0: none yet).
    last_cap: u16,
    /// Where the next capability goes.
    next_cap: u16,
}

impl ConfigSpace {
    /// A conventional 256-byte type-0 header with these IDs: command and status zero, the
    /// command's decode/master/INTx-disable bits, cache line size, latency timer and interrupt
    /// line writable, the status error bits write-1-to-clear.
    pub fn new(ids: PciIds) -> Self {
        Self::with_size(ids, CONFIG_SPACE_SIZE)
    }

    /// The same header in a 4 KiB PCI Express configuration space.
    pub fn new_extended(ids: PciIds) -> Self {
        Self::with_size(ids, EXTENDED_CONFIG_SPACE_SIZE)
    }

    fn with_size(ids: PciIds, size: usize) -> Self {
        let mut s = Self {
            config: vec![0; size],
            wmask: vec![0; size],
            w1cmask: vec![0; size],
            bars: [None; BAR_COUNT],
            last_cap: 0,
            next_cap: FIRST_CAPABILITY,
        };
        s.set_u16(VENDOR_ID, ids.vendor);
        s.set_u16(DEVICE_ID, ids.device);
        s.set_u8(REVISION_ID, ids.revision);
        s.set(CLASS_CODE, &ids.class.to_le_bytes()[..3]);
        s.set_u16(SUBSYSTEM_VENDOR_ID, ids.subsystem_vendor);
        s.set_u16(SUBSYSTEM_ID, ids.subsystem);
        s.set_wmask(COMMAND, &COMMAND_WRITABLE.to_le_bytes());
        s.set_w1cmask(STATUS, &STATUS_W1C.to_le_bytes());
        s.set_wmask(CACHE_LINE_SIZE, &[0xff, 0xff]);
        s.set_wmask(INTERRUPT_LINE, &[0xff]);
        s
    }

    /// Bytes in this space (256 or 4096).
    pub fn size(&self) -> usize {
        self.config.len()
    }

    /// A guest read: bytes past the end of the space read all-ones.
    pub fn read(&self, offset: u16, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = *self.config.get(usize::from(offset) + i).unwrap_or(&0xff);
        }
    }

    /// A guest write: each bit changes only where `wmask` allows, and a 1 written to a
    /// `w1cmask` bit clears it. Bytes past the end are dropped.
    pub fn write(&mut self, offset: u16, data: &[u8]) {
        for (i, &v) in data.iter().enumerate() {
            let at = usize::from(offset) + i;
            let (Some(c), Some(&w), Some(&w1c)) = (
                self.config.get_mut(at),
                self.wmask.get(at),
                self.w1cmask.get(at),
            ) else {
                return;
            };
            *c = ((*c & !w) | (v & w)) & !(v & w1c);
        }
    }

    /// Power-on state of the guest-controlled bits: every writable and write-1-to-clear bit
    /// cleared (command, error status, BAR addresses, interrupt line, capability control bits).
    /// Read-only contents the device set up stay.
    pub fn reset(&mut self) {
        for ((c, w), w1c) in self.config.iter_mut().zip(&self.wmask).zip(&self.w1cmask) {
            *c &= !(w | w1c);
        }
    }

    /// The bytes at `offset` as the device set them or the guest wrote them.
    pub fn bytes(&self, offset: u16, len: usize) -> Option<&[u8]> {
        let start = usize::from(offset);
        self.config.get(start..start.checked_add(len)?)
    }

    /// Byte at `offset` (0xff past the end).
    pub fn u8(&self, offset: u16) -> u8 {
        let mut b = [0u8; 1];
        self.read(offset, &mut b);
        b[0]
    }

    /// Little-endian word at `offset`.
    pub fn u16(&self, offset: u16) -> u16 {
        let mut b = [0u8; 2];
        self.read(offset, &mut b);
        u16::from_le_bytes(b)
    }

    /// Little-endian dword at `offset`.
    pub fn u32(&self, offset: u16) -> u32 {
        let mut b = [0u8; 4];
        self.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    /// Device-side store of `value` at `offset`, whatever the masks say (past the end:
    /// dropped).
    pub fn set(&mut self, offset: u16, value: &[u8]) {
        put(&mut self.config, offset, value);
    }

    /// Device-side store of a byte.
    pub fn set_u8(&mut self, offset: u16, value: u8) {
        self.set(offset, &[value]);
    }

    /// Device-side store of a word.
    pub fn set_u16(&mut self, offset: u16, value: u16) {
        self.set(offset, &value.to_le_bytes());
    }

    /// Device-side store of a dword.
    pub fn set_u32(&mut self, offset: u16, value: u32) {
        self.set(offset, &value.to_le_bytes());
    }

    /// Makes the bits set in `mask` guest-writable at `offset` (and the others read-only).
    pub fn set_wmask(&mut self, offset: u16, mask: &[u8]) {
        put(&mut self.wmask, offset, mask);
    }

    /// Makes the bits set in `mask` write-1-to-clear at `offset`.
    pub fn set_w1cmask(&mut self, offset: u16, mask: &[u8]) {
        put(&mut self.w1cmask, offset, mask);
    }

    /// The command register.
    pub fn command(&self) -> u16 {
        self.u16(COMMAND)
    }

    /// Whether memory BARs decode.
    pub fn memory_enabled(&self) -> bool {
        self.command() & COMMAND_MEMORY != 0
    }

    /// Whether I/O BARs decode.
    pub fn io_enabled(&self) -> bool {
        self.command() & COMMAND_IO != 0
    }

    /// Whether the function may master the bus (DMA and MSI writes).
    pub fn bus_master(&self) -> bool {
        self.command() & COMMAND_BUS_MASTER != 0
    }

    /// Whether the guest disabled INTx (command bit 10).
    pub fn intx_disabled(&self) -> bool {
        self.command() & COMMAND_INTX_DISABLE != 0
    }

    /// Sets or clears the status register's interrupt bit (the device's INTx level).
    pub fn set_interrupt_status(&mut self, asserted: bool) {
        let s = self.u16(STATUS);
        let s = if asserted {
            s | STATUS_INTERRUPT
        } else {
            s & !STATUS_INTERRUPT
        };
        self.set_u16(STATUS, s);
    }

    /// Sets the interrupt pin (1-4 for INTA#-INTD#, 0 for none).
    pub fn set_interrupt_pin(&mut self, pin: u8) {
        self.set_u8(INTERRUPT_PIN, pin);
    }

    /// The interrupt pin (0 none, 1-4 INTA#-INTD#).
    pub fn interrupt_pin(&self) -> u8 {
        self.u8(INTERRUPT_PIN)
    }

    /// Sets the header type byte (bit 7: multifunction).
    pub fn set_header_type(&mut self, value: u8) {
        self.set_u8(HEADER_TYPE, value);
    }

    /// Declares BAR `index` of `kind` and `size` bytes (a power of two): its type bits are
    /// set and only its address bits at and above `size` are guest-writable.
    pub fn add_bar(&mut self, index: u8, kind: BarKind, size: u64) -> Result<(), ConfigError> {
        let i = usize::from(index);
        let regs = kind.registers();
        if i + regs > BAR_COUNT {
            return Err(ConfigError::BadBarIndex(index));
        }
        let (min, max) = match kind {
            BarKind::Io => (MIN_IO_BAR, MAX_IO_BAR),
            BarKind::Memory32 => (MIN_MEMORY_BAR, 1 << 31),
            BarKind::Memory64 { .. } => (MIN_MEMORY_BAR, 1 << 63),
        };
        if !size.is_power_of_two() || size < min || size > max {
            return Err(ConfigError::BadBarSize(size));
        }
        // A BAR's register is taken by itself or by the high half of a 64-bit BAR below it.
        let taken = |j: usize| {
            self.bars[j].is_some()
                || (j > 0
                    && matches!(
                        self.bars[j - 1],
                        Some(Bar {
                            kind: BarKind::Memory64 { .. },
                            ..
                        })
                    ))
        };
        if (i..i + regs).any(taken) {
            return Err(ConfigError::BarInUse(index));
        }
        let (type_bits, low_bits) = match kind {
            BarKind::Io => (BAR_IO, 0x3),
            BarKind::Memory32 => (0, 0xf),
            BarKind::Memory64 { prefetchable } => (
                BAR_MEM_64 | if prefetchable { BAR_MEM_PREFETCH } else { 0 },
                0xf,
            ),
        };
        let mask = !(size - 1) & !low_bits;
        let reg = BAR0 + 4 * u16::from(index);
        self.set_u32(reg, type_bits);
        self.set_wmask(reg, &(mask as u32).to_le_bytes());
        if regs == 2 {
            self.set_u32(reg + 4, 0);
            self.set_wmask(reg + 4, &((mask >> 32) as u32).to_le_bytes());
        }
        self.bars[i] = Some(Bar { kind, size });
        Ok(())
    }

    /// The declared BARs: (index, kind, size), as [`PciDevice::bars`](super::PciDevice::bars)
    /// reports them.
    pub fn bars(&self) -> Vec<(u8, BarKind, u64)> {
        (0u8..)
            .zip(&self.bars)
            .filter_map(|(i, b)| b.map(|b| (i, b.kind, b.size)))
            .collect()
    }

    /// The raw register value of BAR `index` (both registers of a 64-bit BAR).
    fn bar_raw(&self, index: u8, kind: BarKind) -> u64 {
        let reg = BAR0 + 4 * u16::from(index);
        let low = u64::from(self.u32(reg));
        match kind {
            BarKind::Memory64 { .. } => low | u64::from(self.u32(reg + 4)) << 32,
            _ => low,
        }
    }

    /// The address programmed in BAR `index` (type bits masked off), decoding or not.
    pub fn bar_address(&self, index: u8) -> Option<u64> {
        let bar = (*self.bars.get(usize::from(index))?)?;
        let low_bits = if bar.kind == BarKind::Io { 0x3 } else { 0xf };
        Some(self.bar_raw(index, bar.kind) & !low_bits & !(bar.size - 1))
    }

    /// Where BAR `index` decodes now (see [`bar_mapping`]), if it does.
    pub fn bar_mapped_at(&self, index: u8) -> Option<u64> {
        let bar = (*self.bars.get(usize::from(index))?)?;
        bar_mapping(
            bar.kind,
            bar.size,
            self.bar_raw(index, bar.kind),
            self.command(),
        )
    }

    /// Appends a capability of `len` bytes with ID `id` to the list: placed at the next free
    /// dword-aligned offset from 0x40, linked from the previous one (or from the capabilities
    /// pointer), status CAP_LIST set. Returns its offset; the caller fills bytes 2.. and makes
    /// its registers writable.
    pub fn add_capability(&mut self, id: u8, len: u8) -> Result<u16, ConfigError> {
        if len < 2 {
            return Err(ConfigError::BadCapabilityLength(len));
        }
        let at = self.next_cap;
        let end = at + u16::from(len);
        if usize::from(end) > CONFIG_SPACE_SIZE {
            return Err(ConfigError::NoCapabilitySpace(len));
        }
        self.set(at, &[id, 0]);
        // Offsets below 0x100 fit the 8-bit pointers.
        if self.last_cap == 0 {
            self.set_u8(CAPABILITIES_POINTER, at as u8);
        } else {
            self.set_u8(self.last_cap + 1, at as u8);
        }
        self.last_cap = at;
        self.next_cap = end.next_multiple_of(4);
        let status = self.u16(STATUS) | STATUS_CAP_LIST;
        self.set_u16(STATUS, status);
        Ok(at)
    }

    /// Offsets of the capabilities with ID `id`, walking the list as a guest does (at most
    /// 48 steps, so a corrupt list cannot loop).
    pub fn find_capability(&self, id: u8) -> Option<u16> {
        if self.u16(STATUS) & STATUS_CAP_LIST == 0 {
            return None;
        }
        let mut at = u16::from(self.u8(CAPABILITIES_POINTER) & !3);
        for _ in 0..48 {
            if at < FIRST_CAPABILITY {
                return None;
            }
            if self.u8(at) == id {
                return Some(at);
            }
            at = u16::from(self.u8(at + 1) & !3);
        }
        None
    }
}

fn put(array: &mut [u8], offset: u16, value: &[u8]) {
    let start = usize::from(offset);
    if let Some(dst) = start
        .checked_add(value.len())
        .and_then(|end| array.get_mut(start..end))
    {
        dst.copy_from_slice(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> PciIds {
        PciIds {
            vendor: 0x1af4,
            device: 0x1042,
            class: 0x01_0000,
            revision: 1,
            subsystem_vendor: 0x1af4,
            subsystem: 0x0002,
        }
    }

    fn write32(c: &mut ConfigSpace, off: u16, v: u32) {
        c.write(off, &v.to_le_bytes());
    }

    #[test]
    fn identity_registers_read_back_and_are_read_only() {
        let mut c = ConfigSpace::new(ids());
        assert_eq!(c.u32(0), 0x1042_1af4);
        assert_eq!(c.u32(0x08), 0x0100_0001);
        assert_eq!(c.u32(0x2c), 0x0002_1af4);
        write32(&mut c, 0, 0xdead_beef);
        write32(&mut c, 0x08, 0);
        assert_eq!(c.u32(0), 0x1042_1af4);
        assert_eq!(c.u32(0x08), 0x0100_0001);
        // Past the end reads all-ones; writes there vanish.
        c.write(0xff, &[1, 2, 3, 4]);
        let mut b = [0u8; 4];
        c.read(0xfe, &mut b);
        assert_eq!(b, [0, 0, 0xff, 0xff]);
        assert_eq!(ConfigSpace::new_extended(ids()).size(), 4096);
    }

    #[test]
    fn command_is_masked_and_status_errors_clear_by_writing_one() {
        let mut c = ConfigSpace::new(ids());
        c.write(COMMAND, &0xffffu16.to_le_bytes());
        assert_eq!(c.command(), COMMAND_WRITABLE);
        assert!(c.memory_enabled() && c.io_enabled() && c.bus_master() && c.intx_disabled());
        c.set_u16(STATUS, 0x8000 | STATUS_CAP_LIST | STATUS_INTERRUPT);
        // Writing 0 changes nothing; writing 1 to an error bit clears just that bit.
        c.write(STATUS, &[0, 0]);
        assert_eq!(c.u16(STATUS), 0x8018);
        c.write(STATUS, &[0xff, 0xff]);
        assert_eq!(c.u16(STATUS), STATUS_CAP_LIST | STATUS_INTERRUPT);
        c.set_interrupt_status(false);
        assert_eq!(c.u16(STATUS), STATUS_CAP_LIST);
        c.write(INTERRUPT_LINE, &[0x0b, 0x04]);
        assert_eq!(c.u16(INTERRUPT_LINE), 0x000b, "the pin is read-only");
        c.reset();
        assert_eq!((c.command(), c.u8(INTERRUPT_LINE)), (0, 0));
        assert_eq!(c.u16(VENDOR_ID), 0x1af4);
    }

    #[test]
    fn bars_size_by_writing_all_ones() {
        let mut c = ConfigSpace::new(ids());
        c.add_bar(0, BarKind::Io, 0x40).unwrap();
        c.add_bar(1, BarKind::Memory32, 0x1000).unwrap();
        c.add_bar(2, BarKind::Memory64 { prefetchable: true }, 0x4000)
            .unwrap();
        for i in 0..6 {
            write32(&mut c, BAR0 + 4 * i, u32::MAX);
        }
        assert_eq!(c.u32(BAR0), 0xffff_ffc1);
        assert_eq!(c.u32(BAR0 + 4), 0xffff_f000);
        assert_eq!(c.u32(BAR0 + 8), 0xffff_c00c);
        assert_eq!(c.u32(BAR0 + 12), 0xffff_ffff);
        assert_eq!(c.u32(BAR0 + 16), 0, "no BAR 4");
        assert_eq!(c.u32(ROM_ADDRESS), 0, "no ROM");
        // All-ones left in a BAR decodes nothing even with decoding on.
        c.write(COMMAND, &[3, 0]);
        assert_eq!(c.bar_mapped_at(0), None);
        assert_eq!(c.bar_mapped_at(1), None);
        assert_eq!(c.bar_mapped_at(2), None);
        write32(&mut c, BAR0, 0xc041);
        write32(&mut c, BAR0 + 4, 0xe000_1234);
        write32(&mut c, BAR0 + 8, 0x8000_0000);
        write32(&mut c, BAR0 + 12, 0x1);
        assert_eq!(c.bar_mapped_at(0), Some(0xc040));
        assert_eq!(c.bar_mapped_at(1), Some(0xe000_1000));
        assert_eq!(c.bar_mapped_at(2), Some(0x1_8000_0000));
        assert_eq!(c.bar_address(2), Some(0x1_8000_0000));
        c.write(COMMAND, &[COMMAND_IO as u8, 0]);
        assert_eq!(c.bar_mapped_at(0), Some(0xc040));
        assert_eq!(c.bar_mapped_at(1), None);
        assert_eq!(
            c.bars(),
            vec![
                (0, BarKind::Io, 0x40),
                (1, BarKind::Memory32, 0x1000),
                (2, BarKind::Memory64 { prefetchable: true }, 0x4000)
            ]
        );
        c.reset();
        assert_eq!(c.u32(BAR0 + 8), 0xc, "type bits survive a reset");
        assert_eq!(c.bar_address(1), Some(0));
    }

    #[test]
    fn bad_bars_are_errors() {
        let mut c = ConfigSpace::new(ids());
        let m64 = BarKind::Memory64 {
            prefetchable: false,
        };
        assert_eq!(
            c.add_bar(6, BarKind::Io, 4),
            Err(ConfigError::BadBarIndex(6))
        );
        assert_eq!(c.add_bar(5, m64, 16), Err(ConfigError::BadBarIndex(5)));
        assert_eq!(
            c.add_bar(0, BarKind::Io, 2),
            Err(ConfigError::BadBarSize(2))
        );
        assert_eq!(
            c.add_bar(0, BarKind::Memory32, 0x3000),
            Err(ConfigError::BadBarSize(0x3000))
        );
        assert_eq!(
            c.add_bar(0, BarKind::Memory32, 1 << 32),
            Err(ConfigError::BadBarSize(1 << 32))
        );
        c.add_bar(0, m64, 1 << 40).unwrap();
        assert_eq!(c.add_bar(1, BarKind::Io, 4), Err(ConfigError::BarInUse(1)));
        assert_eq!(c.add_bar(0, BarKind::Io, 4), Err(ConfigError::BarInUse(0)));
        c.add_bar(3, BarKind::Io, 4).unwrap();
        assert_eq!(c.add_bar(2, m64, 16), Err(ConfigError::BarInUse(2)));
        // A 1 TiB 64-bit BAR: the low register's address bits are all read-only.
        write32(&mut c, BAR0, u32::MAX);
        write32(&mut c, BAR0 + 4, u32::MAX);
        assert_eq!(c.u32(BAR0), 0x4);
        assert_eq!(c.u32(BAR0 + 4), 0xffff_ff00);
    }

    #[test]
    fn capabilities_link_into_a_list() {
        let mut c = ConfigSpace::new(ids());
        assert_eq!(c.find_capability(0x11), None);
        let a = c.add_capability(0x09, 5).unwrap();
        let b = c.add_capability(0x11, 12).unwrap();
        assert_eq!((a, b), (0x40, 0x48));
        assert_eq!(c.u8(CAPABILITIES_POINTER), 0x40);
        assert_eq!(c.u16(0x40), 0x4809);
        assert_eq!(c.u16(0x48), 0x0011);
        assert_ne!(c.u16(STATUS) & STATUS_CAP_LIST, 0);
        assert_eq!(c.find_capability(0x11), Some(0x48));
        assert_eq!(c.find_capability(0x05), None);
        // The list's pointers are read-only to the guest.
        c.write(0x41, &[0]);
        assert_eq!(c.find_capability(0x11), Some(0x48));
        assert_eq!(
            c.add_capability(1, 1),
            Err(ConfigError::BadCapabilityLength(1))
        );
        assert_eq!(
            c.add_capability(1, 200),
            Err(ConfigError::NoCapabilitySpace(200))
        );
        // A self-referencing list ends the walk.
        c.set_u8(0x49, 0x48);
        assert_eq!(c.find_capability(0x05), None);
        assert!(touches(0x4a, 2, 0x48, 12));
        assert!(!touches(0x44, 4, 0x48, 12));
        assert!(!touches(0x54, 1, 0x48, 12));
    }
}
