//! x87/SSE state and control instructions (Intel SDM Vol. 2 for each; Vol. 1 §8.1 the x87
//! environment, §10.5 the FXSAVE image, §11.6.6 MXCSR): FXSAVE/FXRSTOR, FNSAVE/FRSTOR,
//! FNSTENV/FLDENV, FNSTCW/FLDCW, FNSTSW, FNINIT, FNCLEX, FWAIT, LDMXCSR/STMXCSR, and their
//! waiting forms.
//!
//! They move state between guest memory and the context's FXSAVE image, which is why they are
//! not host-executed like the arithmetic ([`crate::fpu`]): the host would save its own masked
//! run-time control words, and FXRSTOR of a bad MXCSR would fault in the emulator. Every read
//! completes (and every check passes) before state changes, so a fault leaves it as it was.
//!
//! Warts: real-mode and virtual-8086 environment layouts are written in the protected-mode
//! layout; FCS/FDS are stored as 0 (the image keeps 64-bit FIP/FDP).

use iced_x86::{Instruction, Mnemonic, OpKind, Register};

use super::operand::{bitness, ea, write_gpr};
use super::SystemOutcome;
use crate::context::X86Context;
use crate::cpu_state::{bits, FxsaveArea};
use crate::exception::{vector, Fault};
use crate::memory::LinearMemory;

/// The MXCSR bits this CPU implements (FXSAVE's MXCSR_MASK): flags, masks, RC, FZ and DAZ.
pub const MXCSR_MASK: u32 = 0xffff;

/// FSW exception flags + stack fault, and error summary + busy.
const FSW_FLAGS: u16 = 0x7f;
const FSW_ES_B: u16 = 0x8080;

fn nm_if_unavailable(ctx: &X86Context) -> Result<(), Fault> {
    if ctx.cpu.cr0 & (bits::CR0_EM | bits::CR0_TS) != 0 {
        return Err(Fault::new(vector::NM));
    }
    Ok(())
}

fn sse_available(ctx: &X86Context) -> Result<(), Fault> {
    if ctx.cpu.cr0 & bits::CR0_EM != 0 || ctx.cpu.cr4 & bits::CR4_OSFXSR == 0 {
        return Err(Fault::ud());
    }
    if ctx.cpu.cr0 & bits::CR0_TS != 0 {
        return Err(Fault::new(vector::NM));
    }
    Ok(())
}

/// #MF for a waiting instruction with an unmasked exception pending.
fn pending(ctx: &X86Context) -> Result<(), Fault> {
    if ctx.cpu.fx.fsw() & 0x80 != 0 {
        return Err(Fault::new(vector::MF));
    }
    Ok(())
}

/// FSW with ES and B recomputed from its flags against the masks in `fcw`.
fn summarize(fsw: u16, fcw: u16) -> u16 {
    if fsw & !fcw & 0x3f != 0 {
        fsw | FSW_ES_B
    } else {
        fsw & !FSW_ES_B
    }
}

fn read(mem: &mut dyn LinearMemory, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
    mem.read_linear(addr, buf, false)
}

fn write(mem: &mut dyn LinearMemory, addr: u64, data: &[u8]) -> Result<(), Fault> {
    mem.write_linear(addr, data, false)
}

fn aligned16(addr: u64) -> Result<(), Fault> {
    if addr & 15 != 0 {
        return Err(Fault::gp(0));
    }
    Ok(())
}

/// The 2-bit tag of a register's contents (00 valid, 01 zero, 10 special).
fn tag_of(reg: [u8; 10]) -> u16 {
    let exp = u16::from_le_bytes([reg[8], reg[9]]) & 0x7fff;
    let mant = u64::from_le_bytes(reg[..8].try_into().unwrap_or_default());
    match exp {
        0x7fff => 2,
        0 if mant == 0 => 1,
        0 => 2,
        _ if mant >> 63 == 0 => 2,
        _ => 0,
    }
}

/// The full tag word, by physical register, from the abridged one and the contents.
fn full_tags(fx: &FxsaveArea) -> u16 {
    let top = usize::from((fx.fsw() >> 11) & 7);
    let mut tags = 0u16;
    for phys in 0..8 {
        let tag = if fx.ftw() & (1 << phys) == 0 {
            3
        } else {
            tag_of(fx.st((phys + 8 - top) & 7))
        };
        tags |= tag << (2 * phys);
    }
    tags
}

/// The abridged tag word from a full one.
fn abridged(tags: u16) -> u8 {
    (0..8)
        .filter(|p| (tags >> (2 * p)) & 3 != 3)
        .fold(0u8, |a, p| a | (1 << p))
}

/// Operand size 16 selects the 14-byte environment layout.
fn env16(i: &Instruction) -> bool {
    matches!(
        i.memory_size(),
        iced_x86::MemorySize::FpuEnv14 | iced_x86::MemorySize::FpuState94
    )
}

/// The x87 environment in the protected-mode layout (28 or 14 bytes).
fn env_bytes(fx: &FxsaveArea, small: bool) -> Vec<u8> {
    let words = [
        u32::from(fx.fcw()),
        u32::from(fx.fsw()),
        u32::from(full_tags(fx)),
        fx.fip() as u32,
        u32::from(fx.fop() & 0x7ff) << 16,
        fx.fdp() as u32,
        0,
    ];
    if small {
        words
            .iter()
            .flat_map(|w| (*w as u16).to_le_bytes())
            .collect()
    } else {
        // The reserved upper halves of the 16-bit fields read as 1s on Intel CPUs.
        let mut out: Vec<u8> = Vec::with_capacity(28);
        for (n, w) in words.iter().enumerate() {
            let v = if matches!(n, 0..=2) {
                w | 0xffff_0000
            } else {
                *w
            };
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }
}

/// Loads an environment (as [`env_bytes`] lays it out) into `fx`.
fn load_env(fx: &mut FxsaveArea, env: &[u8], small: bool) {
    let word = |n: usize| -> u32 {
        if small {
            u32::from(u16::from_le_bytes([env[2 * n], env[2 * n + 1]]))
        } else {
            u32::from_le_bytes(env[4 * n..4 * n + 4].try_into().unwrap_or_default())
        }
    };
    let fcw = word(0) as u16;
    fx.set_fcw(fcw);
    set_fsw_moving_top(fx, summarize(word(1) as u16, fcw));
    fx.set_ftw(abridged(word(2) as u16));
    fx.set_fip(u64::from(word(3)));
    fx.set_fop(((word(4) >> 16) & 0x7ff) as u16);
    fx.set_fdp(u64::from(word(5)));
}

/// Sets FSW to `fsw`, whose TOP may differ: the image keeps registers in stack order
/// (slot i = ST(i) = physical (TOP + i) mod 8), so the slots rotate with TOP while the physical
/// registers stay where they are.
fn set_fsw_moving_top(fx: &mut FxsaveArea, fsw: u16) {
    let old_top = usize::from((fx.fsw() >> 11) & 7);
    let new_top = usize::from((fsw >> 11) & 7);
    if old_top != new_top {
        let old: Vec<[u8; 10]> = (0..8).map(|i| fx.st(i)).collect();
        for (i, _) in old.iter().enumerate() {
            fx.set_st(i, old[(new_top + i + 8 - old_top) & 7]);
        }
    }
    fx.set_fsw(fsw);
}

/// FNINIT's state.
fn reset_x87(fx: &mut FxsaveArea) {
    fx.set_fcw(0x37f);
    set_fsw_moving_top(fx, 0);
    fx.set_ftw(0);
    fx.set_fop(0);
    fx.set_fip(0);
    fx.set_fdp(0);
}

/// The FXSAVE image as the guest sees it; `wide` = 64-bit mode (XMM8-15 present).
fn fxsave_bytes(ctx: &X86Context, rex_w: bool, wide: bool) -> Vec<u8> {
    let mut img = ctx.cpu.fx;
    img.0[28..32].copy_from_slice(&MXCSR_MASK.to_le_bytes());
    if !rex_w {
        // 32-bit layout: FIP, FCS, FDP, FDS.
        let (fip, fdp) = (img.fip() as u32, img.fdp() as u32);
        img.0[8..16].fill(0);
        img.0[8..12].copy_from_slice(&fip.to_le_bytes());
        img.0[16..24].fill(0);
        img.0[16..20].copy_from_slice(&fdp.to_le_bytes());
    }
    for r in 0..8 {
        let off = 32 + 16 * r + 10;
        img.0[off..off + 6].fill(0);
    }
    img.0[..if wide { 416 } else { 288 }].to_vec()
}

/// Executes x87/SSE state instruction `i`.
pub(super) fn execute(
    ctx: &mut X86Context,
    i: &Instruction,
    mem: &mut dyn LinearMemory,
) -> Result<SystemOutcome, Fault> {
    use Mnemonic as M;
    let m = i.mnemonic();
    match m {
        M::Ldmxcsr | M::Stmxcsr => sse_available(ctx)?,
        M::Wait => {
            let cr0 = ctx.cpu.cr0;
            if cr0 & bits::CR0_TS != 0 && cr0 & bits::CR0_MP != 0 {
                return Err(Fault::new(vector::NM));
            }
        }
        _ => nm_if_unavailable(ctx)?,
    }
    if matches!(
        m,
        M::Wait | M::Fstcw | M::Fstsw | M::Fstenv | M::Fsave | M::Finit | M::Fclex | M::Fldcw
    ) || matches!(m, M::Frstor | M::Fldenv)
    {
        // FLDCW, FLDENV and FRSTOR also check first (SDM: "checks for pending unmasked
        // exceptions"), like the waiting forms.
        pending(ctx)?;
    }
    let addr = || ea(ctx, i);
    match m {
        M::Wait => {}
        M::Fninit | M::Finit => reset_x87(&mut ctx.cpu.fx),
        M::Fnclex | M::Fclex => {
            let fsw = ctx.cpu.fx.fsw();
            ctx.cpu.fx.set_fsw(fsw & !(FSW_FLAGS | FSW_ES_B));
        }
        M::Fnstcw | M::Fstcw => {
            let a = addr();
            write(mem, a, &ctx.cpu.fx.fcw().to_le_bytes())?;
        }
        M::Fldcw => {
            let mut b = [0u8; 2];
            read(mem, addr(), &mut b)?;
            let fcw = u16::from_le_bytes(b);
            ctx.cpu.fx.set_fcw(fcw);
            let fsw = ctx.cpu.fx.fsw();
            ctx.cpu.fx.set_fsw(summarize(fsw, fcw));
        }
        M::Fnstsw | M::Fstsw => {
            let fsw = u64::from(ctx.cpu.fx.fsw());
            if i.op_kind(0) == OpKind::Register {
                write_gpr(ctx, Register::AX, fsw)?;
            } else {
                write(mem, addr(), &(fsw as u16).to_le_bytes())?;
            }
        }
        M::Stmxcsr => write(mem, addr(), &ctx.cpu.fx.mxcsr().to_le_bytes())?,
        M::Ldmxcsr => {
            let mut b = [0u8; 4];
            read(mem, addr(), &mut b)?;
            let v = u32::from_le_bytes(b);
            if v & !MXCSR_MASK != 0 {
                return Err(Fault::gp(0));
            }
            ctx.cpu.fx.set_mxcsr(v);
        }
        M::Fnstenv | M::Fstenv => {
            let env = env_bytes(&ctx.cpu.fx, env16(i));
            write(mem, addr(), &env)?;
            let fcw = ctx.cpu.fx.fcw();
            ctx.cpu.fx.set_fcw(fcw | 0x3f);
        }
        M::Fldenv => {
            let small = env16(i);
            let mut env = vec![0u8; if small { 14 } else { 28 }];
            read(mem, addr(), &mut env)?;
            load_env(&mut ctx.cpu.fx, &env, small);
        }
        M::Fnsave | M::Fsave => {
            let small = env16(i);
            let mut out = env_bytes(&ctx.cpu.fx, small);
            for r in 0..8 {
                out.extend_from_slice(&ctx.cpu.fx.st(r));
            }
            write(mem, addr(), &out)?;
            reset_x87(&mut ctx.cpu.fx);
        }
        M::Frstor => {
            let small = env16(i);
            let env_len = if small { 14 } else { 28 };
            let mut buf = vec![0u8; env_len + 80];
            read(mem, addr(), &mut buf)?;
            let mut fx = ctx.cpu.fx;
            load_env(&mut fx, &buf[..env_len], small);
            for r in 0..8 {
                let off = env_len + 10 * r;
                fx.set_st(r, buf[off..off + 10].try_into().unwrap_or_default());
            }
            ctx.cpu.fx = fx;
        }
        M::Fxsave | M::Fxsave64 => {
            let a = addr();
            aligned16(a)?;
            let img = fxsave_bytes(ctx, m == M::Fxsave64, bitness(ctx) == 64);
            write(mem, a, &img)?;
        }
        M::Fxrstor | M::Fxrstor64 => {
            let a = addr();
            aligned16(a)?;
            let wide = bitness(ctx) == 64;
            let mut buf = vec![0u8; if wide { 416 } else { 288 }];
            read(mem, a, &mut buf)?;
            let mxcsr = u32::from_le_bytes(buf[24..28].try_into().unwrap_or_default());
            if mxcsr & !MXCSR_MASK != 0 {
                return Err(Fault::gp(0));
            }
            let mut fx = ctx.cpu.fx;
            fx.0[..buf.len()].copy_from_slice(&buf);
            if m == M::Fxrstor {
                let (fip, fdp) = (
                    u32::from_le_bytes(buf[8..12].try_into().unwrap_or_default()),
                    u32::from_le_bytes(buf[16..20].try_into().unwrap_or_default()),
                );
                fx.set_fip(u64::from(fip));
                fx.set_fdp(u64::from(fdp));
            }
            let fcw = fx.fcw();
            fx.set_fsw(summarize(fx.fsw(), fcw));
            ctx.cpu.fx = fx;
        }
        _ => return Err(Fault::ud()),
    }
    ctx.cpu.rip = i.next_ip();
    Ok(SystemOutcome::Continue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_classify_register_contents() {
        let mut fx = FxsaveArea::default();
        // TOP = 6: ST0 is physical 6, ST1 physical 7.
        fx.set_fsw(6 << 11);
        fx.set_ftw(0b1100_0000);
        let one = [0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f];
        fx.set_st(0, one);
        fx.set_st(1, [0; 10]);
        let tags = full_tags(&fx);
        assert_eq!(tags & 0x0fff, 0x0fff, "physical 0-5 empty");
        assert_eq!((tags >> 12) & 3, 0, "ST0 = 1.0 is valid");
        assert_eq!((tags >> 14) & 3, 1, "ST1 = 0.0 is zero");
        assert_eq!(abridged(tags), 0b1100_0000);
    }

    #[test]
    fn environment_round_trips() {
        let mut fx = FxsaveArea::default();
        fx.set_fcw(0x27f);
        fx.set_fsw(0x3800 | 0x01);
        fx.set_ftw(0x80);
        fx.set_fip(0x1234);
        fx.set_fdp(0x5678);
        fx.set_fop(0x5d9);
        for small in [false, true] {
            let env = env_bytes(&fx, small);
            assert_eq!(env.len(), if small { 14 } else { 28 });
            let mut back = FxsaveArea::default();
            load_env(&mut back, &env, small);
            assert_eq!(back.fcw(), 0x27f);
            assert_eq!(back.fsw(), 0x3801, "IE is masked: no ES");
            assert_eq!(back.ftw(), 0x80);
            // The 16-bit protected-mode layout has no room for the opcode.
            let fop = if small { 0 } else { 0x5d9 };
            assert_eq!((back.fip(), back.fdp(), back.fop()), (0x1234, 0x5678, fop));
        }
    }

    #[test]
    fn fninit_keeps_physical_registers_in_place() {
        let mut fx = FxsaveArea::default();
        // TOP = 3: ST0 is physical 3.
        fx.set_fsw(3 << 11);
        fx.set_st(0, [1; 10]);
        fx.set_st(5, [6; 10]);
        reset_x87(&mut fx);
        // TOP = 0: physical 3 is ST3, physical 0 (was ST5) is ST0.
        assert_eq!(fx.st(3), [1; 10]);
        assert_eq!(fx.st(0), [6; 10]);
        assert_eq!(fx.fsw(), 0);
    }

    #[test]
    fn unmasked_flags_set_the_error_summary() {
        assert_eq!(summarize(0x0004, 0x037b), 0x8084, "ZE unmasked");
        assert_eq!(summarize(0x8084, 0x037f), 0x0004, "masked again");
    }
}
