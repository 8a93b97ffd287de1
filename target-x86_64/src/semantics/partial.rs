//! Partial updates shared by the families added with shifts, bit operations and CMPXCHG:
//! writing some flags while keeping the rest (BT, ROL/RCL, CMPXCHG8B, SAHF), and writing a
//! register only when a runtime condition holds (CMPXCHG, BSF/BSR), where the "not written"
//! case must keep even the upper half of a 64-bit register that a 32-bit write would clear.

use iced_x86::Register;
use tandem_tcg::{Builder, Cond, Width};

use super::flag_ops::{rflags, set_rflags};
use super::operand::{gpr_location, read_reg, write_reg};

/// Sets the flags in `mask` to the bits of `value` (which must lie within `mask`) and keeps
/// every other flag: the lazy state is folded first, so this costs a helper call. Meant for
/// the instructions whose unaffected flags must survive (CF/OF of rotates, CF of BT, ZF of
/// CMPXCHG8B), which no lazy kind can express.
pub fn update_flags<B: Builder>(b: &mut B, mask: u64, value: B::Value) -> Result<(), B::Trap> {
    let f = rflags(b)?;
    let keep = b.imm(!mask);
    let kept = b.and(f, keep);
    let v = b.or(kept, value);
    set_rflags(b, v);
    Ok(())
}

/// `v` (0 or 1) moved to flag bit `mask` (a single bit).
pub fn to_flag<B: Builder>(b: &mut B, v: B::Value, mask: u64) -> B::Value {
    let sh = b.imm(u64::from(mask.trailing_zeros()));
    b.shl(v, sh)
}

/// 1 if `v != 0`, else 0.
pub fn nonzero<B: Builder>(b: &mut B, v: B::Value) -> B::Value {
    let z = b.imm(0);
    b.icmp(Cond::Ne, v, z)
}

/// 1 if `v == 0`, else 0.
pub fn is_zero<B: Builder>(b: &mut B, v: B::Value) -> B::Value {
    let z = b.imm(0);
    b.icmp(Cond::Eq, v, z)
}

/// Writes `v` to `reg` when `c != 0`; otherwise leaves all 64 bits of the register as they
/// were (a 32-bit write would zero the upper half even when it writes the old value).
pub fn write_reg_if<B: Builder>(b: &mut B, reg: Register, c: B::Value, v: B::Value) -> Option<()> {
    let (_, w) = gpr_location(reg)?;
    if w == Width::W32 {
        let full = reg.full_register();
        let old = read_reg(b, full)?;
        let new = b.zext(v, Width::W32);
        let r = b.select(c, new, old);
        write_reg(b, full, r)
    } else {
        let old = read_reg(b, reg)?;
        let r = b.select(c, v, old);
        write_reg(b, reg, r)
    }
}
