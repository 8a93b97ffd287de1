//! The builder trait: the operations guest semantics are written in.
//!
//! Values are 64-bit integers; narrower guest operands are kept zero-extended and narrowed with
//! [`Builder::zext`]/[`Builder::sext`] where the semantics need it. Shift and rotate amounts are
//! taken modulo 64 (callers apply the guest's own masking first). Operations that can stop the
//! instruction (a faulting memory access, a helper that raises) return `Result` with the
//! builder's [`Builder::Trap`], so semantics propagate them with `?`: the interpreter stops at
//! once; the compiler emits the exit path and carries on emitting the fall-through.

use crate::helper::Helper;
use crate::width::Width;

/// Integer comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Unsigned less than.
    Ult,
    /// Unsigned less or equal.
    Ule,
    /// Unsigned greater than.
    Ugt,
    /// Unsigned greater or equal.
    Uge,
    /// Signed less than.
    Slt,
    /// Signed less or equal.
    Sle,
    /// Signed greater than.
    Sgt,
    /// Signed greater or equal.
    Sge,
}

impl Cond {
    /// Evaluates the comparison on concrete values.
    pub fn eval(self, a: u64, b: u64) -> bool {
        let (sa, sb) = (a as i64, b as i64);
        match self {
            Cond::Eq => a == b,
            Cond::Ne => a != b,
            Cond::Ult => a < b,
            Cond::Ule => a <= b,
            Cond::Ugt => a > b,
            Cond::Uge => a >= b,
            Cond::Slt => sa < sb,
            Cond::Sle => sa <= sb,
            Cond::Sgt => sa > sb,
            Cond::Sge => sa >= sb,
        }
    }
}

/// What the guest's last flag-setting operation was, remembered while one block is translated
/// (tier 1) or one instruction runs (tier 0), so that a later flag read in the same block can be
/// computed from the operands instead of materializing all flags. `op` is the guest's own
/// encoding of the operation (x86: its lazy `cc_op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagsMemo<V> {
    /// The operation and width, guest-encoded.
    pub op: u64,
    /// Its result.
    pub dst: V,
    /// Its first operand.
    pub src: V,
    /// Its second operand.
    pub src2: V,
}

/// The operations of the translator's vocabulary.
pub trait Builder {
    /// A 64-bit integer value.
    type Value: Copy;
    /// Why an instruction stopped early (an exception).
    type Trap;

    /// A constant.
    fn imm(&mut self, v: u64) -> Self::Value;
    /// `a + b` (wrapping).
    fn add(&mut self, a: Self::Value, b: Self::Value) -> Self::Value;
    /// `a - b` (wrapping).
    fn sub(&mut self, a: Self::Value, b: Self::Value) -> Self::Value;
    /// Low 64 bits of `a * b`.
    fn mul(&mut self, a: Self::Value, b: Self::Value) -> Self::Value;
    /// High 64 bits of the unsigned 128-bit product.
    fn umulh(&mut self, a: Self::Value, b: Self::Value) -> Self::Value;
    /// High 64 bits of the signed 128-bit product.
    fn smulh(&mut self, a: Self::Value, b: Self::Value) -> Self::Value;
    /// Bitwise and.
    fn and(&mut self, a: Self::Value, b: Self::Value) -> Self::Value;
    /// Bitwise or.
    fn or(&mut self, a: Self::Value, b: Self::Value) -> Self::Value;
    /// Bitwise exclusive or.
    fn xor(&mut self, a: Self::Value, b: Self::Value) -> Self::Value;
    /// Bitwise not.
    fn not(&mut self, a: Self::Value) -> Self::Value;
    /// Two's complement negation.
    fn neg(&mut self, a: Self::Value) -> Self::Value;
    /// `a << (n % 64)`.
    fn shl(&mut self, a: Self::Value, n: Self::Value) -> Self::Value;
    /// Logical `a >> (n % 64)`.
    fn lshr(&mut self, a: Self::Value, n: Self::Value) -> Self::Value;
    /// Arithmetic `a >> (n % 64)`.
    fn ashr(&mut self, a: Self::Value, n: Self::Value) -> Self::Value;
    /// Rotate left by `n % 64`.
    fn rotl(&mut self, a: Self::Value, n: Self::Value) -> Self::Value;
    /// Rotate right by `n % 64`.
    fn rotr(&mut self, a: Self::Value, n: Self::Value) -> Self::Value;
    /// Number of set bits.
    fn popcnt(&mut self, a: Self::Value) -> Self::Value;
    /// Leading zeros (64 for 0).
    fn clz(&mut self, a: Self::Value) -> Self::Value;
    /// Trailing zeros (64 for 0).
    fn ctz(&mut self, a: Self::Value) -> Self::Value;
    /// Byte swap of all 8 bytes.
    fn bswap(&mut self, a: Self::Value) -> Self::Value;
    /// 1 if `cond(a, b)` else 0.
    fn icmp(&mut self, cond: Cond, a: Self::Value, b: Self::Value) -> Self::Value;
    /// `if c != 0 { a } else { b }`.
    fn select(&mut self, c: Self::Value, a: Self::Value, b: Self::Value) -> Self::Value;
    /// `a` truncated to `w` and zero-extended.
    fn zext(&mut self, a: Self::Value, w: Width) -> Self::Value;
    /// `a` truncated to `w` and sign-extended.
    fn sext(&mut self, a: Self::Value, w: Width) -> Self::Value;

    /// Reads a context field of width `w` at byte `offset`.
    fn load_state(&mut self, offset: usize, w: Width) -> Self::Value;
    /// Writes the low `w` bits of `v` to the context field at byte `offset`.
    fn store_state(&mut self, offset: usize, w: Width, v: Self::Value);

    /// Loads `w` from guest linear address `addr` (translation, MMIO and faults included).
    fn load(&mut self, addr: Self::Value, w: Width) -> Result<Self::Value, Self::Trap>;
    /// Stores the low `w` bits of `v` at guest linear address `addr`.
    fn store(&mut self, addr: Self::Value, w: Width, v: Self::Value) -> Result<(), Self::Trap>;

    /// Calls `helper` with up to four arguments (missing ones are 0).
    fn call(&mut self, helper: &Helper, args: &[Self::Value]) -> Result<Self::Value, Self::Trap>;

    /// Raises guest exception `vector` (with an error code); propagate the result with `Err`.
    fn raise(&mut self, vector: u8, error_code: Option<Self::Value>) -> Self::Trap;

    /// The translation-time record of the last flag-setting operation (see [`FlagsMemo`]).
    /// Builders forget it where control flow merges paths that may disagree.
    fn flags_memo(&mut self) -> &mut Option<FlagsMemo<Self::Value>>;

    /// Runs `then` only when `c != 0`.
    fn if_then(
        &mut self,
        c: Self::Value,
        then: impl FnOnce(&mut Self) -> Result<(), Self::Trap>,
    ) -> Result<(), Self::Trap>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_and_unsigned_comparisons_differ() {
        assert!(Cond::Ult.eval(1, u64::MAX));
        assert!(!Cond::Slt.eval(1, u64::MAX));
        assert!(Cond::Sge.eval(0, u64::MAX));
        assert!(Cond::Ne.eval(1, 2));
    }
}
