//! What a PCI function is to the bus: a configuration space and the BARs it decodes.
//!
//! Devices usually embed a [`ConfigSpace`](super::config::ConfigSpace) and forward the config
//! accesses to it. The bus reads the BAR registers and the command register through
//! `config_read` to route guest accesses, so a device's BAR registers must follow the standard
//! layout (offset 0x10 + 4 * index, type bits as declared by `bars`).

use tandem_softmmu::IrqLine;

/// The kind of a base address register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    /// 32-bit memory BAR.
    Memory32,
    /// 64-bit memory BAR (takes two BAR slots).
    Memory64 {
        /// Prefetchable.
        prefetchable: bool,
    },
    /// I/O port BAR.
    Io,
}

impl BarKind {
    /// How many BAR registers it takes: two for a 64-bit BAR, one otherwise.
    pub fn registers(self) -> usize {
        match self {
            BarKind::Memory64 { .. } => 2,
            BarKind::Memory32 | BarKind::Io => 1,
        }
    }
}

/// One PCI function on the bus. The bus owns slot numbering, BAR placement and the windows
/// that route guest accesses to [`PciDevice::bar_read`]/[`PciDevice::bar_write`] while the
/// function's command register enables them.
pub trait PciDevice: Send {
    /// A configuration-space read of 1, 2 or 4 bytes at `offset` (0..4096).
    fn config_read(&mut self, offset: u16, data: &mut [u8]);
    /// A configuration-space write of 1, 2 or 4 bytes at `offset` (0..4096).
    fn config_write(&mut self, offset: u16, data: &[u8]);
    /// The function's BARs: (index 0-5, kind, size in bytes, a power of two).
    fn bars(&self) -> Vec<(u8, BarKind, u64)>;
    /// A guest read at `offset` inside BAR `bar`.
    fn bar_read(&mut self, bar: u8, offset: u64, data: &mut [u8]);
    /// A guest write at `offset` inside BAR `bar`.
    fn bar_write(&mut self, bar: u8, offset: u64, data: &[u8]);
    /// The interrupt line the function's INTx pin (config 0x3d) is routed to: the bus calls
    /// this when the function is added, if the pin is 1-4. Level true means asserted.
    fn connect_intx(&mut self, _line: IrqLine) {}
    /// A machine reset: back to the power-on state (the bus then assigns BARs again and
    /// rewrites the interrupt line register, as firmware would).
    fn reset(&mut self) {}
}
