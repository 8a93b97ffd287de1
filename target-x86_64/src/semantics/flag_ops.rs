//! Recording and reading the lazy condition codes from semantics.
//!
//! Besides the lazy record in the context, the last flag-setting operation is remembered in the
//! builder ([`tandem_tcg::FlagsMemo`]): a flag read later in the same block (tier 1) or
//! instruction (tier 0) is then computed inline from its operands, for the common operations
//! (ADD, SUB/CMP, logic, INC, DEC), with exactly the rules of [`crate::flags::eflags_from_cc`].
//! Anything else materializes all flags through the helper.

use tandem_tcg::{Builder, Cond, FlagsMemo, Width};

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
    *b.flags_memo() = Some(FlagsMemo {
        op: cc_op(kind, w),
        dst,
        src,
        src2,
    });
}

/// Forgets the remembered flag operation (after anything that writes flags another way).
pub fn forget_cc<B: Builder>(b: &mut B) {
    *b.flags_memo() = None;
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
    forget_cc(b);
}

fn is_true<B: Builder>(b: &mut B, v: B::Value) -> B::Value {
    let z = b.imm(0);
    b.icmp(Cond::Ne, v, z)
}

/// True if the remembered operation gives CF, PF, ZF, SF and OF inline.
pub fn memo_usable<B: Builder>(b: &mut B) -> bool {
    b.flags_memo().is_some_and(|m| {
        matches!(
            crate::flags::cc_kind_width(m.op),
            Some((
                CcKind::Add | CcKind::Sub | CcKind::Logic | CcKind::Inc | CcKind::Dec,
                _
            ))
        )
    })
}

/// One arithmetic flag (a single bit of `bit::ARITH`) as 0 or 1, computed from the
/// remembered operation when it is one of the common kinds; None otherwise.
pub fn flag_inline<B: Builder>(b: &mut B, mask: u64) -> Option<B::Value> {
    let memo = (*b.flags_memo())?;
    let (kind, w) = crate::flags::cc_kind_width(memo.op)?;
    let (dst, src, src2) = (memo.dst, memo.src, memo.src2);
    let sign = b.imm(w.sign_bit());
    let sign_of = |b: &mut B, v: B::Value| {
        let s = b.and(v, sign);
        is_true(b, s)
    };
    Some(match (kind, mask) {
        (CcKind::Add | CcKind::Sub | CcKind::Logic | CcKind::Inc | CcKind::Dec, bit::ZF) => {
            let z = b.imm(0);
            b.icmp(Cond::Eq, dst, z)
        }
        (CcKind::Add | CcKind::Sub | CcKind::Logic | CcKind::Inc | CcKind::Dec, bit::SF) => {
            sign_of(b, dst)
        }
        (CcKind::Add | CcKind::Sub | CcKind::Logic | CcKind::Inc | CcKind::Dec, bit::PF) => {
            let low = b.zext(dst, Width::W8);
            let n = b.popcnt(low);
            let one = b.imm(1);
            let odd = b.and(n, one);
            b.xor(odd, one)
        }
        (CcKind::Add, bit::CF) => b.icmp(Cond::Ult, dst, src),
        (CcKind::Sub, bit::CF) => b.icmp(Cond::Ult, src, src2),
        (CcKind::Logic, bit::CF | bit::OF) => b.imm(0),
        (CcKind::Inc | CcKind::Dec, bit::CF) => is_true(b, src2),
        (CcKind::Add, bit::OF) => {
            let a = b.xor(src, dst);
            let c = b.xor(src2, dst);
            let both = b.and(a, c);
            sign_of(b, both)
        }
        (CcKind::Sub, bit::OF) => {
            let a = b.xor(src, src2);
            let c = b.xor(src, dst);
            let both = b.and(a, c);
            sign_of(b, both)
        }
        (CcKind::Inc, bit::OF) => b.icmp(Cond::Eq, dst, sign),
        (CcKind::Dec, bit::OF) => {
            let one = b.imm(1);
            let max = b.sub(sign, one);
            b.icmp(Cond::Eq, dst, max)
        }
        _ => return None,
    })
}

/// One flag as 0 or 1.
pub fn flag<B: Builder>(b: &mut B, mask: u64) -> Result<B::Value, B::Trap> {
    if let Some(v) = flag_inline(b, mask) {
        return Ok(v);
    }
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
