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

use super::sdt::{checksum, put, sums_to_zero, OEM_ID};

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

/// Searches guest-physical `[start, end)` for an RSDP the way an IA-PC OS does: on 16-byte
/// boundaries, the signature, then the ACPI 1.0 checksum and, from revision 2, the extended
/// one over `length` bytes. `read` fills a buffer from guest memory, false where nothing backs
/// it (such addresses are skipped). Returns the first valid RSDP's address.
pub fn find(start: u64, end: u64, mut read: impl FnMut(u64, &mut [u8]) -> bool) -> Option<u64> {
    let mut page = [0u8; 4096];
    let mut at = start.checked_add(15)? & !15;
    while at < end {
        let page_end = (at | 0xfff).saturating_add(1).min(end);
        let chunk = &mut page[..(page_end - at) as usize];
        if read(at, chunk) {
            for off in (0..chunk.len()).step_by(16) {
                if chunk[off..].starts_with(&SIGNATURE) {
                    let addr = at + off as u64;
                    if valid_at(addr, &mut read) {
                        return Some(addr);
                    }
                }
            }
        }
        at = page_end;
    }
    None
}

/// Whether the bytes at `addr` are a well-formed RSDP (both checksums).
fn valid_at(addr: u64, read: &mut impl FnMut(u64, &mut [u8]) -> bool) -> bool {
    let mut r = [0u8; RSDP_LEN];
    if !read(addr, &mut r[..V1_LEN]) || r[..8] != SIGNATURE || !sums_to_zero(&r[..V1_LEN]) {
        return false;
    }
    if r[REVISION_OFFSET] < 2 {
        return true;
    }
    // The extended structure is 36 bytes; a larger length would only add reserved bytes.
    read(addr, &mut r)
        && r[LENGTH_OFFSET..LENGTH_OFFSET + 4] == (RSDP_LEN as u32).to_le_bytes()
        && sums_to_zero(&r)
}

#[cfg(test)]
mod tests {
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

    /// Guest memory of the test: `mem` at `base`, nothing elsewhere.
    fn reader(base: u64, mem: &[u8]) -> impl FnMut(u64, &mut [u8]) -> bool + '_ {
        move |addr, buf| {
            let Some(off) = addr.checked_sub(base) else {
                return false;
            };
            let range = usize::try_from(off)
                .ok()
                .and_then(|o| Some(o..o.checked_add(buf.len())?));
            match range.and_then(|r| mem.get(r)) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    true
                }
                None => false,
            }
        }
    }

    #[test]
    fn find_takes_the_first_valid_rsdp_on_a_16_byte_boundary() {
        let mut mem = vec![0u8; 0x3000];
        let good = rsdp(0xe_1000);
        // Misaligned, then a bad checksum, then a good one past a page boundary.
        mem[0x108..0x108 + 36].copy_from_slice(&good);
        let mut bad = good;
        bad[10] ^= 1;
        mem[0x200..0x200 + 36].copy_from_slice(&bad);
        mem[0x1ff0..0x1ff0 + 36].copy_from_slice(&good);
        assert_eq!(
            find(0xe_0000, 0xe_3000, reader(0xe_0000, &mem)),
            Some(0xe_1ff0)
        );
        // A search window that misses it, or memory that reads nothing.
        assert_eq!(find(0xe_2000, 0xe_3000, reader(0xe_0000, &mem)), None);
        assert_eq!(find(0xe_0000, 0x10_0000, |_, _| false), None);
        // The extended checksum counts from revision 2.
        let mut ext = good;
        ext[33] = 1;
        mem[0x1ff0..0x1ff0 + 36].copy_from_slice(&ext);
        assert_eq!(find(0xe_0000, 0xe_3000, reader(0xe_0000, &mem)), None);
    }

    #[test]
    fn find_copes_with_any_window() {
        let mem = vec![0u8; 64];
        for (start, end) in [(0, 0), (u64::MAX - 20, u64::MAX), (5, 3), (0, 100)] {
            assert_eq!(find(start, end, reader(0, &mem)), None);
        }
    }
}
