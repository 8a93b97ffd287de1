//! The PCI root bridge in the DSDT: `\_SB.PCI0`, which is how an OS with ACPI finds PCI bus 0.
//!
//! Spec: ACPI 6.5, 6.1.5 (`_HID`), 6.1.12 (`_UID`), 6.5.5 (`_BBN`), 6.2.2 (`_CRS`), 6.2.13
//! (`_PRT`); PCI Firmware 3.3, 4.1.1 (PNP0A03). Linux's acpi_pci_root driver binds to the
//! PNP0A03 device, takes its bus range and windows from `_CRS` and its INTx routing from
//! `_PRT`; without it, the legacy scan runs only with `pci=noacpi`. The AML is, as ASL:
//!
//! ```text
//! Scope (_SB) {
//!     Device (PCI0) {
//!         Name (_HID, EisaId ("PNP0A03"))
//!         Name (_UID, Zero)
//!         Name (_BBN, Zero)
//!         Name (_CRS, ResourceTemplate () {
//!             WordBusNumber (..., 0x0000, 0x00FF, ...)            // bus 0-255
//!             IO (Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08)          // mechanism #1
//!             WordIO (..., 0x0000, 0x0CF7, ...)                   // ports below it
//!             WordIO (..., 0x0D00, 0xFFFF, ...)                   // ports above it
//!             DWordMemory (..., NonCacheable, ReadWrite, ..., mmio base, mmio last, ...)
//!         })
//!         Name (_PRT, Package () {
//!             Package () { 0x0000FFFF, 0, Zero, gsi }, ...       // slot 0-31 x INTA-INTD
//!         })
//!     }
//! }
//! ```
//!
//! `_PRT` entries name GSIs directly (source `Zero`, no link devices), so the routing is fixed
//! by the board ([`PciIrqRouting`]) and the same function computes it here and in the bus; ACPI
//! declares such interrupts level-triggered, active-low (see [`crate::pci::intx`] on polarity).
//! `_ADR` is left out although QEMU's DSDT has it: a device with both `_HID` and `_ADR` draws
//! an iasl warning, and Linux needs only `_HID` for a root bridge. `_SB` is written without the
//! root prefix, as iasl shortens it at the root scope, so a table compiled back from the
//! disassembly has the same bytes. Known warts: no `_OSC` (Linux then keeps native PCIe
//! services off, which a conventional bus has none of), no legacy VGA window, the MMIO window
//! is one range (a QWordMemory one above 4 GiB if it lies there).

use crate::pci::{PciBusConfig, PciIrqRouting, PciWindow};

use super::aml::{device, eisa_id, integer, name, package, scope, AmlError};
use super::resource::{
    dword_memory, io, qword_memory, template, word_bus_number, word_io, Cacheability,
};

/// What the DSDT says about PCI bus 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PciAcpi {
    /// The window memory BARs are placed in (a `_CRS` memory range).
    pub mmio: PciWindow,
    /// The GSIs of the four INTx lines (the `_PRT`).
    pub routing: PciIrqRouting,
}

impl PciAcpi {
    /// The description of a bus built with `config`.
    pub fn new(config: &PciBusConfig) -> Self {
        Self {
            mmio: config.mmio,
            routing: config.routing,
        }
    }
}

/// `_HID` of a PCI root bridge.
pub const PCI_ROOT_HID: &str = "PNP0A03";
/// Slots the `_PRT` covers.
const SLOTS: u32 = 32;

/// The `_CRS` resource template.
fn crs(mmio: PciWindow) -> Result<Vec<u8>, AmlError> {
    let memory = match (u32::try_from(mmio.base), u32::try_from(mmio.last())) {
        (Ok(min), Ok(max)) => dword_memory(min, max, Cacheability::NonCacheable)?,
        _ => qword_memory(mmio.base, mmio.last(), Cacheability::NonCacheable)?,
    };
    template(&[
        word_bus_number(0, 0xff)?,
        io(0xcf8, 0xcf8, 1, 8),
        word_io(0, 0xcf7)?,
        word_io(0xd00, 0xffff)?,
        memory,
    ])
}

/// The `_PRT` package: every slot's four pins, in slot then pin order.
fn prt(routing: PciIrqRouting) -> Result<Vec<u8>, AmlError> {
    let mut entries = Vec::new();
    for slot in 0..SLOTS {
        for pin in 0..4u8 {
            // Slots below 32 fit the u8 the routing takes.
            let gsi = routing
                .gsi(slot as u8, pin + 1)
                .ok_or_else(|| AmlError::BadRange {
                    min: slot.into(),
                    max: pin.into(),
                })?;
            entries.push(package(&[
                integer(u64::from(slot) << 16 | 0xffff),
                integer(pin.into()),
                integer(0),
                integer(gsi.into()),
            ])?);
        }
    }
    package(&entries)
}

/// `Scope (_SB) { Device (PCI0) { ... } }`.
pub fn aml(pci: &PciAcpi) -> Result<Vec<u8>, AmlError> {
    let pci0 = device(
        "PCI0",
        &[
            name("_HID", &integer(eisa_id(PCI_ROOT_HID)?.into()))?,
            name("_UID", &integer(0))?,
            name("_BBN", &integer(0))?,
            name("_CRS", &crs(pci.mmio)?)?,
            name("_PRT", &prt(pci.routing)?)?,
        ],
    )?;
    scope("_SB", &[pci0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::PC_MMIO_WINDOW;

    fn pc() -> PciAcpi {
        PciAcpi {
            mmio: PC_MMIO_WINDOW,
            routing: PciIrqRouting::IOAPIC,
        }
    }

    #[test]
    fn prt_entries_map_each_slot_and_pin_to_its_gsi() {
        let p = prt(PciIrqRouting::IOAPIC).unwrap();
        // PackageOp, a 2-byte PkgLength, 128 elements.
        assert_eq!((p[0], p[1] >> 6, p[3]), (0x12, 1, 128));
        // Slot 0 INTA#: Package (4) { 0xFFFF, Zero, Zero, 0x10 }.
        assert_eq!(
            p[4..14],
            [0x12, 0x09, 4, 0x0b, 0xff, 0xff, 0, 0, 0x0a, 0x10]
        );
        // Slot 1 INTD# (entry 7): 0x0001FFFF, 3, Zero, (1 + 3) % 4 = line 0 -> 0x10.
        let e7 = [
            0x12, 0x0c, 4, 0x0c, 0xff, 0xff, 0x01, 0x00, 0x0a, 0x03, 0, 0x0a, 0x10,
        ];
        assert!(p.windows(e7.len()).any(|w| w == e7));
    }

    #[test]
    fn crs_has_the_bus_range_config_ports_io_and_memory_windows() {
        let c = crs(PC_MMIO_WINDOW).unwrap();
        // Buffer: BufferOp, 2-byte PkgLength, BytePrefix size.
        assert_eq!(c[0], 0x11);
        let size = usize::from(c[4]);
        assert_eq!(c[3], 0x0a);
        assert_eq!(c.len(), 5 + size);
        let body = &c[5..];
        assert_eq!(body.len(), 16 + 8 + 16 + 16 + 26 + 2);
        assert_eq!(body[..2], [0x88, 0x0d]);
        assert_eq!(body[16], 0x47);
        assert_eq!(body[56], 0x87);
        assert_eq!(body[body.len() - 2..], [0x79, 0]);
        // A window above 4 GiB needs a QWordMemory.
        let high = crs(PciWindow {
            base: 0x80_0000_0000,
            len: 0x10_0000_0000,
        })
        .unwrap();
        assert_eq!(high.len(), c.len() + 20);
        assert!(high.windows(3).any(|w| w == [0x8a, 0x2b, 0]));
    }

    #[test]
    fn the_root_bridge_device_sits_under_sb() {
        let a = aml(&pc()).unwrap();
        assert_eq!(a[0], 0x10, "ScopeOp");
        let at = a.windows(4).position(|w| w == b"_SB_").unwrap();
        assert_eq!(a[at + 4..at + 6], [0x5b, 0x82]);
        assert!(a.windows(9).any(|w| w == b"\x08_HID\x0c\x41\xd0\x0a"));
        for n in [b"_UID", b"_BBN", b"_CRS", b"_PRT"] {
            assert!(a.windows(5).any(|w| w[0] == 0x08 && w[1..] == n[..]));
        }
    }
}
