//! The Root System Description Pointer: where an OS starts looking for ACPI.
//!
//! Spec: ACPI 6.5, 5.2.5.3 ("Root System Description Pointer (RSDP) Structure"), and 5.2.5.1
//! for where an IA-PC OS looks: the first KiB of the EBDA, then 0xE0000-0xFFFFF, on 16-byte
//! boundaries.
//!
//! Revision 2 (ACPI 2.0+) layout, 36 bytes: "RSD PTR ", checksum over the first 20 bytes,
//! OEM ID, revision, RSDT address (32-bit), length, XSDT address (64-bit), extended checksum
//! over all 36 bytes, three reserved bytes.
//! Known warts: there is no RSDT (its address is 0), so an OS that only knows ACPI 1.0 (or Linux
//! booted with `acpi=rsdt`) finds no tables; every current OS follows the XSDT when the
//! revision is 2 or more.

use super::sdt::{checksum, put, OEM_ID};

/// Length of a revision-2 RSDP.
pub const RSDP_LEN: usize = 36;
/// The RSDP's signature.
pub const SIGNATURE: [u8; 8] = *b"RSD PTR ";
/// Offset of the ACPI 1.0 checksum (covering bytes 0..20).
pub const CHECKSUM_OFFSET: usize = 8;
/// Offset of the revision byte.
pub const REVISION_OFFSET: usize = 15;
/// Offset of the RSDT address.
pub const RSDT_OFFSET: usize = 16;
/// Offset of the length field.
pub const LENGTH_OFFSET: usize = 20;
/// Offset of the XSDT address.
pub const XSDT_OFFSET: usize = 24;
/// Offset of the extended checksum (covering all 36 bytes).
pub const EXT_CHECKSUM_OFFSET: usize = 32;
/// Bytes the ACPI 1.0 checksum covers.
pub const V1_LEN: usize = 20;

/// A revision-2 RSDP pointing at the XSDT at `xsdt_addr`.
pub fn rsdp(xsdt_addr: u64) -> [u8; RSDP_LEN] {
    let mut r = [0u8; RSDP_LEN];
    put(&mut r, 0, &SIGNATURE);
    put(&mut r, 9, &OEM_ID);
    put(&mut r, REVISION_OFFSET, &[2]);
    // No RSDT: see the module doc.
    put(&mut r, RSDT_OFFSET, &0u32.to_le_bytes());
    put(&mut r, LENGTH_OFFSET, &(RSDP_LEN as u32).to_le_bytes());
    put(&mut r, XSDT_OFFSET, &xsdt_addr.to_le_bytes());
    // The first checksum must be right before the extended one is computed over it.
    r[CHECKSUM_OFFSET] = checksum(&r[..V1_LEN]);
    r[EXT_CHECKSUM_OFFSET] = checksum(&r);
    r
}

#[cfg(test)]
mod tests {
    use super::super::sdt::sums_to_zero;
    use super::*;

    #[test]
    fn both_checksums_hold_and_fields_sit_at_their_offsets() {
        let r = rsdp(0x1234_5678_9abc);
        assert_eq!(&r[..8], b"RSD PTR ");
        assert!(sums_to_zero(&r[..20]));
        assert!(sums_to_zero(&r));
        assert_eq!(r[15], 2);
        assert_eq!(&r[9..15], b"TANDEM");
        assert_eq!(u32::from_le_bytes(r[20..24].try_into().unwrap()), 36);
        assert_eq!(
            u64::from_le_bytes(r[24..32].try_into().unwrap()),
            0x1234_5678_9abc
        );
        assert_eq!(&r[33..], &[0, 0, 0]);
    }
}
