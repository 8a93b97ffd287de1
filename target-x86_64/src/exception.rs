//! Guest exceptions as values: what a faulting access or instruction hands to delivery.

/// Exception vectors (Intel SDM Vol. 3A, Table 6-1).
pub mod vector {
    #![allow(missing_docs)]
    pub const DE: u8 = 0;
    pub const DB: u8 = 1;
    pub const NMI: u8 = 2;
    pub const BP: u8 = 3;
    pub const OF: u8 = 4;
    pub const BR: u8 = 5;
    pub const UD: u8 = 6;
    pub const NM: u8 = 7;
    pub const DF: u8 = 8;
    pub const TS: u8 = 10;
    pub const NP: u8 = 11;
    pub const SS: u8 = 12;
    pub const GP: u8 = 13;
    pub const PF: u8 = 14;
    pub const MF: u8 = 16;
    pub const AC: u8 = 17;
    pub const MC: u8 = 18;
    pub const XM: u8 = 19;
}

/// A guest exception raised by an instruction or an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Vector.
    pub vector: u8,
    /// Error code, for the vectors that push one.
    pub error_code: Option<u32>,
    /// The faulting linear address, for #PF (goes to CR2 on delivery).
    pub cr2: Option<u64>,
}

impl Fault {
    /// An exception without error code.
    pub const fn new(vector: u8) -> Self {
        Self {
            vector,
            error_code: None,
            cr2: None,
        }
    }

    /// An exception with an error code.
    pub const fn with_code(vector: u8, code: u32) -> Self {
        Self {
            vector,
            error_code: Some(code),
            cr2: None,
        }
    }

    /// #GP(code).
    pub const fn gp(code: u32) -> Self {
        Self::with_code(vector::GP, code)
    }

    /// #UD.
    pub const fn ud() -> Self {
        Self::new(vector::UD)
    }

    /// #PF at `addr` with `code`.
    pub const fn page_fault(addr: u64, code: u32) -> Self {
        Self {
            vector: vector::PF,
            error_code: Some(code),
            cr2: Some(addr),
        }
    }
}
