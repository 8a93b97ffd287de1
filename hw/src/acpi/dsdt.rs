//! The Differentiated System Description Table: the AML the OS interprets.
//!
//! Spec: ACPI 6.5, 5.2.11.1 ("Differentiated System Description Table (DSDT)"), 7.4.2 (the
//! `\_Sx` system state packages: `Package { SLP_TYPa, SLP_TYPb, reserved, reserved }`), and
//! section 20 for the AML (built with [`super::aml`]).
//!
//! tandem's DSDT holds `Name (_S5, Package (4) { 5, 0, 0, 0 })`: all Linux needs to power off
//! through the PM1a control block (it evaluates `\_S5`, writes SLP_TYPa with SLP_EN to
//! PM1a_CNT; PM1b does not exist, so SLP_TYPb is unused); and, when the board has a PCI bus,
//! the root bridge `\_SB.PCI0` after it ([`super::pci_root`]). The table is revision 2 so AML
//! integers are 64 bits wide.
//!
//! Why SLP_TYP 5: the value is the board's choice (the spec leaves the encoding to the
//! chipset); 5 names the state it enters, as cloud-hypervisor's does, and is nonzero, so a PM1
//! control write with a cleared SLP_TYP field and SLP_EN set (a value of 0 is what the register
//! holds after reset and what a confused or probing OS writes) cannot power the machine off.
//! QEMU's PIIX4 uses 0 for S5 and ICH9 uses 7; nothing outside this DSDT and [`super::pm`]
//! depends on the number.
//! Known warts: no S3/S4 (suspend and hibernate are not offered), no `_PTS`, no ISA devices:
//! COM1, the RTC and the i8042 are found by legacy probing (IAPC_BOOT_ARCH says so), not as
//! ACPI devices.

use super::aml::{integer, name, package};
use super::pci_root::{self, PciAcpi};
use super::sdt::table;
use super::AcpiError;

/// The DSDT's signature.
pub const SIGNATURE: [u8; 4] = *b"DSDT";
/// Revision 2: 64-bit AML integers.
pub const REVISION: u8 = 2;
/// The SLP_TYP value of S5 (soft off) in `\_S5` and in the PM1 control block.
pub const S5_SLP_TYP: u8 = 5;

/// The AML body: `Name (_S5, Package (4) { slp_typ, 0, 0, 0 })`.
pub fn aml(slp_typ: u8) -> Result<Vec<u8>, AcpiError> {
    let pkg = package(&[integer(slp_typ.into()), integer(0), integer(0), integer(0)])?;
    Ok(name("_S5_", &pkg)?)
}

/// The DSDT, with the PCI root bridge if `pci` describes one.
pub fn dsdt(pci: Option<&PciAcpi>) -> Result<Vec<u8>, AcpiError> {
    let mut body = aml(S5_SLP_TYP)?;
    if let Some(pci) = pci {
        body.extend(pci_root::aml(pci)?);
    }
    table(SIGNATURE, REVISION, &body)
}

#[cfg(test)]
mod tests {
    use super::super::sdt::{valid_table, HEADER_LEN};
    use super::*;

    #[test]
    fn s5_package_decodes_by_hand() {
        let t = dsdt(None).unwrap();
        let (h, _) = valid_table(&t).unwrap();
        assert_eq!(&h.signature, b"DSDT");
        assert_eq!(h.revision, 2);
        let a = &t[HEADER_LEN..];
        assert_eq!(a.len(), 13);
        // NameOp
        assert_eq!(a[0], 0x08);
        // NameString: a single NameSeg, no prefix.
        assert_eq!(&a[1..5], b"_S5_");
        // PackageOp
        assert_eq!(a[5], 0x12);
        // PkgLength, one-byte form (bits 7-6 = 0): 7 bytes = itself, NumElements and 5 bytes
        // of elements, i.e. it reaches exactly the end of the table.
        assert_eq!(a[6] >> 6, 0);
        assert_eq!(usize::from(a[6] & 0x3f), a.len() - 6);
        // NumElements
        assert_eq!(a[7], 4);
        // BytePrefix 5 (SLP_TYPa), then ZeroOp three times.
        assert_eq!(&a[8..10], &[0x0a, 0x05]);
        assert_eq!(&a[10..13], &[0x00, 0x00, 0x00]);
    }

    #[test]
    fn other_sleep_types_encode_too() {
        // ZeroOp and OneOp are one byte, so the package is one byte shorter than with 5.
        assert_eq!(aml(0).unwrap()[6..], [0x06, 0x04, 0x00, 0x00, 0x00, 0x00]);
        assert_eq!(aml(1).unwrap()[6..], [0x06, 0x04, 0x01, 0x00, 0x00, 0x00]);
        assert_eq!(
            aml(7).unwrap()[6..],
            [0x07, 0x04, 0x0a, 0x07, 0x00, 0x00, 0x00]
        );
    }
}
