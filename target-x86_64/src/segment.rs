//! Segment registers with their hidden (descriptor cache) parts.

/// A segment register: the visible selector and the descriptor cache loaded with it.
///
/// Attribute fields follow the descriptor layout (Intel SDM Vol. 3A 3.4.5): `type_` is the
/// 4-bit type, `s` the code/data (1) or system (0) bit.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Segment {
    /// Linear base address.
    pub base: u64,
    /// Limit in bytes (already scaled by the granularity bit).
    pub limit: u32,
    /// Visible selector.
    pub selector: u16,
    /// Descriptor type (4 bits).
    pub type_: u8,
    /// Present.
    pub present: bool,
    /// Descriptor privilege level.
    pub dpl: u8,
    /// Default operation size (D/B): 32-bit when set.
    pub db: bool,
    /// Code or data segment (S = 1), rather than system.
    pub s: bool,
    /// 64-bit code segment (L).
    pub l: bool,
    /// Granularity: limit in 4 KiB units in the descriptor.
    pub g: bool,
    /// Available for software.
    pub avl: bool,
    /// Not usable (a null selector loaded in protected mode).
    pub unusable: bool,
}

impl Segment {
    /// Real-mode segment for `selector` (base = selector * 16, 64 KiB limit), `code` for CS.
    pub fn real_mode(selector: u16, code: bool) -> Self {
        Self {
            base: u64::from(selector) << 4,
            limit: 0xffff,
            selector,
            type_: if code { 0xb } else { 0x3 },
            present: true,
            dpl: 0,
            db: false,
            s: true,
            l: false,
            g: false,
            avl: false,
            unusable: false,
        }
    }

    /// A flat 4 GiB segment: 32-bit code (`code`), or read/write data; `long` makes code 64-bit.
    pub fn flat(selector: u16, code: bool, long: bool) -> Self {
        Self {
            base: 0,
            limit: 0xffff_ffff,
            selector,
            type_: if code { 0xb } else { 0x3 },
            present: true,
            dpl: 0,
            db: !long,
            s: true,
            l: long && code,
            g: true,
            avl: false,
            unusable: false,
        }
    }

    /// A busy 64-bit TSS (type 11) of `limit` bytes at `base`.
    pub fn tss(selector: u16, base: u64, limit: u32) -> Self {
        Self {
            base,
            limit,
            selector,
            type_: 0xb,
            present: true,
            s: false,
            ..Self::default()
        }
    }

    /// An LDT segment register holding nothing.
    pub fn null_ldt() -> Self {
        Self {
            type_: 0x2,
            present: true,
            limit: 0xffff,
            ..Self::default()
        }
    }

    /// The 8-byte GDT descriptor this segment was loaded from (bases above 4 GiB are cut).
    pub fn to_descriptor(&self) -> u64 {
        let (limit, g) = if self.g {
            (self.limit >> 12, true)
        } else {
            (self.limit, false)
        };
        let base = self.base as u32;
        let mut d = u64::from(limit & 0xffff) | (u64::from(base & 0xff_ffff) << 16);
        d |= u64::from(self.type_ & 0xf) << 40;
        d |= u64::from(self.s) << 44;
        d |= u64::from(self.dpl & 3) << 45;
        d |= u64::from(self.present) << 47;
        d |= u64::from((limit >> 16) & 0xf) << 48;
        d |= u64::from(self.avl) << 52;
        d |= u64::from(self.l) << 53;
        d |= u64::from(self.db) << 54;
        d |= u64::from(g) << 55;
        d |= u64::from(base >> 24) << 56;
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_descriptors_match_the_classic_encodings() {
        assert_eq!(
            Segment::flat(8, true, true).to_descriptor(),
            0x00af_9b00_0000_ffff
        );
        assert_eq!(
            Segment::flat(8, true, false).to_descriptor(),
            0x00cf_9b00_0000_ffff
        );
        assert_eq!(
            Segment::flat(16, false, false).to_descriptor(),
            0x00cf_9300_0000_ffff
        );
    }
}
