//! ACPI resource descriptors: the bytes of a `ResourceTemplate ()` such as a `_CRS`.
//!
//! Spec: ACPI 6.5, 6.4 ("Resource Data Types for ACPI"): 6.4.2.5 (I/O port descriptor, small),
//! 6.4.2.9 (end tag), 6.4.3.5.1-3 (QWord, DWord and Word address space descriptors).
//!
//! Only what a PCI host bridge's `_CRS` needs, as producers of fixed ranges: every address
//! space descriptor here is a ResourceProducer with MinFixed, MaxFixed, PosDecode, granularity
//! 0 and translation 0, its length `max - min + 1` — the flag and field values `iasl` writes
//! for `WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, len)`
//! and its I/O and memory siblings. The end tag's checksum is 0 ("treat as summing to zero"),
//! as iasl emits it. Known warts: no consumers, no IRQ or DMA descriptors, no resource sources.

use super::aml::{buffer, AmlError};

/// End tag: type 0x79 (small, item 0xF, length 1) and a zero checksum.
pub const END_TAG: [u8; 2] = [0x79, 0x00];
/// Small I/O port descriptor tag (item 0x08, length 7).
pub const IO_PORT_TAG: u8 = 0x47;
/// Large QWord address space descriptor tag.
pub const QWORD_ADDRESS_TAG: u8 = 0x8a;
/// Large DWord address space descriptor tag.
pub const DWORD_ADDRESS_TAG: u8 = 0x87;
/// Large Word address space descriptor tag.
pub const WORD_ADDRESS_TAG: u8 = 0x88;

/// Address space descriptor resource type: memory.
pub const RESOURCE_MEMORY: u8 = 0;
/// Address space descriptor resource type: I/O.
pub const RESOURCE_IO: u8 = 1;
/// Address space descriptor resource type: bus numbers.
pub const RESOURCE_BUS_NUMBER: u8 = 2;

/// General flags: producer (bit 0 clear), positive decode (bit 1 clear), MinFixed (bit 2),
/// MaxFixed (bit 3).
const PRODUCER_FIXED: u8 = 0x0c;
/// I/O type-specific flags: EntireRange (ISA and non-ISA ranges), TypeStatic, Dense.
const IO_ENTIRE_RANGE: u8 = 0x03;
/// Memory type-specific flags: ReadWrite (bit 0); AddressRangeMemory and TypeStatic are 0.
const MEMORY_READ_WRITE: u8 = 0x01;

/// The caching a memory range allows (memory type-specific flags, bits 2-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cacheability {
    /// `NonCacheable`: device registers.
    NonCacheable = 0,
    /// `Cacheable`.
    Cacheable = 1,
    /// `WriteCombining`.
    WriteCombining = 2,
    /// `Prefetchable`.
    Prefetchable = 3,
}

/// `IO (Decode16, min, max, align, len)`: a small I/O port descriptor with 16-bit decode.
pub fn io(min: u16, max: u16, align: u8, len: u8) -> Vec<u8> {
    let mut out = vec![IO_PORT_TAG, 0x01];
    out.extend_from_slice(&min.to_le_bytes());
    out.extend_from_slice(&max.to_le_bytes());
    out.extend_from_slice(&[align, len]);
    out
}

/// One address space descriptor of `width` bytes per field: tag, length, type, flags, then
/// granularity 0, min, max, translation 0, length.
fn address_space(
    tag: u8,
    width: usize,
    resource: u8,
    type_flags: u8,
    min: u64,
    max: u64,
) -> Result<Vec<u8>, AmlError> {
    let bad = AmlError::BadRange { min, max };
    let field_max = if width == 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width)) - 1
    };
    if min > max || max > field_max {
        return Err(bad);
    }
    // The length must fit the field too: a range covering the whole space does not.
    let len = (max - min)
        .checked_add(1)
        .filter(|&l| l <= field_max)
        .ok_or(bad)?;
    let body_len = 3 + 5 * width as u16;
    let mut out = vec![tag];
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&[resource, PRODUCER_FIXED, type_flags]);
    for v in [0, min, max, 0, len] {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    Ok(out)
}

/// `WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, len)`.
pub fn word_bus_number(min: u16, max: u16) -> Result<Vec<u8>, AmlError> {
    address_space(
        WORD_ADDRESS_TAG,
        2,
        RESOURCE_BUS_NUMBER,
        0,
        min.into(),
        max.into(),
    )
}

/// `WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0,
/// len)`.
pub fn word_io(min: u16, max: u16) -> Result<Vec<u8>, AmlError> {
    address_space(
        WORD_ADDRESS_TAG,
        2,
        RESOURCE_IO,
        IO_ENTIRE_RANGE,
        min.into(),
        max.into(),
    )
}

/// `DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, caching, ReadWrite, 0, min,
/// max, 0, len)`.
pub fn dword_memory(min: u32, max: u32, caching: Cacheability) -> Result<Vec<u8>, AmlError> {
    address_space(
        DWORD_ADDRESS_TAG,
        4,
        RESOURCE_MEMORY,
        MEMORY_READ_WRITE | (caching as u8) << 1,
        min.into(),
        max.into(),
    )
}

/// `QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, caching, ReadWrite, 0, min,
/// max, 0, len)`.
pub fn qword_memory(min: u64, max: u64, caching: Cacheability) -> Result<Vec<u8>, AmlError> {
    address_space(
        QWORD_ADDRESS_TAG,
        8,
        RESOURCE_MEMORY,
        MEMORY_READ_WRITE | (caching as u8) << 1,
        min,
        max,
    )
}

/// `ResourceTemplate () { descriptors }`: a Buffer of the descriptors and the end tag.
pub fn template(descriptors: &[Vec<u8>]) -> Result<Vec<u8>, AmlError> {
    let mut bytes = descriptors.concat();
    bytes.extend_from_slice(&END_TAG);
    buffer(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected bytes are what iasl 20200925 compiles from the ASL in each comment.

    #[test]
    fn descriptors_match_iasl() {
        // WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,
        //     0x0000, 0x0000, 0x00FF, 0x0000, 0x0100)
        assert_eq!(
            word_bus_number(0, 0xff).unwrap(),
            [0x88, 0x0d, 0, 0x02, 0x0c, 0, 0, 0, 0, 0, 0xff, 0, 0, 0, 0, 0x01]
        );
        // IO (Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08)
        assert_eq!(
            io(0xcf8, 0xcf8, 1, 8),
            [0x47, 1, 0xf8, 0x0c, 0xf8, 0x0c, 1, 8]
        );
        // WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
        //     0x0000, 0x0000, 0x0CF7, 0x0000, 0x0CF8)
        assert_eq!(
            word_io(0, 0xcf7).unwrap(),
            [0x88, 0x0d, 0, 0x01, 0x0c, 0x03, 0, 0, 0, 0, 0xf7, 0x0c, 0, 0, 0xf8, 0x0c]
        );
        // DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable,
        //     ReadWrite, 0, 0xE0000000, 0xFEBFFFFF, 0, 0x1EC00000)
        let d = dword_memory(0xe000_0000, 0xfebf_ffff, Cacheability::NonCacheable).unwrap();
        assert_eq!(d[..6], [0x87, 0x17, 0, 0, 0x0c, 0x01]);
        assert_eq!(d[6..10], [0; 4]);
        assert_eq!(d[10..14], 0xe000_0000u32.to_le_bytes());
        assert_eq!(d[14..18], 0xfebf_ffffu32.to_le_bytes());
        assert_eq!(d[18..22], [0; 4]);
        assert_eq!(d[22..26], 0x1ec0_0000u32.to_le_bytes());
        // QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Prefetchable,
        //     ReadWrite, 0, 0x100000000, 0x1FFFFFFFF, 0, 0x100000000)
        let q = qword_memory(1 << 32, (2 << 32) - 1, Cacheability::Prefetchable).unwrap();
        assert_eq!(q.len(), 46);
        assert_eq!(q[..6], [0x8a, 0x2b, 0, 0, 0x0c, 0x07]);
        assert_eq!(q[38..46], (1u64 << 32).to_le_bytes());
        let t = template(&[io(0xcf8, 0xcf8, 1, 8)]).unwrap();
        assert_eq!(
            t,
            [0x11, 0x0d, 0x0a, 0x0a, 0x47, 1, 0xf8, 0x0c, 0xf8, 0x0c, 1, 8, 0x79, 0]
        );
    }

    #[test]
    fn ranges_that_cannot_be_described_are_errors() {
        let bad = |min: u64, max: u64| AmlError::BadRange { min, max };
        assert_eq!(word_io(0, 0xffff), Err(bad(0, 0xffff)), "length 0x10000");
        assert_eq!(word_io(0x10, 0xf), Err(bad(0x10, 0xf)));
        assert_eq!(
            dword_memory(0, u32::MAX, Cacheability::Cacheable),
            Err(bad(0, u32::MAX.into()))
        );
        assert_eq!(
            qword_memory(0, u64::MAX, Cacheability::Cacheable),
            Err(bad(0, u64::MAX))
        );
        assert!(word_io(0xd00, 0xffff).is_ok());
    }
}
