//! The Firmware ACPI Control Structure: the waking vector and the global lock.
//!
//! Spec: ACPI 6.5, 5.2.10 ("Firmware ACPI Control Structure (FACS)"): 64 bytes, 64-byte
//! aligned, no checksum. A FADT without the HW_REDUCED_ACPI flag must point at one.
//! This one is all zeros but its signature, length and version: no hardware signature (so an
//! OS never thinks the hardware changed across a hibernation), no waking vector (S3 is not
//! offered), global lock free, no S4BIOS.
//! Known warts: the board maps it in ROM, so guest writes to it vanish: the OS can never see
//! the global lock owned by firmware (there is none) and writes of a waking vector are lost
//! (harmless: only S5 is offered). Linux only writes here for S3 or when AML takes the global
//! lock, which tandem's DSDT never does.

use super::sdt::put;

/// Length of the FACS.
pub const FACS_LEN: usize = 64;
/// Its required alignment.
pub const FACS_ALIGN: u64 = 64;
/// The FACS's signature.
pub const SIGNATURE: [u8; 4] = *b"FACS";
/// Version of the table layout (2 since ACPI 4.0).
pub const VERSION: u8 = 2;

/// The FACS.
pub fn facs() -> [u8; FACS_LEN] {
    let mut f = [0u8; FACS_LEN];
    put(&mut f, 0, &SIGNATURE);
    put(&mut f, 4, &(FACS_LEN as u32).to_le_bytes());
    put(&mut f, 32, &[VERSION]);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_length_version() {
        let f = facs();
        assert_eq!(&f[..4], b"FACS");
        assert_eq!(u32::from_le_bytes(f[4..8].try_into().unwrap()), 64);
        assert_eq!(f[32], 2);
        // Global lock (offset 16) free, flags (20) clear.
        assert_eq!(&f[16..24], &[0; 8]);
    }
}
