//! Helpers that both tiers call (`extern "C"`, tcg's one signature): lazy-flag folding,
//! DIV/IDIV (SDM Vol. 2A, with #DE), POPF (Vol. 2B, the privilege rules).
//!
//! A helper gets the vCPU's [`X86Context`] as `*mut u8`, may read and write registers in it,
//! and raises a guest exception by setting `helper_vector` = vector + 1 (and `helper_error`)
//! before returning; those helpers are `may_raise`, so the builder checks after the call.

use tandem_tcg::{Helper, Width};

use crate::context::X86Context;
use crate::cpu_state::{bits, reg};
use crate::exception::vector;

/// Folds the lazy flags into RFLAGS and returns it.
extern "C" fn helper_sync_flags(ctx: *mut u8, _: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: both tiers call helpers with the vCPU's X86Context as the context block.
    let ctx = unsafe { context(ctx) };
    ctx.sync_flags();
    ctx.cpu.rflags
}

/// `helper_sync_flags`.
pub const SYNC_FLAGS: Helper = Helper {
    func: helper_sync_flags,
    name: "sync_flags",
    may_raise: false,
};

/// The context block a helper receives.
///
/// # Safety
/// `ctx` must be the vCPU's `X86Context`, as both tiers pass it (tcg's helper ABI), and no
/// other reference to it may be live during the helper.
unsafe fn context<'a>(ctx: *mut u8) -> &'a mut X86Context {
    // SAFETY: the caller guarantees `ctx` points to a live, exclusively borrowed X86Context.
    unsafe { &mut *ctx.cast::<X86Context>() }
}

/// Records guest exception `vector` (with `error`, if any) for the builder to raise.
fn raise(ctx: &mut X86Context, vector: u8, error: Option<u32>) {
    ctx.helper_vector = u64::from(vector) + 1;
    ctx.helper_error = error.map_or(u64::MAX, u64::from);
}

/// The dividend of a `bits`-wide DIV/IDIV (AX, DX:AX, EDX:EAX or RDX:RAX) as 128 bits.
fn dividend(ctx: &X86Context, bits: u64) -> u128 {
    let (rax, rdx) = (ctx.cpu.gpr[reg::RAX], ctx.cpu.gpr[reg::RDX]);
    match bits {
        8 => u128::from(rax & 0xffff),
        16 => (u128::from(rdx & 0xffff) << 16) | u128::from(rax & 0xffff),
        32 => (u128::from(rdx & 0xffff_ffff) << 32) | u128::from(rax & 0xffff_ffff),
        _ => (u128::from(rdx) << 64) | u128::from(rax),
    }
}

/// Writes quotient and remainder where a `bits`-wide DIV/IDIV puts them: AL/AH, AX/DX,
/// EAX/EDX (zero-extended, as every 32-bit register write) or RAX/RDX.
fn store_quotient(ctx: &mut X86Context, bits: u64, q: u64, r: u64) {
    let g = &mut ctx.cpu.gpr;
    match bits {
        8 => g[reg::RAX] = (g[reg::RAX] & !0xffff) | ((r & 0xff) << 8) | (q & 0xff),
        16 => {
            g[reg::RAX] = (g[reg::RAX] & !0xffff) | (q & 0xffff);
            g[reg::RDX] = (g[reg::RDX] & !0xffff) | (r & 0xffff);
        }
        32 => {
            g[reg::RAX] = q & 0xffff_ffff;
            g[reg::RDX] = r & 0xffff_ffff;
        }
        _ => {
            g[reg::RAX] = q;
            g[reg::RDX] = r;
        }
    }
}

/// DIV: `a0` = the divisor (zero-extended), `a1` = the operand width in bits (8, 16, 32, 64).
/// Divides the implicit dividend and writes quotient and remainder; #DE (registers untouched)
/// on a zero divisor or a quotient that does not fit. Flags are left as they were (the SDM
/// leaves all six undefined).
extern "C" fn helper_div(ctx: *mut u8, divisor: u64, bits: u64, _: u64, _: u64) -> u64 {
    // SAFETY: both tiers call helpers with the vCPU's X86Context as the context block.
    let ctx = unsafe { context(ctx) };
    let mask = Width::from_bytes((bits / 8) as usize).map_or(u64::MAX, |w| w.mask());
    let n = dividend(ctx, bits);
    let d = u128::from(divisor & mask);
    match n.checked_div(d) {
        Some(q) if q <= u128::from(mask) => {
            let r = n % d;
            store_quotient(ctx, bits, q as u64, r as u64);
        }
        _ => raise(ctx, vector::DE, None),
    }
    0
}

/// `helper_div`.
pub const DIV: Helper = Helper {
    func: helper_div,
    name: "div",
    may_raise: true,
};

/// IDIV: as [`DIV`] but signed: the quotient truncates toward zero, the remainder has the
/// dividend's sign; #DE on a zero divisor or a quotient outside the signed range (which
/// includes the most negative dividend divided by -1).
extern "C" fn helper_idiv(ctx: *mut u8, divisor: u64, bits: u64, _: u64, _: u64) -> u64 {
    // SAFETY: both tiers call helpers with the vCPU's X86Context as the context block.
    let ctx = unsafe { context(ctx) };
    let w = Width::from_bytes((bits / 8) as usize).unwrap_or(Width::W64);
    // The dividend is twice the operand width (AX for the 8-bit form): sign-extend it.
    let nbits = 2 * w.bits();
    let raw = dividend(ctx, bits);
    let n = ((raw << (128 - nbits)) as i128) >> (128 - nbits);
    let d = i128::from(w.sext(divisor) as i64);
    let min = -(1i128 << (w.bits() - 1));
    let max = (1i128 << (w.bits() - 1)) - 1;
    // checked_div is None for d == 0 (and i128::MIN / -1, which a 128-bit dividend cannot be).
    match (n.checked_div(d), n.checked_rem(d)) {
        (Some(q), Some(r)) if (min..=max).contains(&q) => {
            store_quotient(ctx, bits, q as u64, r as u64);
        }
        _ => raise(ctx, vector::DE, None),
    }
    0
}

/// `helper_idiv`.
pub const IDIV: Helper = Helper {
    func: helper_idiv,
    name: "idiv",
    may_raise: true,
};

/// The RFLAGS bits POPF may change at all (CF, PF, AF, ZF, SF, TF, IF, DF, OF, IOPL, NT, AC,
/// ID): RF is cleared, VM, VIF, VIP and the reserved bits are kept.
const POPF_MODIFIABLE: u64 = 0x0024_7fd5;
const IOPL: u64 = 3 << 12;
const VM: u64 = 1 << 17;
const RF: u64 = 1 << 16;

/// POPF/POPFD/POPFQ: `a0` = the popped value, `a1` = the operand size in bytes. Writes RFLAGS
/// by the SDM's rules: at CPL 0 every modifiable flag (IOPL included); at 0 < CPL <= IOPL all
/// but IOPL; at CPL > IOPL neither IF nor IOPL; a 16-bit POPF changes only the low 16 bits. In
/// virtual-8086 mode IOPL must be 3 (then IOPL is kept), else #GP(0) (VME is not modelled).
/// The lazy flags are folded first, so RFLAGS holds the whole result afterwards.
extern "C" fn helper_popf(ctx: *mut u8, value: u64, bytes: u64, _: u64, _: u64) -> u64 {
    // SAFETY: both tiers call helpers with the vCPU's X86Context as the context block.
    let ctx = unsafe { context(ctx) };
    ctx.sync_flags();
    let old = ctx.cpu.rflags;
    let iopl = (old & IOPL) >> 12;
    let mut mask = POPF_MODIFIABLE;
    if old & VM != 0 {
        if iopl < 3 {
            raise(ctx, vector::GP, Some(0));
            return 0;
        }
        mask &= !IOPL;
    } else {
        let cpl = u64::from(ctx.cpu.cpl());
        if cpl > 0 {
            mask &= !IOPL;
        }
        if cpl > iopl {
            mask &= !bits::RFLAGS_IF;
        }
    }
    if bytes == 2 {
        mask &= 0xffff;
    }
    let new = (old & !mask & !RF) | (value & mask) | bits::RFLAGS_FIXED;
    ctx.cpu.rflags = new;
    new
}

/// `helper_popf`.
pub const POPF: Helper = Helper {
    func: helper_popf,
    name: "popf",
    may_raise: true,
};
