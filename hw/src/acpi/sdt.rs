//! The System Description Table header every ACPI table but the RSDP and FACS starts with,
//! and the checksum rule.
//!
//! Spec: ACPI 6.5, 5.2.6 ("System Description Table Header"): a 36-byte header of signature,
//! length (of the whole table, header included), revision, checksum (the byte that makes all
//! `length` bytes sum to zero modulo 256), OEM ID, OEM table ID, OEM revision, creator ID and
//! creator revision.
//!
//! Tables are built as whole byte vectors with the header zeroed, then [`seal`] fills the
//! header in last, so the length and checksum always describe the final bytes.
//! Known warts: the OEM and creator fields are fixed tandem values (nothing reads them but
//! quirk tables keyed on OEM IDs, which should not match a tandem machine).

use super::AcpiError;

/// Length of the header.
pub const HEADER_LEN: usize = 36;
/// OEM ID of every tandem table.
pub const OEM_ID: [u8; 6] = *b"TANDEM";
/// OEM table ID of every tandem table.
pub const OEM_TABLE_ID: [u8; 8] = *b"TANDEMPC";
/// OEM revision of every tandem table.
pub const OEM_REVISION: u32 = 1;
/// Creator ID (the "ASL compiler" that made the table).
pub const CREATOR_ID: [u8; 4] = *b"TNDM";
/// Creator revision.
pub const CREATOR_REVISION: u32 = 1;

/// Offset of the length field.
pub const LENGTH_OFFSET: usize = 4;
/// Offset of the revision byte.
pub const REVISION_OFFSET: usize = 8;
/// Offset of the checksum byte.
pub const CHECKSUM_OFFSET: usize = 9;

/// The byte that makes `bytes` (with this byte at a position holding 0) sum to zero.
pub fn checksum(bytes: &[u8]) -> u8 {
    let sum = bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    0u8.wrapping_sub(sum)
}

/// Whether `bytes` sum to zero modulo 256, as every checksummed ACPI structure must.
pub fn sums_to_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b)) == 0
}

/// Writes `value` little-endian at `offset`; out-of-range writes are dropped (table builders
/// only use offsets inside the vector they sized, so this never loses data in practice, and a
/// bug shows up as a test failure rather than a panic).
pub fn put(table: &mut [u8], offset: usize, value: &[u8]) {
    if let Some(dst) = offset
        .checked_add(value.len())
        .and_then(|end| table.get_mut(offset..end))
    {
        dst.copy_from_slice(value);
    }
}

/// Fills the header of `table` (which must start with [`HEADER_LEN`] bytes reserved for it):
/// signature, length = `table.len()`, revision, the tandem OEM fields, then the checksum.
pub fn seal(table: &mut [u8], signature: [u8; 4], revision: u8) -> Result<(), AcpiError> {
    if table.len() < HEADER_LEN {
        return Err(AcpiError::TableTooLarge(signature));
    }
    let length = u32::try_from(table.len()).map_err(|_| AcpiError::TableTooLarge(signature))?;
    put(table, 0, &signature);
    put(table, LENGTH_OFFSET, &length.to_le_bytes());
    put(table, REVISION_OFFSET, &[revision]);
    put(table, CHECKSUM_OFFSET, &[0]);
    put(table, 10, &OEM_ID);
    put(table, 16, &OEM_TABLE_ID);
    put(table, 24, &OEM_REVISION.to_le_bytes());
    put(table, 28, &CREATOR_ID);
    put(table, 32, &CREATOR_REVISION.to_le_bytes());
    let sum = checksum(table);
    put(table, CHECKSUM_OFFSET, &[sum]);
    Ok(())
}

/// A table of `body` behind a sealed header.
pub fn table(signature: [u8; 4], revision: u8, body: &[u8]) -> Result<Vec<u8>, AcpiError> {
    let mut t = vec![0u8; HEADER_LEN];
    t.extend_from_slice(body);
    seal(&mut t, signature, revision)?;
    Ok(t)
}

/// A table header read back from bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdtHeader {
    /// Four-character signature.
    pub signature: [u8; 4],
    /// Length of the whole table.
    pub length: u32,
    /// Table revision.
    pub revision: u8,
    /// The checksum byte as stored.
    pub checksum: u8,
    /// OEM ID.
    pub oem_id: [u8; 6],
}

/// Reads the header at the start of `bytes`; None if fewer than [`HEADER_LEN`] bytes.
pub fn parse_header(bytes: &[u8]) -> Option<SdtHeader> {
    let h = bytes.get(..HEADER_LEN)?;
    let arr = |r: std::ops::Range<usize>| h.get(r);
    Some(SdtHeader {
        signature: arr(0..4)?.try_into().ok()?,
        length: u32::from_le_bytes(arr(4..8)?.try_into().ok()?),
        revision: h[REVISION_OFFSET],
        checksum: h[CHECKSUM_OFFSET],
        oem_id: arr(10..16)?.try_into().ok()?,
    })
}

/// The table starting at `bytes` if its header is readable, its length fits in `bytes`, and
/// its bytes sum to zero: the checks an OS makes before trusting a table.
pub fn valid_table(bytes: &[u8]) -> Option<(SdtHeader, &[u8])> {
    let h = parse_header(bytes)?;
    let len = usize::try_from(h.length).ok()?;
    let t = bytes.get(..len)?;
    (len >= HEADER_LEN && sums_to_zero(t)).then_some((h, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_tables_have_length_and_zero_sum() {
        let t = table(*b"TEST", 3, &[1, 2, 3, 0xff]).unwrap();
        assert_eq!(t.len(), 40);
        let (h, bytes) = valid_table(&t).unwrap();
        assert_eq!(&h.signature, b"TEST");
        assert_eq!(h.length, 40);
        assert_eq!(h.revision, 3);
        assert_eq!(h.oem_id, OEM_ID);
        assert_eq!(bytes.len(), 40);
        assert_eq!(&t[16..24], b"TANDEMPC");
        assert_eq!(&t[28..32], b"TNDM");
        // One flipped bit breaks the sum.
        let mut bad = t.clone();
        bad[37] ^= 1;
        assert!(valid_table(&bad).is_none());
        // A length past the end of the bytes is rejected, not read out of bounds.
        assert!(valid_table(&t[..39]).is_none());
        assert!(parse_header(&t[..35]).is_none());
    }

    #[test]
    fn checksum_and_put_never_panic() {
        assert_eq!(checksum(&[]), 0);
        assert_eq!(checksum(&[1, 2]), 0xfd);
        assert!(sums_to_zero(&[1, 2, 0xfd]));
        let mut small = [0u8; 4];
        put(&mut small, 2, &[1, 2, 3]);
        put(&mut small, usize::MAX, &[1]);
        assert_eq!(small, [0; 4]);
        put(&mut small, 2, &[1, 2]);
        assert_eq!(small, [0, 0, 1, 2]);
        assert!(seal(&mut [0u8; 10], *b"TEST", 1).is_err());
    }
}
