//! Bounds-checked little-endian reads from an image file.
//!
//! Every header field the loaders look at goes through here, so a short or lying file becomes a
//! [`LoaderError::Truncated`] naming the part, never an out-of-bounds panic.

use super::error::LoaderError;

/// `image[off..off + len]`, or `Truncated { what }` if any of it is past the end (or the
/// arithmetic overflows).
pub(crate) fn slice<'a>(
    image: &'a [u8],
    off: u64,
    len: u64,
    what: &'static str,
) -> Result<&'a [u8], LoaderError> {
    let start = usize::try_from(off).map_err(|_| LoaderError::Truncated { what })?;
    let len = usize::try_from(len).map_err(|_| LoaderError::Truncated { what })?;
    let end = start
        .checked_add(len)
        .ok_or(LoaderError::Truncated { what })?;
    image.get(start..end).ok_or(LoaderError::Truncated { what })
}

fn array<const N: usize>(
    image: &[u8],
    off: u64,
    what: &'static str,
) -> Result<[u8; N], LoaderError> {
    let s = slice(image, off, N as u64, what)?;
    // `slice` returned exactly N bytes, so the conversion cannot fail; map it anyway rather
    // than unwrap.
    s.try_into().map_err(|_| LoaderError::Truncated { what })
}

/// The little-endian u16 at `off`.
pub(crate) fn u16_at(image: &[u8], off: u64, what: &'static str) -> Result<u16, LoaderError> {
    array(image, off, what).map(u16::from_le_bytes)
}

/// The little-endian u32 at `off`.
pub(crate) fn u32_at(image: &[u8], off: u64, what: &'static str) -> Result<u32, LoaderError> {
    array(image, off, what).map(u32::from_le_bytes)
}

/// The little-endian u64 at `off`.
pub(crate) fn u64_at(image: &[u8], off: u64, what: &'static str) -> Result<u64, LoaderError> {
    array(image, off, what).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inside_and_refuses_outside() {
        let b = [1u8, 2, 3, 4, 5];
        assert_eq!(u32_at(&b, 1, "x"), Ok(0x0504_0302));
        assert_eq!(
            u16_at(&b, 4, "x"),
            Err(LoaderError::Truncated { what: "x" })
        );
        assert!(u64_at(&b, 0, "x").is_err());
        assert!(slice(&b, u64::MAX, 2, "x").is_err());
        assert!(slice(&b, 2, u64::MAX, "x").is_err());
        assert_eq!(slice(&b, 5, 0, "x"), Ok(&[][..]));
    }
}
