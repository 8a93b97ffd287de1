//! The sixteen condition codes of Jcc, SETcc and CMOVcc (SDM Vol. 1, Appendix B).

use iced_x86::ConditionCode;
use tandem_tcg::{Builder, Cond};

use super::flag_ops::{flag_inline, memo_usable, rflags};
use crate::flags::bit;

/// 1 if condition `cc` holds, else 0; None for "no condition".
pub fn evaluate<B: Builder>(b: &mut B, cc: ConditionCode) -> Result<Option<B::Value>, B::Trap> {
    if cc == ConditionCode::None {
        return Ok(None);
    }
    // From the remembered operation when it covers every flag, else from RFLAGS.
    let f = if memo_usable(b) {
        None
    } else {
        Some(rflags(b)?)
    };
    let zero = b.imm(0);
    let test = |b: &mut B, mask: u64| match f {
        Some(f) => {
            let m = b.imm(mask);
            let x = b.and(f, m);
            b.icmp(Cond::Ne, x, zero)
        }
        None => {
            let mut v = b.imm(0);
            for one in [bit::CF, bit::PF, bit::ZF, bit::SF, bit::OF] {
                if mask & one != 0 {
                    // memo_usable guarantees these are computed inline (no helper, no trap).
                    let x = flag_inline(b, one).unwrap_or(zero);
                    v = b.or(v, x);
                }
            }
            v
        }
    };
    let one = b.imm(1);
    let v = match cc {
        ConditionCode::o | ConditionCode::no => test(b, bit::OF),
        ConditionCode::b | ConditionCode::ae => test(b, bit::CF),
        ConditionCode::e | ConditionCode::ne => test(b, bit::ZF),
        ConditionCode::be | ConditionCode::a => test(b, bit::CF | bit::ZF),
        ConditionCode::s | ConditionCode::ns => test(b, bit::SF),
        ConditionCode::p | ConditionCode::np => test(b, bit::PF),
        ConditionCode::l | ConditionCode::ge | ConditionCode::le | ConditionCode::g => {
            let s = test(b, bit::SF);
            let o = test(b, bit::OF);
            let lt = b.xor(s, o);
            if matches!(cc, ConditionCode::le | ConditionCode::g) {
                let z = test(b, bit::ZF);
                b.or(lt, z)
            } else {
                lt
            }
        }
        ConditionCode::None => return Ok(None),
    };
    // The "not" forms are the odd ones of each pair.
    let negate = matches!(
        cc,
        ConditionCode::no
            | ConditionCode::ae
            | ConditionCode::ne
            | ConditionCode::a
            | ConditionCode::ns
            | ConditionCode::np
            | ConditionCode::ge
            | ConditionCode::g
    );
    Ok(Some(if negate { b.xor(v, one) } else { v }))
}
