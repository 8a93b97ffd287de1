//! The helper around a host stub: what the guest's exception masks mean, done in software.
//!
//! The host runs every x87/SSE instruction with all exceptions masked (an unmasked one would
//! be a SIGFPE in the emulator) and with the sticky exception flags cleared, so that afterwards
//! the flags show exactly what this instruction raised. Then, against the guest's own masks:
//! - SSE: a newly raised exception the guest left unmasked undoes the instruction (registers
//!   back as they were, as the SDM's "no result is written" says) and raises #XM, or #UD when
//!   CR4.OSXMMEXCPT is clear (SDM Vol. 1 §11.5.1); otherwise the flags merge into MXCSR.
//! - x87: an unmasked invalid-operation, denormal or divide-by-zero undoes the instruction; any
//!   unmasked exception sets FSW.ES and B, and the next waiting x87 instruction raises #MF
//!   (Vol. 1 §8.6). Unmasked overflow/underflow keep the masked response's result (hardware
//!   would store a re-biased exponent): a wart no mainstream OS exercises.
//!
//! x87 instructions also update the last-instruction and last-data pointers (FIP/FDP).

use tandem_tcg::Helper;

use crate::context::X86Context;
use crate::cpu_state::bits;
use crate::exception::vector;
use crate::flags::CC_EFLAGS;

/// Info bit: the stub restores and saves the whole FXSAVE image (x87 or MMX registers).
pub const WHOLE_IMAGE: u64 = 1;
/// Info bit: an x87 instruction that checks for pending exceptions and records FIP/FDP.
pub const X87: u64 = 2;
/// Info bit: the instruction reads or writes arithmetic flags.
pub const FLAGS: u64 = 4;
/// Info bit: the instruction writes arithmetic flags.
pub const WRITES_FLAGS: u64 = 8;

/// The six arithmetic flags (CF, PF, AF, ZF, SF, OF).
const ARITH_FLAGS: u64 = 0x8d5;
/// FSW: exception flags and stack fault.
const FSW_FLAGS: u16 = 0x7f;
/// FSW: error summary and busy.
const FSW_ES_B: u16 = 0x8080;
/// x87 invalid operation, denormal and zero divide: the exceptions that leave no result.
const X87_NO_RESULT: u16 = 0x07;
/// MXCSR: all six exception masks.
const MXCSR_MASKS: u32 = 0x1f80;

/// Runs the stub at `stub` on the context: `info` = the bits above, `rip` and `ea` the
/// instruction's address and memory operand's (for FIP/FDP).
extern "C" fn helper_host_exec(ctx: *mut u8, stub: u64, info: u64, rip: u64, ea: u64) -> u64 {
    // SAFETY: both tiers call helpers with the vCPU's X86Context as the context block, and
    // nothing else references it during the call.
    let ctx = unsafe { &mut *ctx.cast::<X86Context>() };
    let whole = info & WHOLE_IMAGE != 0;
    let x87 = info & X87 != 0;
    let fcw = ctx.cpu.fx.fcw();
    let fsw = ctx.cpu.fx.fsw();
    let mxcsr = ctx.cpu.fx.mxcsr();
    if x87 && fsw & 0x80 != 0 {
        ctx.helper_vector = u64::from(vector::MF) + 1;
        ctx.helper_error = u64::MAX;
        return 0;
    }
    let unmasked = (whole && fcw & 0x3f != 0x3f) || mxcsr & MXCSR_MASKS != MXCSR_MASKS;
    // Only a guest that unmasked an exception can need the registers back.
    let before = if unmasked {
        Some((ctx.cpu.fx, ctx.cpu.gpr))
    } else {
        None
    };
    ctx.cpu.fx.set_mxcsr((mxcsr & !0x3f) | MXCSR_MASKS);
    if whole {
        ctx.cpu.fx.set_fcw(fcw | 0x3f);
        ctx.cpu.fx.set_fsw(fsw & !(FSW_FLAGS | FSW_ES_B));
    }
    if info & FLAGS != 0 {
        ctx.sync_flags();
        ctx.fp_flags = (ctx.cpu.rflags & ARITH_FLAGS) | 2;
    }

    // SAFETY: `stub` is an address from the stub store: code made by `stub::build` for this
    // instruction, with this signature, never freed; it touches only the context.
    let f: extern "C" fn(*mut X86Context) = unsafe { std::mem::transmute(stub as usize) };
    f(ctx);

    // Nor is the host's MXCSR_MASK the guest's (0x2ffff on AMD): the model's is 0xffff.
    if let Some(mask) = ctx.cpu.fx.0.get_mut(28..32) {
        mask.copy_from_slice(&crate::system::MXCSR_MASK.to_le_bytes());
    }
    let sse_raised = ctx.cpu.fx.mxcsr() & 0x3f;
    let sse_unmasked = sse_raised & !(mxcsr >> 7) & 0x3f;
    if sse_unmasked != 0 {
        if let Some((fx, gpr)) = before {
            ctx.cpu.fx = fx;
            ctx.cpu.gpr = gpr;
        }
        ctx.cpu.fx.set_mxcsr(mxcsr | sse_raised);
        let v = if ctx.cpu.cr4 & bits::CR4_OSXMMEXCPT != 0 {
            vector::XM
        } else {
            vector::UD
        };
        ctx.helper_vector = u64::from(v) + 1;
        ctx.helper_error = u64::MAX;
        return 0;
    }
    ctx.cpu.fx.set_mxcsr(mxcsr | sse_raised);
    if whole {
        let after = ctx.cpu.fx.fsw();
        let raised = after & FSW_FLAGS;
        let unmasked = raised & !fcw & 0x3f;
        if unmasked & X87_NO_RESULT != 0 {
            if let Some((fx, _)) = before {
                ctx.cpu.fx = fx;
            }
            ctx.cpu.fx.set_fcw(fcw);
            ctx.cpu.fx.set_fsw(fsw | raised | FSW_ES_B);
        } else {
            let sticky = (after & !(FSW_FLAGS | FSW_ES_B)) | ((fsw | raised) & FSW_FLAGS);
            let es = if (fsw | raised) & !fcw & 0x3f != 0 {
                FSW_ES_B
            } else {
                0
            };
            ctx.cpu.fx.set_fcw(fcw);
            ctx.cpu.fx.set_fsw(sticky | es);
        }
        if x87 {
            ctx.cpu.fx.set_fip(rip);
            ctx.cpu.fx.set_fdp(ea);
            // The stub's FXSAVE stored the host's FOP: AMD's keeps the last opcode, Intel's
            // (since FOP compatibility mode went away) only an unmasked exception's. The
            // model is Intel's, whatever the host: zero.
            ctx.cpu.fx.set_fop(0);
        }
    }
    if info & WRITES_FLAGS != 0 {
        ctx.cpu.rflags = (ctx.cpu.rflags & !ARITH_FLAGS) | (ctx.fp_flags & ARITH_FLAGS);
        ctx.cc_op = CC_EFLAGS;
    }
    0
}

/// `helper_host_exec`.
pub const HOST_EXEC: Helper = Helper {
    func: helper_host_exec,
    name: "host_exec",
    may_raise: true,
};
