//! The Extended System Description Table: the list of the other tables' 64-bit addresses.
//!
//! Spec: ACPI 6.5, 5.2.8 ("Extended System Description Table (XSDT)"): the standard header,
//! revision 1, then one 8-byte physical address per table (the FADT, the MADT; the DSDT and
//! FACS are reached through the FADT, not listed here).
//! Known warts: the entries start at offset 36, so they are 4- but not 8-byte aligned, as on
//! real firmware; readers copy them unaligned.

use super::sdt::table;
use super::AcpiError;

/// The XSDT's signature.
pub const SIGNATURE: [u8; 4] = *b"XSDT";
/// The XSDT's revision.
pub const REVISION: u8 = 1;

/// An XSDT listing the tables at `entries`.
pub fn xsdt(entries: &[u64]) -> Result<Vec<u8>, AcpiError> {
    let body: Vec<u8> = entries.iter().flat_map(|a| a.to_le_bytes()).collect();
    table(SIGNATURE, REVISION, &body)
}

/// Length of an XSDT of `n` entries.
pub fn xsdt_len(n: usize) -> usize {
    super::sdt::HEADER_LEN + 8 * n
}

#[cfg(test)]
mod tests {
    use super::super::sdt::valid_table;
    use super::*;

    #[test]
    fn entries_follow_the_header() {
        let t = xsdt(&[0x1000, 0xdead_beef_0000]).unwrap();
        assert_eq!(t.len(), xsdt_len(2));
        let (h, _) = valid_table(&t).unwrap();
        assert_eq!(&h.signature, b"XSDT");
        assert_eq!(h.revision, 1);
        assert_eq!(u64::from_le_bytes(t[36..44].try_into().unwrap()), 0x1000);
        assert_eq!(
            u64::from_le_bytes(t[44..52].try_into().unwrap()),
            0xdead_beef_0000
        );
    }
}
