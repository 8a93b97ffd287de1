//! Format probing by magic, as QEMU does when no `format=` is given.
//!
//! Only the first bytes are looked at: "QFI\xfb" is qcow2, "QED\0" is QED, anything else is raw.
//! Probing is a convenience with a known hazard (a guest writing a qcow2 header into its raw
//! disk); [`crate::raw`] refuses such writes on probed images.

/// The number of bytes [`probe`] looks at.
pub const PROBE_LEN: usize = 512;

/// qcow2's magic.
pub const QCOW2_MAGIC: &[u8; 4] = b"QFI\xfb";
/// QED's magic.
pub const QED_MAGIC: &[u8; 4] = b"QED\0";

/// The format whose magic starts `head` (the image's first bytes, possibly fewer than
/// [`PROBE_LEN`]): `"qcow2"`, `"qed"` or `"raw"`.
pub fn probe(head: &[u8]) -> &'static str {
    if head.starts_with(QCOW2_MAGIC) {
        "qcow2"
    } else if head.starts_with(QED_MAGIC) {
        "qed"
    } else {
        "raw"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics() {
        assert_eq!(probe(b"QFI\xfb\0\0\0\x03"), "qcow2");
        assert_eq!(probe(b"QED\0"), "qed");
        assert_eq!(probe(b"QFI"), "raw");
        assert_eq!(probe(b""), "raw");
        assert_eq!(probe(&[0u8; 512]), "raw");
    }
}
