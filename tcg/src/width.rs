//! Operand widths.

/// Width of an integer value in a guest operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Width {
    /// 8 bits.
    W8,
    /// 16 bits.
    W16,
    /// 32 bits.
    W32,
    /// 64 bits.
    W64,
}

impl Width {
    /// Number of bits.
    pub const fn bits(self) -> u32 {
        match self {
            Width::W8 => 8,
            Width::W16 => 16,
            Width::W32 => 32,
            Width::W64 => 64,
        }
    }

    /// Number of bytes.
    pub const fn bytes(self) -> usize {
        (self.bits() / 8) as usize
    }

    /// All-ones of this width.
    pub const fn mask(self) -> u64 {
        match self {
            Width::W64 => u64::MAX,
            w => (1u64 << w.bits()) - 1,
        }
    }

    /// The sign bit of this width.
    pub const fn sign_bit(self) -> u64 {
        1u64 << (self.bits() - 1)
    }

    /// The width of `n` bytes (1, 2, 4 or 8).
    pub const fn from_bytes(n: usize) -> Option<Width> {
        match n {
            1 => Some(Width::W8),
            2 => Some(Width::W16),
            4 => Some(Width::W32),
            8 => Some(Width::W64),
            _ => None,
        }
    }

    /// `v` truncated to this width, zero-extended.
    pub const fn zext(self, v: u64) -> u64 {
        v & self.mask()
    }

    /// `v` truncated to this width, sign-extended to 64 bits.
    pub const fn sext(self, v: u64) -> u64 {
        let shift = 64 - self.bits();
        (((v << shift) as i64) >> shift) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_extensions() {
        assert_eq!(Width::W8.mask(), 0xff);
        assert_eq!(Width::W64.mask(), u64::MAX);
        assert_eq!(Width::W16.sext(0x8000), 0xffff_ffff_ffff_8000);
        assert_eq!(Width::W32.zext(0x1_2345_6789), 0x2345_6789);
        assert_eq!(Width::W64.sext(5), 5);
        assert_eq!(Width::W8.sign_bit(), 0x80);
        assert_eq!(Width::from_bytes(4), Some(Width::W32));
        assert_eq!(Width::from_bytes(3), None);
    }
}
