//! MSI-X: the capability in configuration space, and the vector table and pending-bit array
//! (PBA) a BAR exposes.
//!
//! Spec: PCI Local Bus 3.0, 6.8.2 (MSI-X capability and table structures). The capability is
//! 12 bytes: ID 0x11, next pointer, message control (table size N-1 in bits 10-0, function
//! mask bit 14, enable bit 15), table offset/BIR, PBA offset/BIR. Each table entry is 16 bytes:
//! message address low (bits 1-0 reserved), high, data, vector control (bit 0: masked; every
//! vector starts masked). The PBA holds one pending bit per vector, in qwords.
//!
//! A vector is masked while MSI-X is disabled, the function is masked, or its own mask bit is
//! set. [`MsiX::notify`] sends the vector's message through the [`MsiSink`] when it is not
//! masked, and otherwise sets its pending bit; a pending vector that becomes unmasked (by a
//! table write, or a config write to message control) is sent then and its bit cleared, as
//! QEMU's msix.c does.
//!
//! How a device uses it:
//! 1. `let mut msix = MsiX::new(bar, table_offset, pba_offset, vectors, sink)?;` then
//!    `msix.add_capability(&mut config)?` and declare `bar` with at least
//!    [`MsiX::bar_size`] bytes;
//! 2. in `config_write`, after `config.write(..)`: `msix.config_written(&config)`;
//! 3. in `bar_read`/`bar_write` of that BAR: `if msix.bar_read(offset, data) { return }`;
//! 4. to interrupt: `msix.notify(vector)` when [`MsiX::is_enabled`], INTx otherwise.
//!
//! Known warts: the table and PBA share one BAR; the PBA is read-only (writes are dropped, as
//! the spec allows); the device's bus-master bit is not checked before sending.

use std::sync::Arc;

use tandem_softmmu::MsiSink;
use thiserror::Error;

use super::config::{ConfigError, ConfigSpace};

/// Capability ID of MSI-X.
pub const MSIX_CAP_ID: u8 = 0x11;
/// Length of the capability.
pub const MSIX_CAP_LEN: u8 = 12;
/// Message control: MSI-X enable.
pub const MSIX_ENABLE: u16 = 1 << 15;
/// Message control: function mask.
pub const MSIX_FUNCTION_MASK: u16 = 1 << 14;
/// Bytes per table entry.
pub const MSIX_ENTRY_SIZE: u64 = 16;
/// Vector control bit 0: the vector is masked.
pub const MSIX_VECTOR_MASKED: u32 = 1;
/// Most vectors a function may have.
pub const MSIX_MAX_VECTORS: u16 = 2048;

/// Per entry, the bits a guest may write: address low without bits 1-0, address high, data,
/// and only the mask bit of vector control.
const ENTRY_WMASK: [u8; 16] = [
    0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0,
];

/// An MSI-X layout that cannot exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MsixError {
    /// A function has 1 to 2048 vectors.
    #[error("MSI-X with {0} vectors (1 to 2048)")]
    BadVectorCount(u16),
    /// BIR is 0-5 and offsets are qword-aligned (their low 3 bits hold the BIR).
    #[error("MSI-X table or PBA at BAR {bar} offset {offset:#x} is not a valid placement")]
    BadPlacement {
        /// The BAR index.
        bar: u8,
        /// The offset in it.
        offset: u32,
    },
    /// The table and the PBA overlap.
    #[error("MSI-X table and PBA overlap")]
    Overlap,
    /// The capability did not fit in configuration space.
    #[error("adding the MSI-X capability")]
    Config(#[from] ConfigError),
}

/// A vector's message as the guest programmed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsiMessage {
    /// Address (0xFEExxxxx on x86).
    pub address: u64,
    /// Data (vector and delivery mode on x86).
    pub data: u32,
}

/// One function's MSI-X state.
pub struct MsiX {
    bar: u8,
    table_offset: u32,
    pba_offset: u32,
    vectors: u16,
    table: Vec<u8>,
    pending: Vec<u64>,
    cap: Option<u16>,
    enabled: bool,
    function_masked: bool,
    sink: Arc<dyn MsiSink>,
}

impl std::fmt::Debug for MsiX {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsiX")
            .field("bar", &self.bar)
            .field("vectors", &self.vectors)
            .field("enabled", &self.enabled)
            .field("function_masked", &self.function_masked)
            .finish_non_exhaustive()
    }
}

impl MsiX {
    /// `vectors` vectors, the table at `table_offset` and the PBA at `pba_offset` of BAR
    /// `bar`, messages sent to `sink`. Every vector starts masked, MSI-X disabled.
    pub fn new(
        bar: u8,
        table_offset: u32,
        pba_offset: u32,
        vectors: u16,
        sink: Arc<dyn MsiSink>,
    ) -> Result<Self, MsixError> {
        if vectors == 0 || vectors > MSIX_MAX_VECTORS {
            return Err(MsixError::BadVectorCount(vectors));
        }
        for offset in [table_offset, pba_offset] {
            if bar > 5 || offset % 8 != 0 {
                return Err(MsixError::BadPlacement { bar, offset });
            }
        }
        let table_len = u64::from(vectors) * MSIX_ENTRY_SIZE;
        let pba_len = u64::from(vectors).div_ceil(64) * 8;
        let (t, p) = (u64::from(table_offset), u64::from(pba_offset));
        if t < p + pba_len && p < t + table_len {
            return Err(MsixError::Overlap);
        }
        let mut msix = Self {
            bar,
            table_offset,
            pba_offset,
            vectors,
            table: vec![0; table_len as usize],
            pending: vec![0; usize::from(vectors).div_ceil(64)],
            cap: None,
            enabled: false,
            function_masked: false,
            sink,
        };
        // Every vector starts masked.
        msix.reset();
        Ok(msix)
    }

    /// Number of vectors.
    pub fn vectors(&self) -> u16 {
        self.vectors
    }

    /// The BAR holding the table and PBA.
    pub fn bar(&self) -> u8 {
        self.bar
    }

    /// The smallest BAR size (a power of two) holding the table and the PBA.
    pub fn bar_size(&self) -> u64 {
        let table_end = u64::from(self.table_offset) + self.table.len() as u64;
        let pba_end = u64::from(self.pba_offset) + self.pending.len() as u64 * 8;
        table_end.max(pba_end).next_power_of_two().max(16)
    }

    /// Appends the capability to `config`, with enable and function mask guest-writable.
    /// Returns its offset.
    pub fn add_capability(&mut self, config: &mut ConfigSpace) -> Result<u16, MsixError> {
        let at = config.add_capability(MSIX_CAP_ID, MSIX_CAP_LEN)?;
        config.set_u16(at + 2, self.vectors - 1);
        config.set_wmask(at + 2, &(MSIX_ENABLE | MSIX_FUNCTION_MASK).to_le_bytes());
        config.set_u32(at + 4, self.table_offset | u32::from(self.bar));
        config.set_u32(at + 8, self.pba_offset | u32::from(self.bar));
        self.cap = Some(at);
        Ok(at)
    }

    /// Picks up the enable and function-mask bits after a config write (call it after every
    /// write the device forwards to `config`); vectors this unmasks send their pending
    /// messages.
    pub fn config_written(&mut self, config: &ConfigSpace) {
        let Some(cap) = self.cap else { return };
        let control = config.u16(cap + 2);
        self.enabled = control & MSIX_ENABLE != 0;
        self.function_masked = control & MSIX_FUNCTION_MASK != 0;
        for v in 0..self.vectors {
            self.deliver_if_unmasked(v);
        }
    }

    /// Whether the guest enabled MSI-X (the device then must not use INTx).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Whether the whole function is masked.
    pub fn is_function_masked(&self) -> bool {
        self.function_masked
    }

    fn entry(&self, vector: u16) -> Option<&[u8]> {
        let at = usize::from(vector) * MSIX_ENTRY_SIZE as usize;
        self.table.get(at..at + MSIX_ENTRY_SIZE as usize)
    }

    /// Whether `vector` would be held pending now (MSI-X off, function or vector masked).
    pub fn is_masked(&self, vector: u16) -> bool {
        let vector_masked = self
            .entry(vector)
            .is_none_or(|e| e[12] & MSIX_VECTOR_MASKED as u8 != 0);
        !self.enabled || self.function_masked || vector_masked
    }

    /// Whether `vector`'s pending bit is set.
    pub fn is_pending(&self, vector: u16) -> bool {
        let v = usize::from(vector);
        self.pending
            .get(v / 64)
            .is_some_and(|q| q & (1 << (v % 64)) != 0)
    }

    fn set_pending(&mut self, vector: u16, on: bool) {
        let v = usize::from(vector);
        if let Some(q) = self.pending.get_mut(v / 64) {
            if on {
                *q |= 1 << (v % 64);
            } else {
                *q &= !(1 << (v % 64));
            }
        }
    }

    /// The message `vector` sends, as programmed.
    pub fn message(&self, vector: u16) -> Option<MsiMessage> {
        let e = self.entry(vector)?;
        let dword = |i: usize| u32::from_le_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
        Some(MsiMessage {
            address: u64::from(dword(0)) | u64::from(dword(4)) << 32,
            data: dword(8),
        })
    }

    /// Signals `vector`: sends its message unless it is masked, in which case it is left
    /// pending. True if the message was sent; a vector past the table does nothing.
    pub fn notify(&mut self, vector: u16) -> bool {
        if vector >= self.vectors {
            return false;
        }
        if self.is_masked(vector) {
            self.set_pending(vector, true);
            return false;
        }
        self.send(vector);
        true
    }

    fn send(&self, vector: u16) {
        if let Some(m) = self.message(vector) {
            self.sink.send_msi(m.address, m.data);
        }
    }

    fn deliver_if_unmasked(&mut self, vector: u16) {
        if self.is_pending(vector) && !self.is_masked(vector) {
            self.set_pending(vector, false);
            self.send(vector);
        }
    }

    /// A guest read at `offset` in the table (bytes outside it read 0).
    pub fn table_read(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = offset
                .checked_add(i as u64)
                .and_then(|o| self.table.get(usize::try_from(o).ok()?))
                .copied()
                .unwrap_or(0);
        }
    }

    /// A guest write at `offset` in the table; unmasking a pending vector sends it.
    pub fn table_write(&mut self, offset: u64, data: &[u8]) {
        let mut touched = Vec::new();
        for (i, &v) in data.iter().enumerate() {
            let Some(at) = offset
                .checked_add(i as u64)
                .and_then(|o| usize::try_from(o).ok())
            else {
                continue;
            };
            let Some(b) = self.table.get_mut(at) else {
                continue;
            };
            let w = ENTRY_WMASK[at % MSIX_ENTRY_SIZE as usize];
            *b = (*b & !w) | (v & w);
            // The table holds at most 2048 entries.
            let vector = (at / MSIX_ENTRY_SIZE as usize) as u16;
            if touched.last() != Some(&vector) {
                touched.push(vector);
            }
        }
        for v in touched {
            self.deliver_if_unmasked(v);
        }
    }

    /// A guest read at `offset` in the PBA (bytes outside it read 0).
    pub fn pba_read(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = offset
                .checked_add(i as u64)
                .and_then(|o| {
                    let o = usize::try_from(o).ok()?;
                    Some((self.pending.get(o / 8)? >> (8 * (o % 8))) as u8)
                })
                .unwrap_or(0);
        }
    }

    /// Serves a read at `offset` of the MSI-X BAR if it falls in the table or the PBA; false
    /// if the offset is the device's own.
    pub fn bar_read(&self, offset: u64, data: &mut [u8]) -> bool {
        let len = data.len() as u64;
        if let Some(o) = inside(offset, len, self.table_offset, self.table.len()) {
            self.table_read(o, data);
            true
        } else if let Some(o) = inside(offset, len, self.pba_offset, self.pending.len() * 8) {
            self.pba_read(o, data);
            true
        } else {
            false
        }
    }

    /// Serves a write at `offset` of the MSI-X BAR if it falls in the table or the PBA (PBA
    /// writes are dropped); false if the offset is the device's own.
    pub fn bar_write(&mut self, offset: u64, data: &[u8]) -> bool {
        let len = data.len() as u64;
        if let Some(o) = inside(offset, len, self.table_offset, self.table.len()) {
            self.table_write(o, data);
            true
        } else {
            inside(offset, len, self.pba_offset, self.pending.len() * 8).is_some()
        }
    }

    /// Power-on state: every vector masked with a zero message, nothing pending, disabled (the
    /// config space's own reset clears the control bits).
    pub fn reset(&mut self) {
        self.table.fill(0);
        for entry in self.table.chunks_mut(MSIX_ENTRY_SIZE as usize) {
            entry[12] = MSIX_VECTOR_MASKED as u8;
        }
        self.pending.fill(0);
        self.enabled = false;
        self.function_masked = false;
    }
}

/// The offset within `[start, start + size)` of an access of `len` bytes at `offset`, if it
/// starts there (an access running past the end is served as far as it reaches).
fn inside(offset: u64, len: u64, start: u32, size: usize) -> Option<u64> {
    let rel = offset.checked_sub(u64::from(start))?;
    (rel < size as u64 && len > 0).then_some(rel)
}

#[cfg(test)]
mod tests {
    use super::super::config::PciIds;
    use super::super::testing::SentMsis as Sent;
    use super::*;

    fn setup(vectors: u16) -> (MsiX, ConfigSpace, Arc<Sent>, u16) {
        let sent = Arc::new(Sent::default());
        let mut msix = MsiX::new(1, 0, 0x800, vectors, sent.clone()).unwrap();
        let mut cfg = ConfigSpace::new(PciIds {
            vendor: 0x1af4,
            device: 0x1041,
            class: 0x02_0000,
            revision: 1,
            subsystem_vendor: 0x1af4,
            subsystem: 1,
        });
        let cap = msix.add_capability(&mut cfg).unwrap();
        (msix, cfg, sent, cap)
    }

    fn program(msix: &mut MsiX, v: u16, addr: u64, data: u32) {
        let base = u64::from(v) * 16;
        msix.table_write(base, &addr.to_le_bytes());
        msix.table_write(base + 8, &data.to_le_bytes());
    }

    fn control(msix: &mut MsiX, cfg: &mut ConfigSpace, cap: u16, value: u16) {
        cfg.write(cap + 2, &value.to_le_bytes());
        msix.config_written(cfg);
    }

    #[test]
    fn capability_describes_table_and_pba() {
        let (msix, cfg, _, cap) = setup(3);
        assert_eq!(cfg.find_capability(MSIX_CAP_ID), Some(cap));
        assert_eq!(cfg.u16(cap + 2), 2, "table size N-1, disabled");
        assert_eq!(cfg.u32(cap + 4), 1, "table at offset 0 of BAR 1");
        assert_eq!(cfg.u32(cap + 8), 0x801);
        assert_eq!(msix.bar_size(), 0x1000);
        // Only enable and function mask are writable.
        let mut cfg2 = cfg.clone();
        cfg2.write(cap + 2, &[0xff, 0xff]);
        assert_eq!(cfg2.u16(cap + 2), 0xc002);
    }

    #[test]
    fn masked_vectors_go_pending_and_fire_on_unmask() {
        let (mut msix, mut cfg, sent, cap) = setup(3);
        program(&mut msix, 1, 0xfee0_0000, 0x41);
        // Disabled: everything pends.
        assert!(!msix.notify(1));
        assert!(msix.is_pending(1));
        control(&mut msix, &mut cfg, cap, MSIX_ENABLE);
        assert!(msix.is_enabled());
        // Still masked per vector (every vector starts masked).
        assert!(sent.take().is_empty());
        let mut pba = [0u8; 8];
        msix.pba_read(0, &mut pba);
        assert_eq!(pba[0], 0b10);
        // Unmasking the vector delivers the pending message once.
        msix.table_write(16 + 12, &0u32.to_le_bytes());
        assert_eq!(sent.take(), vec![(0xfee0_0000, 0x41)]);
        assert!(!msix.is_pending(1));
        assert!(msix.notify(1));
        assert_eq!(sent.take(), vec![(0xfee0_0000, 0x41)]);
        // Function mask holds it; clearing the mask delivers.
        control(&mut msix, &mut cfg, cap, MSIX_ENABLE | MSIX_FUNCTION_MASK);
        assert!(!msix.notify(1));
        assert!(sent.take().is_empty());
        control(&mut msix, &mut cfg, cap, MSIX_ENABLE);
        assert_eq!(sent.take(), vec![(0xfee0_0000, 0x41)]);
        // Out-of-range vectors do nothing.
        assert!(!msix.notify(3));
        assert!(!msix.is_pending(3));
    }

    #[test]
    fn table_accesses_of_every_width_respect_reserved_bits() {
        let (mut msix, _, _, _) = setup(2);
        msix.table_write(0, &u64::MAX.to_le_bytes());
        msix.table_write(8, &u64::MAX.to_le_bytes());
        let mut q = [0u8; 8];
        msix.table_read(0, &mut q);
        assert_eq!(u64::from_le_bytes(q), 0xffff_ffff_ffff_fffc);
        let mut d = [0u8; 4];
        msix.table_read(12, &mut d);
        assert_eq!(u32::from_le_bytes(d), 1);
        msix.table_read(16 + 12, &mut d);
        assert_eq!(u32::from_le_bytes(d), 1, "vector 1 starts masked");
        msix.table_write(9, &[0x12]);
        let mut b = [0u8; 1];
        msix.table_read(9, &mut b);
        assert_eq!(b[0], 0x12);
        assert_eq!(
            msix.message(0),
            Some(MsiMessage {
                address: 0xffff_ffff_ffff_fffc,
                data: 0xffff_12ff
            })
        );
        // Past the table: reads 0, writes vanish, nothing panics.
        msix.table_read(u64::MAX - 1, &mut d);
        assert_eq!(d, [0; 4]);
        msix.table_write(u64::MAX - 1, &[1, 2, 3, 4]);
        // The BAR view routes table and PBA offsets and leaves the rest to the device.
        assert!(msix.bar_read(0x10, &mut d));
        assert!(msix.bar_read(0x800, &mut d));
        assert!(!msix.bar_read(0x400, &mut d));
        assert!(!msix.bar_write(0x808, &[0]));
        assert!(msix.bar_write(0x800, &[0xff]));
        msix.pba_read(0, &mut b);
        assert_eq!(b[0], 0, "the PBA is read-only");
        msix.reset();
        assert_eq!(msix.message(0).unwrap().address, 0);
        assert!(msix.is_masked(0));
    }

    #[test]
    fn bad_layouts_are_errors() {
        let sink: Arc<dyn MsiSink> = Arc::new(Sent::default());
        let e = |b, t, p, n| MsiX::new(b, t, p, n, sink.clone()).unwrap_err();
        assert_eq!(e(0, 0, 0x800, 0), MsixError::BadVectorCount(0));
        assert_eq!(e(0, 0, 0x8000, 2049), MsixError::BadVectorCount(2049));
        assert_eq!(
            e(6, 0, 0x800, 1),
            MsixError::BadPlacement { bar: 6, offset: 0 }
        );
        assert_eq!(
            e(0, 4, 0x800, 1),
            MsixError::BadPlacement { bar: 0, offset: 4 }
        );
        assert_eq!(e(0, 0, 0x10, 2), MsixError::Overlap);
        let big = MsiX::new(2, 0, 0x8000, 2048, sink.clone()).unwrap();
        assert_eq!(big.bar_size(), 0x10000);
    }
}
