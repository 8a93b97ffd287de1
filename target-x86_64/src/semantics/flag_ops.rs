//! Recording and reading the lazy condition codes from semantics.

use tandem_tcg::{Builder, Width};

use crate::context::{CC_DST, CC_OP, CC_SRC, CC_SRC2, RFLAGS};
use crate::flags::{bit, cc_op, CcKind, CC_EFLAGS};
use crate::helpers::SYNC_FLAGS;

/// Records that the arithmetic flags follow from `kind` at width `w` on these values.
pub fn set_cc<B: Builder>(
    b: &mut B,
    kind: CcKind,
    w: Width,
    dst: B::Value,
    src: B::Value,
    src2: B::Value,
) {
    let op = b.imm(cc_op(kind, w));
    b.store_state(CC_OP, Width::W64, op);
    b.store_state(CC_DST, Width::W64, dst);
    b.store_state(CC_SRC, Width::W64, src);
    b.store_state(CC_SRC2, Width::W64, src2);
}

/// RFLAGS with the arithmetic flags brought up to date (and the lazy state folded in).
pub fn rflags<B: Builder>(b: &mut B) -> Result<B::Value, B::Trap> {
    b.call(&SYNC_FLAGS, &[])
}

/// Writes a whole RFLAGS value (its arithmetic flags become the current ones).
pub fn set_rflags<B: Builder>(b: &mut B, v: B::Value) {
    b.store_state(RFLAGS, Width::W64, v);
    let e = b.imm(CC_EFLAGS);
    b.store_state(CC_OP, Width::W64, e);
}

/// One flag as 0 or 1.
pub fn flag<B: Builder>(b: &mut B, mask: u64) -> Result<B::Value, B::Trap> {
    let f = rflags(b)?;
    let m = b.imm(mask);
    let x = b.and(f, m);
    let z = b.imm(0);
    Ok(b.icmp(tandem_tcg::Cond::Ne, x, z))
}

/// Carry as 0 or 1.
pub fn carry<B: Builder>(b: &mut B) -> Result<B::Value, B::Trap> {
    flag(b, bit::CF)
}
