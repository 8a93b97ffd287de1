//! A tiny ACPI Machine Language (AML) byte builder: just what the DSDT needs.
//!
//! Spec: ACPI 6.5, section 20 ("ACPI Machine Language (AML) Specification"): 20.2.2 (name
//! objects: NameSeg, NameString, the root and parent prefixes, DualNamePrefix and
//! MultiNamePrefix), 20.2.3 (data objects: ZeroOp, OneOp, OnesOp, Byte/Word/DWord/QWordPrefix),
//! 20.2.4 (PkgLength), 20.2.5 (DefName, DefScope, DefPackage, DefBuffer, DefDevice); 6.1.5
//! (the EISA ID encoding of `_HID`).
//!
//! Every function returns the encoded bytes of one term, so terms nest by concatenation:
//! `name("_S5_", &package(&[integer(5), integer(0)])?)?`. Nothing is interpreted or resolved:
//! the builder cannot tell whether a name exists in the namespace. Encodings are the ones
//! ACPICA's `iasl` picks (shortest integers and PkgLengths), so a table compiled back from its
//! disassembly has the same bytes.
//! Known warts: no methods, fields or strings; `OnesOp` means all-ones in the table's integer
//! width (64 bits in a revision-2 DSDT), so `integer(u64::MAX)` is only right in such a table.

use thiserror::Error;

/// `ZeroOp`: the integer 0.
pub const ZERO_OP: u8 = 0x00;
/// `OneOp`: the integer 1.
pub const ONE_OP: u8 = 0x01;
/// `OnesOp`: all bits set.
pub const ONES_OP: u8 = 0xff;
/// `BytePrefix`: an 8-bit integer follows.
pub const BYTE_PREFIX: u8 = 0x0a;
/// `WordPrefix`: a 16-bit integer follows.
pub const WORD_PREFIX: u8 = 0x0b;
/// `DWordPrefix`: a 32-bit integer follows.
pub const DWORD_PREFIX: u8 = 0x0c;
/// `QWordPrefix`: a 64-bit integer follows.
pub const QWORD_PREFIX: u8 = 0x0e;
/// `NameOp`: DefName.
pub const NAME_OP: u8 = 0x08;
/// `PackageOp`: DefPackage.
pub const PACKAGE_OP: u8 = 0x12;
/// `RootChar` (`\`).
pub const ROOT_CHAR: u8 = 0x5c;
/// `ParentPrefixChar` (`^`).
pub const PARENT_PREFIX: u8 = 0x5e;
/// `DualNamePrefix`: two NameSegs follow.
pub const DUAL_NAME_PREFIX: u8 = 0x2e;
/// `MultiNamePrefix`: a count and that many NameSegs follow.
pub const MULTI_NAME_PREFIX: u8 = 0x2f;
/// `NullName`: a name string with no segments.
pub const NULL_NAME: u8 = 0x00;
/// `ScopeOp`: DefScope.
pub const SCOPE_OP: u8 = 0x10;
/// `BufferOp`: DefBuffer.
pub const BUFFER_OP: u8 = 0x11;
/// `ExtOpPrefix`: the first byte of two-byte opcodes.
pub const EXT_OP_PREFIX: u8 = 0x5b;
/// `DeviceOp` (after [`EXT_OP_PREFIX`]): DefDevice.
pub const DEVICE_OP: u8 = 0x82;

/// The largest value a PkgLength can encode (28 bits).
pub const MAX_PKG_LENGTH: usize = (1 << 28) - 1;

/// Why a term could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AmlError {
    /// A path segment is empty, longer than 4 characters, or uses characters AML forbids.
    #[error("bad AML name segment {0:?}")]
    BadNameSeg(String),
    /// A name string has more than 255 segments.
    #[error("AML name has {0} segments (at most 255)")]
    TooManySegments(usize),
    /// A package's contents are too long for a PkgLength.
    #[error("AML package of {0} bytes is too long for a PkgLength")]
    TooLong(usize),
    /// A Package holds at most 255 elements (NumElements is one byte).
    #[error("AML package with {0} elements (at most 255)")]
    TooManyElements(usize),
    /// An EISA ID is three uppercase letters and four hex digits (`PNP0A03`).
    #[error("bad EISA ID {0:?}")]
    BadEisaId(String),
    /// A resource descriptor's range is empty or its length does not fit the descriptor.
    #[error("resource range {min:#x}-{max:#x} cannot be described")]
    BadRange {
        /// First address.
        min: u64,
        /// Last address.
        max: u64,
    },
}

/// Encodes the PkgLength of a package whose contents after the PkgLength are `content_len`
/// bytes. The encoded length counts the PkgLength bytes themselves (20.2.4), which is why the
/// number of bytes is chosen first.
pub fn pkg_length(content_len: usize) -> Result<Vec<u8>, AmlError> {
    // One byte holds 6 bits; each of up to three more bytes adds 8 bits above the low nibble.
    if content_len < 63 {
        // content + 1 <= 63 fits the single-byte form.
        return Ok(vec![(content_len + 1) as u8]);
    }
    for extra in 1..=3usize {
        let total = content_len
            .checked_add(extra + 1)
            .ok_or(AmlError::TooLong(content_len))?;
        if total < 1 << (4 + 8 * extra) {
            let mut out = Vec::with_capacity(extra + 1);
            // Lead byte: bits 7-6 count the following bytes, bits 3-0 are the low nibble.
            out.push(((extra as u8) << 6) | (total & 0xf) as u8);
            for i in 0..extra {
                out.push((total >> (4 + 8 * i)) as u8);
            }
            return Ok(out);
        }
    }
    Err(AmlError::TooLong(content_len))
}

/// Encodes an integer in its shortest form (ZeroOp, OneOp, OnesOp or a prefixed constant).
pub fn integer(value: u64) -> Vec<u8> {
    match value {
        0 => vec![ZERO_OP],
        1 => vec![ONE_OP],
        u64::MAX => vec![ONES_OP],
        v if v <= 0xff => vec![BYTE_PREFIX, v as u8],
        v if v <= 0xffff => {
            let mut out = vec![WORD_PREFIX];
            out.extend_from_slice(&(v as u16).to_le_bytes());
            out
        }
        v if v <= 0xffff_ffff => {
            let mut out = vec![DWORD_PREFIX];
            out.extend_from_slice(&(v as u32).to_le_bytes());
            out
        }
        v => {
            let mut out = vec![QWORD_PREFIX];
            out.extend_from_slice(&v.to_le_bytes());
            out
        }
    }
}

/// Encodes one NameSeg: 1 to 4 characters, the first `A-Z` or `_`, the others `A-Z`, `0-9`
/// or `_`, padded with `_` to four bytes as ASL compilers do.
pub fn name_seg(seg: &str) -> Result<[u8; 4], AmlError> {
    let bytes = seg.as_bytes();
    let lead_ok = |c: u8| c.is_ascii_uppercase() || c == b'_';
    let ok = !bytes.is_empty()
        && bytes.len() <= 4
        && lead_ok(bytes[0])
        && bytes[1..].iter().all(|&c| lead_ok(c) || c.is_ascii_digit());
    if !ok {
        return Err(AmlError::BadNameSeg(seg.to_string()));
    }
    let mut out = [b'_'; 4];
    out[..bytes.len()].copy_from_slice(bytes);
    Ok(out)
}

/// Encodes a NameString such as `_S5_`, `\_SB.PCI0` or `^FOO`: an optional root (`\`) or
/// parent (`^`, repeatable) prefix, then dot-separated segments.
pub fn name_string(path: &str) -> Result<Vec<u8>, AmlError> {
    let mut out = Vec::new();
    let rest = if let Some(rest) = path.strip_prefix('\\') {
        out.push(ROOT_CHAR);
        rest
    } else {
        let rest = path.trim_start_matches('^');
        out.extend(std::iter::repeat_n(PARENT_PREFIX, path.len() - rest.len()));
        rest
    };
    if rest.is_empty() {
        out.push(NULL_NAME);
        return Ok(out);
    }
    let segs = rest
        .split('.')
        .map(name_seg)
        .collect::<Result<Vec<_>, _>>()?;
    match segs.len() {
        1 => {}
        2 => out.push(DUAL_NAME_PREFIX),
        n => {
            let count = u8::try_from(n).map_err(|_| AmlError::TooManySegments(n))?;
            out.push(MULTI_NAME_PREFIX);
            out.push(count);
        }
    }
    for seg in segs {
        out.extend_from_slice(&seg);
    }
    Ok(out)
}

/// `DefName`: `Name (path, object)`, where `object` is an already encoded data object.
pub fn name(path: &str, object: &[u8]) -> Result<Vec<u8>, AmlError> {
    let mut out = vec![NAME_OP];
    out.extend(name_string(path)?);
    out.extend_from_slice(object);
    Ok(out)
}

/// `DefPackage`: `Package (n) { elements }`, each element already encoded.
pub fn package(elements: &[Vec<u8>]) -> Result<Vec<u8>, AmlError> {
    let count =
        u8::try_from(elements.len()).map_err(|_| AmlError::TooManyElements(elements.len()))?;
    let mut body = vec![count];
    for e in elements {
        body.extend_from_slice(e);
    }
    with_pkg_length(&[PACKAGE_OP], &body)
}

/// A term with a PkgLength: `op`, the PkgLength, then `body`.
fn with_pkg_length(op: &[u8], body: &[u8]) -> Result<Vec<u8>, AmlError> {
    let mut out = op.to_vec();
    out.extend(pkg_length(body.len())?);
    out.extend_from_slice(body);
    Ok(out)
}

/// `op`, a PkgLength, `path`, then the terms: a Scope or a Device.
fn named_block(op: &[u8], path: &str, terms: &[Vec<u8>]) -> Result<Vec<u8>, AmlError> {
    let mut body = name_string(path)?;
    body.extend(terms.concat());
    with_pkg_length(op, &body)
}

/// `DefScope`: `Scope (path) { terms }`, each term already encoded.
pub fn scope(path: &str, terms: &[Vec<u8>]) -> Result<Vec<u8>, AmlError> {
    named_block(&[SCOPE_OP], path, terms)
}

/// `DefDevice`: `Device (path) { terms }`, each term already encoded.
pub fn device(path: &str, terms: &[Vec<u8>]) -> Result<Vec<u8>, AmlError> {
    named_block(&[EXT_OP_PREFIX, DEVICE_OP], path, terms)
}

/// `DefBuffer`: `Buffer (n) { bytes }`, the size as the shortest integer.
pub fn buffer(bytes: &[u8]) -> Result<Vec<u8>, AmlError> {
    let mut body = integer(bytes.len() as u64);
    body.extend_from_slice(bytes);
    with_pkg_length(&[BUFFER_OP], &body)
}

/// The 32-bit value of `EISAID ("PNP0A03")`: three letters of 5 bits each (A = 1) and four
/// hex digits, stored so that the bytes in memory read big-endian (6.1.5).
pub fn eisa_id(id: &str) -> Result<u32, AmlError> {
    let bad = || AmlError::BadEisaId(id.to_string());
    let b = id.as_bytes();
    if b.len() != 7 || !b[..3].iter().all(u8::is_ascii_uppercase) {
        return Err(bad());
    }
    let product = u16::from_str_radix(&id[3..], 16).map_err(|_| bad())?;
    if !id[3..].bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let l = |c: u8| u16::from(c - b'@');
    let vendor = l(b[0]) << 10 | l(b[1]) << 5 | l(b[2]);
    let [v0, v1] = vendor.to_be_bytes();
    let [p0, p1] = product.to_be_bytes();
    Ok(u32::from_le_bytes([v0, v1, p0, p1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a PkgLength the way an AML interpreter does: (value, bytes used).
    fn decode_pkg_length(b: &[u8]) -> (usize, usize) {
        let extra = usize::from(b[0] >> 6);
        if extra == 0 {
            return (usize::from(b[0] & 0x3f), 1);
        }
        let mut v = usize::from(b[0] & 0xf);
        for i in 0..extra {
            v |= usize::from(b[1 + i]) << (4 + 8 * i);
        }
        (v, extra + 1)
    }

    #[test]
    fn pkg_length_counts_itself_and_picks_the_shortest_form() {
        assert_eq!(pkg_length(0).unwrap(), vec![0x01]);
        assert_eq!(pkg_length(62).unwrap(), vec![0x3f]);
        // 63 content bytes + 2 length bytes = 65 = 0x41: lead 0x41, then 0x04.
        assert_eq!(pkg_length(63).unwrap(), vec![0x41, 0x04]);
        for len in [
            0usize,
            1,
            62,
            63,
            64,
            0xffd,
            0xffe,
            0xfffff - 3,
            0xfffff,
            MAX_PKG_LENGTH - 4,
        ] {
            let enc = pkg_length(len).unwrap();
            let (v, n) = decode_pkg_length(&enc);
            assert_eq!(n, enc.len(), "len {len}");
            assert_eq!(v, len + n, "len {len}");
        }
        // The boundary where two bytes stop sufficing: 0xffe + 2 = 0x1000 needs three.
        assert_eq!(pkg_length(0xffd).unwrap().len(), 2);
        assert_eq!(pkg_length(0xffe).unwrap().len(), 3);
        assert_eq!(
            pkg_length(MAX_PKG_LENGTH - 3),
            Err(AmlError::TooLong(MAX_PKG_LENGTH - 3))
        );
        assert_eq!(pkg_length(usize::MAX), Err(AmlError::TooLong(usize::MAX)));
    }

    #[test]
    fn integers_use_the_shortest_encoding() {
        assert_eq!(integer(0), vec![0x00]);
        assert_eq!(integer(1), vec![0x01]);
        assert_eq!(integer(5), vec![0x0a, 0x05]);
        assert_eq!(integer(0xff), vec![0x0a, 0xff]);
        assert_eq!(integer(0x100), vec![0x0b, 0x00, 0x01]);
        assert_eq!(integer(0x1_0000), vec![0x0c, 0x00, 0x00, 0x01, 0x00]);
        assert_eq!(integer(0x1_0000_0000), vec![0x0e, 0, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(integer(u64::MAX), vec![0xff]);
    }

    #[test]
    fn name_strings_encode_prefixes_and_segments() {
        assert_eq!(name_string("_S5_").unwrap(), b"_S5_".to_vec());
        assert_eq!(name_string("_S5").unwrap(), b"_S5_".to_vec());
        assert_eq!(name_string("\\_S5_").unwrap(), b"\\_S5_".to_vec());
        assert_eq!(name_string("^^AB").unwrap(), b"^^AB__".to_vec());
        assert_eq!(name_string("\\").unwrap(), vec![0x5c, 0x00]);
        // An empty path is the NullName (valid AML; a DefName with it would not be).
        assert_eq!(name_string("").unwrap(), vec![0x00]);
        assert_eq!(
            name_string("\\_SB.PCI0").unwrap(),
            b"\\\x2e_SB_PCI0".to_vec()
        );
        assert_eq!(
            name_string("_SB.PCI0.ISA").unwrap(),
            b"\x2f\x03_SB_PCI0ISA_".to_vec()
        );
        for bad in ["s5", "1ABC", "ABCDE", "A..B", "A-B", "\\A.", "É"] {
            assert!(
                matches!(name_string(bad), Err(AmlError::BadNameSeg(_))),
                "{bad:?}"
            );
        }
        let long = vec!["A"; 256].join(".");
        assert_eq!(name_string(&long), Err(AmlError::TooManySegments(256)));
    }

    #[test]
    fn eisa_ids_encode_as_iasl_does() {
        assert_eq!(eisa_id("PNP0A03").unwrap(), 0x030a_d041);
        assert_eq!(eisa_id("PNP0A08").unwrap(), 0x080a_d041);
        assert_eq!(eisa_id("PNP0C0F").unwrap(), 0x0f0c_d041);
        assert_eq!(
            integer(eisa_id("PNP0A03").unwrap().into()),
            [0x0c, 0x41, 0xd0, 0x0a, 0x03]
        );
        for bad in [
            "PNP0A0", "pnp0A03", "PNP0A0G", "PNP+A03", "PN10A03", "PNP0A033",
        ] {
            assert_eq!(eisa_id(bad), Err(AmlError::BadEisaId(bad.to_string())));
        }
    }

    #[test]
    fn scopes_devices_and_buffers_wrap_their_contents() {
        let dev = device("PCI0", &[name("_UID", &integer(0)).unwrap()]).unwrap();
        // ExtOpPrefix DeviceOp, PkgLength 11 (itself + 4 name + 6 body), name, then the body.
        assert_eq!(dev, b"\x5b\x82\x0bPCI0\x08_UID\x00".to_vec());
        let sc = scope("_SB", std::slice::from_ref(&dev)).unwrap();
        assert_eq!(sc[..6], *b"\x10\x12_SB_");
        assert_eq!(sc[6..], dev[..]);
        assert_eq!(
            buffer(&[0x79, 0x00]).unwrap(),
            vec![0x11, 0x05, 0x0a, 0x02, 0x79, 0x00]
        );
        assert_eq!(buffer(&[]).unwrap(), vec![0x11, 0x02, 0x00]);
        // A long buffer: two-byte PkgLength and a word size.
        let big = buffer(&[0u8; 300]).unwrap();
        assert_eq!(
            big[..5],
            [
                0x11,
                0x40 | ((300 + 3 + 2) & 0xf) as u8,
                ((300 + 3 + 2) >> 4) as u8,
                0x0b,
                0x2c
            ]
        );
        assert_eq!(big.len(), 1 + 2 + 3 + 300);
        assert!(scope("bad", &[]).is_err());
    }

    #[test]
    fn packages_and_names_nest() {
        let pkg = package(&[integer(5), integer(0)]).unwrap();
        // PackageOp, PkgLength 5 (itself + count + 0A 05 + 00), NumElements 2.
        assert_eq!(pkg, vec![0x12, 0x05, 0x02, 0x0a, 0x05, 0x00]);
        let n = name("FOO", &integer(1)).unwrap();
        assert_eq!(n, vec![0x08, b'F', b'O', b'O', b'_', 0x01]);
        let too_many = vec![integer(0); 256];
        assert_eq!(package(&too_many), Err(AmlError::TooManyElements(256)));
        // A long package switches to a two-byte PkgLength.
        let big = package(&vec![integer(0x1234_5678); 20]).unwrap();
        assert_eq!(big[1] >> 6, 1);
        assert_eq!(decode_pkg_length(&big[1..]).0, big.len() - 1);
    }
}
