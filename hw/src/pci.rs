//! The PCI bus of the `pc` board: an i440FX host bridge at 00:00.0, configuration mechanism
//! #1 at 0xcf8/0xcfc, BARs the board assigns (there is no firmware) in the MMIO window below
//! 4 GiB and in port space, INTx routed to interrupt lines, MSI/MSI-X to an
//! [`MsiSink`](tandem_softmmu::MsiSink).

pub mod device;

pub use device::{BarKind, PciDevice};
