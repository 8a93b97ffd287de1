//! Multiboot v1 kernels (Multiboot Specification 0.6.96, section 3.1): the header search and
//! the two ways to find what to load — the a.out kludge's addresses (flags bit 16) or the ELF
//! program headers.
//!
//! The header is the magic 0x1BADB002, flags and a checksum making the three sum to zero, 4-byte
//! aligned within the first 8192 bytes. A header with a bad checksum is not a header: the image
//! falls through to the other formats. Flags bits 0-15 are "must understand": this loader
//! honours bit 0 (page-aligned modules: the initrd always is), bit 1 (memory information: always
//! given) and accepts bit 2 (a video mode) without setting one; any other is refused.
//! Warts: the video mode request is ignored (the guest gets no framebuffer information); an ELF
//! multiboot kernel may be ELF64 (as GRUB 2 allows) but is still entered in 32-bit mode, so its
//! segments must lie below 4 GiB.

use super::bytes::{slice, u32_at};
use super::elf;
use super::error::LoaderError;
use super::plan::{Chunk, LoadPlan};

/// The header's magic.
pub const HEADER_MAGIC: u32 = 0x1bad_b002;
/// The header must lie entirely within this many bytes of the file's start.
pub const SEARCH_LIMIT: usize = 8192;
/// Flags bit 16: the header's address fields are valid (the "a.out kludge").
pub const FLAG_AOUT_KLUDGE: u32 = 1 << 16;
/// The "must understand" flags this loader honours: page-aligned modules, memory information,
/// video mode (accepted, ignored).
pub const SUPPORTED_REQUIRED_FLAGS: u32 = 0b111;

/// A multiboot header found in an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// File offset of the magic.
    pub offset: u64,
    /// The flags field.
    pub flags: u32,
}

/// The first valid multiboot header in the image, if any.
pub(crate) fn find_header(image: &[u8]) -> Option<Header> {
    let limit = image.len().min(SEARCH_LIMIT);
    (0..limit.saturating_sub(11)).step_by(4).find_map(|off| {
        let off = off as u64;
        let word = |i: u64| u32_at(image, off + 4 * i, "multiboot header").ok();
        let (magic, flags, checksum) = (word(0)?, word(1)?, word(2)?);
        let sums_to_zero = magic.wrapping_add(flags).wrapping_add(checksum) == 0;
        (magic == HEADER_MAGIC && sums_to_zero).then_some(Header { offset: off, flags })
    })
}

/// What to load for a multiboot kernel whose header is `h`.
pub(crate) fn plan<'a>(image: &'a [u8], h: &Header) -> Result<LoadPlan<'a>, LoaderError> {
    let unsupported = h.flags & 0xffff & !SUPPORTED_REQUIRED_FLAGS;
    if unsupported != 0 {
        return Err(LoaderError::MultibootFlags { unsupported });
    }
    if h.flags & FLAG_AOUT_KLUDGE != 0 {
        return aout_kludge(image, h);
    }
    if !elf::is_elf(image) {
        return Err(LoaderError::BadHeader {
            what: "multiboot image is not ELF and has no a.out kludge (flags bit 16)",
        });
    }
    Ok(elf::parse(image)?.plan)
}

/// The a.out kludge: `[load_addr, load_end_addr)` comes from the file, starting at the header's
/// offset less its distance from `load_addr`; then zeroes up to `bss_end_addr`.
fn aout_kludge<'a>(image: &'a [u8], h: &Header) -> Result<LoadPlan<'a>, LoaderError> {
    const WHAT: &str = "multiboot a.out kludge fields";
    let field = |i: u64| -> Result<u64, LoaderError> {
        Ok(u32_at(image, h.offset + 12 + 4 * i, WHAT)?.into())
    };
    let header_addr = field(0)?;
    let load_addr = field(1)?;
    let load_end_addr = field(2)?;
    let bss_end_addr = field(3)?;
    let entry_addr = field(4)?;
    let bad = |what| Err(LoaderError::BadHeader { what });

    let Some(delta) = header_addr.checked_sub(load_addr) else {
        return bad("multiboot header_addr lies below load_addr");
    };
    let Some(file_start) = h.offset.checked_sub(delta) else {
        return bad("multiboot load_addr lies before the start of the file");
    };
    let load_len = if load_end_addr == 0 {
        // 0: text and data run to the end of the file. file_start <= offset < len.
        image.len() as u64 - file_start
    } else {
        match load_end_addr.checked_sub(load_addr) {
            Some(n) => n,
            None => return bad("multiboot load_end_addr lies below load_addr"),
        }
    };
    let data = slice(image, file_start, load_len, "multiboot a.out text and data")?;
    let load_end = load_addr + load_len;
    let mem_len = if bss_end_addr == 0 {
        load_len
    } else {
        match bss_end_addr.checked_sub(load_end) {
            Some(bss) => load_len + bss,
            None => return bad("multiboot bss_end_addr lies below the end of the loaded data"),
        }
    };
    Ok(LoadPlan {
        chunks: vec![Chunk::new(load_addr, data, mem_len)?],
        entry: entry_addr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(flags: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [
            HEADER_MAGIC,
            flags,
            0u32.wrapping_sub(HEADER_MAGIC).wrapping_sub(flags),
        ] {
            v.extend_from_slice(&w.to_le_bytes());
        }
        v
    }

    #[test]
    fn header_search_respects_alignment_checksum_and_limit() {
        let mut img = vec![0u8; 64];
        img[8..20].copy_from_slice(&header(3));
        assert_eq!(
            find_header(&img),
            Some(Header {
                offset: 8,
                flags: 3
            })
        );
        // Misaligned: not found.
        let mut img = vec![0u8; 64];
        img[6..18].copy_from_slice(&header(3));
        assert_eq!(find_header(&img), None);
        // Bad checksum: not found.
        let mut img = vec![0u8; 64];
        img[8..20].copy_from_slice(&header(3));
        img[16] ^= 1;
        assert_eq!(find_header(&img), None);
        // Past the first 8192 bytes: not found; the last place that fits is.
        let mut img = vec![0u8; 9000];
        img[8192..8204].copy_from_slice(&header(0));
        assert_eq!(find_header(&img), None);
        img[8180..8192].copy_from_slice(&header(0));
        assert_eq!(find_header(&img).map(|h| h.offset), Some(8180));
        // Too short to hold one.
        assert_eq!(find_header(&header(0)[..11]), None);
        assert!(find_header(&header(0)).is_some());
    }

    #[test]
    fn lying_kludge_fields_are_errors() {
        let kludge = |fields: [u32; 5]| {
            let mut img = header(FLAG_AOUT_KLUDGE);
            for f in fields {
                img.extend_from_slice(&f.to_le_bytes());
            }
            img.extend_from_slice(&[0x90; 32]);
            let h = find_header(&img).unwrap();
            plan(&img, &h).map(|p| {
                (
                    p.chunks[0].addr,
                    p.chunks[0].data.len(),
                    p.chunks[0].mem_len,
                )
            })
        };
        // header_addr below load_addr.
        assert!(matches!(
            kludge([0x10_0000, 0x10_0010, 0, 0, 0x10_0000]),
            Err(LoaderError::BadHeader { .. })
        ));
        // load_addr before the file's start.
        assert!(matches!(
            kludge([0x10_0010, 0x10_0000, 0, 0, 0x10_0000]),
            Err(LoaderError::BadHeader { .. })
        ));
        // load_end_addr past the end of the file.
        assert!(matches!(
            kludge([0x10_0000, 0x10_0000, 0x10_1000, 0, 0x10_0000]),
            Err(LoaderError::Truncated { .. })
        ));
        // bss_end_addr below load_end_addr.
        assert!(matches!(
            kludge([0x10_0000, 0x10_0000, 0x10_0020, 0x10_0010, 0x10_0000]),
            Err(LoaderError::BadHeader { .. })
        ));
        // Good: whole file (64 bytes), bss to 0x100100.
        assert_eq!(
            kludge([0x10_0000, 0x10_0000, 0, 0x10_0100, 0x10_0000]),
            Ok((0x10_0000, 64, 0x100))
        );
        // Header fields cut off.
        let img = header(FLAG_AOUT_KLUDGE);
        assert_eq!(
            plan(&img, &find_header(&img).unwrap()),
            Err(LoaderError::Truncated {
                what: "multiboot a.out kludge fields"
            })
        );
    }

    #[test]
    fn must_understand_flags_are_checked() {
        let img = header(1 << 3);
        assert_eq!(
            plan(&img, &find_header(&img).unwrap()),
            Err(LoaderError::MultibootFlags { unsupported: 8 })
        );
        let img = header(0b111);
        assert!(matches!(
            plan(&img, &find_header(&img).unwrap()),
            Err(LoaderError::BadHeader { .. })
        ));
    }
}
