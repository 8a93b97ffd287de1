//! What the emitter knows about the IR values it made: which are constants, and how many low
//! bits may be set in the others.
//!
//! Cranelift at `opt_level=none` keeps every instruction it is given, and its compile time
//! grows with the number of instructions and values (register allocation most of all). The
//! x86 semantics are written for clarity: a 32-bit operand is masked where it is read and again
//! where it is written, immediates are combined with immediates, conditions on constants guard
//! code. Folding these while emitting keeps them out of the IR.

use std::collections::HashMap;

use cranelift_codegen::entity::SecondaryMap;
use cranelift_codegen::ir::{Block, Value};

/// One value's facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fact {
    /// The value, if it is a constant.
    pub konst: Option<u64>,
    /// Bits above this many low ones are known to be zero (64: nothing known).
    pub bits: u8,
}

impl Default for Fact {
    fn default() -> Self {
        Self {
            konst: None,
            bits: 64,
        }
    }
}

impl Fact {
    /// The facts of constant `v`.
    pub fn constant(v: u64) -> Self {
        Self {
            konst: Some(v),
            bits: significant_bits(v),
        }
    }

    /// A value with at most `bits` low bits set.
    pub fn bits(bits: u32) -> Self {
        Self {
            konst: None,
            bits: bits.min(64) as u8,
        }
    }

    /// The mask of the bits that may be set.
    pub fn may_be_set(self) -> u64 {
        low_mask(u32::from(self.bits))
    }
}

/// How many low bits `v` needs.
pub fn significant_bits(v: u64) -> u8 {
    (64 - v.leading_zeros()) as u8
}

/// The lowest `bits` bits set.
pub fn low_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// The facts of one function being emitted, and its constants by block.
#[derive(Default)]
pub struct Facts {
    of: SecondaryMap<Value, Fact>,
    /// Constants already materialized in `consts_block`, which they dominate the rest of.
    consts_block: Option<Block>,
    consts: HashMap<u64, Value>,
}

impl Facts {
    /// What is known of `v`.
    pub fn get(&self, v: Value) -> Fact {
        self.of[v]
    }

    /// The constant `v` holds, if known.
    pub fn konst(&self, v: Value) -> Option<u64> {
        self.of[v].konst
    }

    /// Records what is known of `v`.
    pub fn set(&mut self, v: Value, f: Fact) {
        self.of[v] = f;
    }

    /// A value already holding `c` that `block` may use.
    pub fn reusable_const(&mut self, block: Option<Block>, c: u64) -> Option<Value> {
        if block.is_none() || block != self.consts_block {
            self.consts_block = block;
            self.consts.clear();
            return None;
        }
        self.consts.get(&c).copied()
    }

    /// Records that `v` holds `c`, defined in the current block.
    pub fn remember_const(&mut self, c: u64, v: Value) {
        self.consts.insert(c, v);
        self.of[v] = Fact::constant(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_widths() {
        assert_eq!(significant_bits(0), 0);
        assert_eq!(significant_bits(1), 1);
        assert_eq!(significant_bits(0xffff_ffff), 32);
        assert_eq!(significant_bits(u64::MAX), 64);
        assert_eq!(low_mask(0), 0);
        assert_eq!(low_mask(32), 0xffff_ffff);
        assert_eq!(low_mask(64), u64::MAX);
        assert_eq!(Fact::bits(8).may_be_set(), 0xff);
        assert_eq!(Fact::default().may_be_set(), u64::MAX);
    }
}
