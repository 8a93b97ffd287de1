//! The PCI bus of the `pc` board: an i440FX host bridge at 00:00.0, configuration mechanism
//! #1 at 0xcf8/0xcfc, BARs the board assigns (there is no firmware) in the MMIO window below
//! 4 GiB and in port space, INTx routed to interrupt lines, MSI/MSI-X to an
//! [`MsiSink`](tandem_softmmu::MsiSink).
//!
//! | module | what |
//! | --- | --- |
//! | [`device`] | the [`PciDevice`] trait a function implements |
//! | [`config`] | [`ConfigSpace`]: the header image, write masks, BARs, capability list |
//! | [`msix`], [`msi`] | the MSI-X capability, table and PBA; the MSI capability |
//! | [`host_bridge`] | the i440FX at slot 0 |
//! | [`bus`] | [`PciBus`]: slots, config access, BAR assignment, reset |
//! | [`config_ports`] | configuration mechanism #1 (ports 0xCF8-0xCFF) |
//! | [`decode`] | current BAR placements and the MMIO and I/O window devices |
//! | [`bar_alloc`] | where BARs go in the windows |
//! | [`intx`] | the INTx swizzle, the four lines' GSIs, wired-OR sharing, polarity |
//!
//! # How the board wires it (hw/src/pc.rs)
//!
//! 1. Choose the INTx GSIs: [`PciIrqRouting::IOAPIC`] (16-19) when an I/O APIC is present
//!    (KVM's in-kernel irqchip or the board's `BoardIrqchip::Apic`), [`PciIrqRouting::PIC`]
//!    (10, 11, 5, 9) with the 8259 alone. With the board's own I/O APIC use
//!    `wire: IntxWire::ActiveLow` (see [`intx`] on polarity); otherwise `IntxWire::Logical`.
//! 2. `let pci = PciBus::new(PciBusConfig { wire, ..PciBusConfig::pc(routing) },
//!    irq_sink.clone())?;` — the host bridge is in slot 0.
//! 3. Add devices: `pci.add(Arc::new(Mutex::new(dev)))?` (lowest free slot, returned) or
//!    `pci.add_at(slot, dev)?`. Each gets its INTx line through [`PciDevice::connect_intx`].
//! 4. `pci.assign_bars()?` once every device is added.
//! 5. Map it, before `map.build()`: `pci.register(&mut ports, &mut map)?` — ports 0xCF8-0xCFF,
//!    the I/O window 0xC000-0xFFFF, the MMIO window 0xE0000000-0xFEBFFFFF.
//! 6. ACPI: `AcpiConfig { pci: Some(PciAcpi::new(&pci.config())), ..AcpiConfig::pc(cpus) }`
//!    puts `\_SB.PCI0` with its `_CRS` and `_PRT` in the DSDT
//!    ([`crate::acpi::pci_root`]), so Linux finds the bus with ACPI on.
//! 7. On a machine reset, after the interrupt controllers' reset: `pci.reset()?`.
//! 8. Under KVM, [`PciBus::placements`] and [`PciBus::on_placement_change`] say where each BAR
//!    decodes, for ioeventfds.

pub mod bar_alloc;
pub mod bus;
pub mod config;
pub mod config_ports;
pub mod decode;
pub mod device;
pub mod host_bridge;
pub mod intx;
pub mod msi;
pub mod msix;
#[cfg(test)]
pub(crate) mod testing;

pub use bus::{
    PciBus, PciBusConfig, PciError, PciWindow, SharedPciDevice, PC_IO_WINDOW, PC_MMIO_WINDOW,
};
pub use config::{ConfigError, ConfigSpace, PciIds};
pub use config_ports::{CONFIG_PORTS_BASE, CONFIG_PORTS_LEN};
pub use decode::BarPlacement;
pub use device::{BarKind, PciDevice};
pub use intx::{IntxRouter, IntxWire, PciIrqRouting};
pub use msi::Msi;
pub use msix::{MsiMessage, MsiX, MsixError};
