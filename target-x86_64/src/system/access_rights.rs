//! LAR, LSL, VERR, VERW (Intel SDM Vol. 2 for each; Vol. 3A 5.10.2-5.10.3 checking access
//! rights and limits). They never fault on a bad selector: ZF says whether it passed.
//!
//! Warts: descriptors are read 8 bytes wide even for 16-byte IA-32e system descriptors (the
//! upper half holds nothing LAR or LSL reports).

use iced_x86::{Instruction, Mnemonic};

use super::descriptor::{descriptor_address, is_null, Descriptor};
use super::operand::{long_mode, protected, read_rm, write_rm};
use super::SystemOutcome;
use crate::context::X86Context;
use crate::exception::Fault;
use crate::flags::bit;
use crate::memory::{LinearMemory, LinearMemoryExt};

fn system_type_ok(long: bool, lar: bool, t: u8) -> bool {
    match (long, lar) {
        (true, true) => matches!(t, 2 | 9 | 0xb | 0xc),
        (true, false) => matches!(t, 2 | 9 | 0xb),
        (false, true) => matches!(t, 1..=5 | 9 | 0xb | 0xc),
        (false, false) => matches!(t, 1..=3 | 9 | 0xb),
    }
}

/// The descriptor for `selector` if it exists and is visible at CPL and RPL (conforming code
/// is visible from anywhere).
fn visible(
    ctx: &X86Context,
    mem: &mut dyn LinearMemory,
    selector: u16,
) -> Result<Option<Descriptor>, Fault> {
    if is_null(selector) {
        return Ok(None);
    }
    let Ok(addr) = descriptor_address(ctx, selector, 8) else {
        return Ok(None);
    };
    let d = Descriptor {
        lo: mem.read_u64(addr, true)?,
        hi: 0,
    };
    let rpl = (selector & 3) as u8;
    if !d.is_conforming() && (d.dpl() < ctx.cpu.cpl() || d.dpl() < rpl) {
        return Ok(None);
    }
    Ok(Some(d))
}

/// LAR, LSL, VERR, VERW.
pub(super) fn execute(
    ctx: &mut X86Context,
    i: &Instruction,
    mem: &mut dyn LinearMemory,
) -> Result<SystemOutcome, Fault> {
    if !protected(ctx) {
        return Err(Fault::ud());
    }
    let m = i.mnemonic();
    let src = if matches!(m, Mnemonic::Verr | Mnemonic::Verw) {
        0
    } else {
        1
    };
    let selector = read_rm(ctx, mem, i, src, 2)? as u16;
    let d = visible(ctx, mem, selector)?;
    let long = long_mode(ctx);
    let pass = match (m, d) {
        (_, None) => None,
        (Mnemonic::Lar, Some(d)) => {
            (d.s() || system_type_ok(long, true, d.type_())).then_some((d.lo >> 32) & 0x00f0_ff00)
        }
        (Mnemonic::Lsl, Some(d)) => {
            (d.s() || system_type_ok(long, false, d.type_())).then_some(u64::from(d.limit()))
        }
        (Mnemonic::Verr, Some(d)) => d.is_readable().then_some(0),
        (Mnemonic::Verw, Some(d)) => d.is_writable_data().then_some(0),
        _ => return Err(Fault::ud()),
    };
    if let (Some(v), Mnemonic::Lar | Mnemonic::Lsl) = (pass, m) {
        // Register destination only; a 16-bit one takes the low half.
        write_rm(ctx, mem, i, 0, 2, v)?;
    }
    ctx.sync_flags();
    if pass.is_some() {
        ctx.cpu.rflags |= bit::ZF;
    } else {
        ctx.cpu.rflags &= !bit::ZF;
    }
    ctx.cpu.rip = i.next_ip();
    Ok(SystemOutcome::Continue)
}
