//! Control and debug registers: MOV to/from CR0/CR2/CR3/CR4/CR8 and DR0-DR7, CLTS, LMSW,
//! SMSW, INVLPG, WBINVD/INVD, XGETBV/XSETBV (Intel SDM Vol. 3A 2.5 control registers, 2.6
//! XCR0, 9.8.5 initializing IA-32e mode, 17.2 debug registers; Vol. 2 for each instruction).
//!
//! Writes that change paging ask the engine to flush its TLB ([`SystemOutcome::FlushTlb`]);
//! anything else that changes how code translates ends the block.
//!
//! Warts: CR4.PCIDE, LA57, VMXE, SMXE, PKE, CET are reserved here (#GP); CR3's reserved bits
//! are checked against a 52-bit physical address width; no debug-register breakpoints fire.
//! CR8 here is `CpuState::cr8`; an engine with a local APIC loads it from the TPR before a MOV
//! from CR8 and stores it back after a MOV to CR8, so the checks stay here.

use iced_x86::{Instruction, Mnemonic, OpKind};

use super::descriptor_tables::{require_cpl0, umip_check};
use super::operand::{bitness, ea, read_gpr, read_rm, write_gpr, write_rm};
use super::SystemOutcome;
use crate::context::X86Context;
use crate::cpu_state::{bits, reg, sreg};
use crate::exception::Fault;
use crate::memory::{LinearMemory, SystemBus};

const CR0_TS: u64 = 1 << 3;
/// CR0 bits that exist: PE MP EM TS ET NE WP AM NW CD PG. Other bits of CR0[31:0] are ignored
/// on write; CR0[63:32] must be 0.
const CR0_VALID: u64 = 0xe005_003f;
/// CR4 bits modelled: VME..UMIP (0-11), FSGSBASE (16), OSXSAVE (18), SMEP (20), SMAP (21).
const CR4_VALID: u64 = 0xfff | (1 << 16) | (1 << 18) | (1 << 20) | (1 << 21);
/// CR4 bits that change how linear addresses translate: PSE, PAE, PGE, SMEP, SMAP.
const CR4_PAGING: u64 = (1 << 4) | (1 << 5) | (1 << 7) | (1 << 20) | (1 << 21);
const CR4_DE: u64 = 1 << 3;
/// CR4.OSXSAVE.
pub(crate) const CR4_OSXSAVE: u64 = 1 << 18;

/// Writes CR0 with the architectural checks, activating or leaving IA-32e mode as EFER.LME
/// says when PG changes (SDM 9.8.5).
pub fn write_cr0(ctx: &mut X86Context, v: u64) -> Result<SystemOutcome, Fault> {
    if v >> 32 != 0 {
        return Err(Fault::gp(0));
    }
    let v = (v & CR0_VALID) | bits::CR0_ET;
    if v & bits::CR0_PG != 0 && v & bits::CR0_PE == 0 {
        return Err(Fault::gp(0));
    }
    if v & bits::CR0_NW != 0 && v & bits::CR0_CD == 0 {
        return Err(Fault::gp(0));
    }
    let old = ctx.cpu.cr0;
    let mut efer = ctx.cpu.efer;
    let enabling = v & bits::CR0_PG != 0 && old & bits::CR0_PG == 0;
    let disabling = v & bits::CR0_PG == 0 && old & bits::CR0_PG != 0;
    if enabling && efer & bits::EFER_LME != 0 {
        // IA-32e activation needs PAE paging, and may not start from 64-bit code.
        if ctx.cpu.cr4 & bits::CR4_PAE == 0 || ctx.cpu.seg[sreg::CS].l {
            return Err(Fault::gp(0));
        }
        efer |= bits::EFER_LMA;
    }
    if disabling && efer & bits::EFER_LMA != 0 {
        // Leaving IA-32e mode is only allowed from compatibility mode.
        if bitness(ctx) == 64 {
            return Err(Fault::gp(0));
        }
        efer &= !bits::EFER_LMA;
    }
    ctx.cpu.cr0 = v;
    ctx.cpu.efer = efer;
    let paging = bits::CR0_PG | bits::CR0_WP | bits::CR0_PE;
    Ok(if (old ^ v) & paging != 0 {
        SystemOutcome::FlushTlb
    } else {
        SystemOutcome::EndBlock
    })
}

/// Writes CR3 (checks reserved bits), CR4 (reserved bits; PAE stays set in IA-32e mode), CR2
/// or CR8 (TPR, 4 bits).
fn write_cr(ctx: &mut X86Context, n: usize, v: u64) -> Result<SystemOutcome, Fault> {
    match n {
        0 => write_cr0(ctx, v),
        2 => {
            ctx.cpu.cr2 = v;
            Ok(SystemOutcome::Continue)
        }
        3 => {
            if v >> 52 != 0 {
                return Err(Fault::gp(0));
            }
            ctx.cpu.cr3 = v;
            Ok(SystemOutcome::FlushNonGlobal)
        }
        4 => {
            if v & !CR4_VALID != 0 {
                return Err(Fault::gp(0));
            }
            if ctx.cpu.efer & bits::EFER_LMA != 0 && v & bits::CR4_PAE == 0 {
                return Err(Fault::gp(0));
            }
            let old = ctx.cpu.cr4;
            ctx.cpu.cr4 = v;
            Ok(if (old ^ v) & CR4_PAGING != 0 {
                SystemOutcome::FlushTlb
            } else {
                SystemOutcome::EndBlock
            })
        }
        8 => {
            if v & !0xf != 0 {
                return Err(Fault::gp(0));
            }
            ctx.cpu.cr8 = v;
            Ok(SystemOutcome::EndBlock)
        }
        _ => Err(Fault::ud()),
    }
}

fn read_cr(ctx: &X86Context, n: usize) -> Result<u64, Fault> {
    Ok(match n {
        0 => ctx.cpu.cr0,
        2 => ctx.cpu.cr2,
        3 => ctx.cpu.cr3,
        4 => ctx.cpu.cr4,
        8 => ctx.cpu.cr8,
        _ => return Err(Fault::ud()),
    })
}

/// DR4/DR5 alias DR6/DR7 unless CR4.DE (then #UD); DR8-15 do not exist.
fn dr_index(ctx: &X86Context, n: usize) -> Result<usize, Fault> {
    match n {
        0..=3 | 6 | 7 => Ok(n),
        4 | 5 if ctx.cpu.cr4 & CR4_DE == 0 => Ok(n + 2),
        _ => Err(Fault::ud()),
    }
}

/// MOV to or from a control or debug register (always register operands; CPL 0).
pub(super) fn execute_mov(ctx: &mut X86Context, i: &Instruction) -> Result<SystemOutcome, Fault> {
    if i.op_kind(0) != OpKind::Register || i.op_kind(1) != OpKind::Register {
        return Err(Fault::ud());
    }
    let (dst, src) = (i.op_register(0), i.op_register(1));
    require_cpl0(ctx)?;
    let outcome = if dst.is_cr() {
        let v = read_gpr(ctx, src)?;
        write_cr(ctx, dst.number(), v)?
    } else if src.is_cr() {
        let v = read_cr(ctx, src.number())?;
        write_gpr(ctx, dst, v)?;
        SystemOutcome::Continue
    } else if dst.is_dr() {
        let n = dr_index(ctx, dst.number())?;
        let v = read_gpr(ctx, src)?;
        if n >= 6 && v >> 32 != 0 {
            return Err(Fault::gp(0));
        }
        match n {
            6 => ctx.cpu.dr6 = v | 0xffff_0ff0,
            // Bits 10 (fixed 1), 11-12 and 14-15 (fixed 0).
            7 => ctx.cpu.dr7 = (v | 0x400) & !0xd800,
            _ => ctx.cpu.dr[n] = v,
        }
        SystemOutcome::EndBlock
    } else if src.is_dr() {
        let n = dr_index(ctx, src.number())?;
        let v = match n {
            6 => ctx.cpu.dr6,
            7 => ctx.cpu.dr7,
            _ => ctx.cpu.dr[n],
        };
        write_gpr(ctx, dst, v)?;
        SystemOutcome::Continue
    } else {
        return Err(Fault::ud());
    };
    ctx.cpu.rip = i.next_ip();
    Ok(outcome)
}

/// XSETBV: XCR0 needs x87 (bit 0), AVX (2) needs SSE (1), and only features CPUID leaf 0xD
/// reports may be enabled.
fn xsetbv(ctx: &mut X86Context, bus: &mut dyn SystemBus) -> Result<(), Fault> {
    require_cpl0(ctx)?;
    if ctx.cpu.gpr[reg::RCX] as u32 != 0 {
        return Err(Fault::gp(0));
    }
    let v = (ctx.cpu.gpr[reg::RDX] << 32) | (ctx.cpu.gpr[reg::RAX] & 0xffff_ffff);
    let reported = u64::from(bus.cpuid(0xd, 0)[0]);
    let supported = if reported == 0 { 0x3 } else { reported };
    if v & 1 == 0 || v & !supported != 0 || (v & 4 != 0 && v & 2 == 0) {
        return Err(Fault::gp(0));
    }
    ctx.cpu.xcr0 = v;
    Ok(())
}

/// CLTS, LMSW, SMSW, INVLPG, WBINVD, INVD, XGETBV, XSETBV.
pub(super) fn execute_misc(
    ctx: &mut X86Context,
    i: &Instruction,
    mem: &mut dyn LinearMemory,
    bus: &mut dyn SystemBus,
) -> Result<SystemOutcome, Fault> {
    let outcome = match i.mnemonic() {
        Mnemonic::Clts => {
            require_cpl0(ctx)?;
            ctx.cpu.cr0 &= !CR0_TS;
            SystemOutcome::EndBlock
        }
        Mnemonic::Lmsw => {
            require_cpl0(ctx)?;
            let src = read_rm(ctx, mem, i, 0, 2)?;
            // LMSW loads PE, MP, EM, TS; it can set PE but never clear it.
            let pe = (ctx.cpu.cr0 | src) & bits::CR0_PE;
            let v = (ctx.cpu.cr0 & !0xf) | (src & 0xe) | pe;
            write_cr0(ctx, v)?
        }
        Mnemonic::Smsw => {
            umip_check(ctx)?;
            // A register gets CR0 (zero-extended by the register size); memory 16 bits.
            write_rm(ctx, mem, i, 0, 2, ctx.cpu.cr0)?;
            SystemOutcome::Continue
        }
        Mnemonic::Invlpg => {
            if i.op_kind(0) != OpKind::Memory {
                return Err(Fault::ud());
            }
            require_cpl0(ctx)?;
            SystemOutcome::InvalidatePage(ea(ctx, i))
        }
        Mnemonic::Wbinvd | Mnemonic::Invd => {
            // Caches are not modelled: a privileged no-op.
            require_cpl0(ctx)?;
            SystemOutcome::Continue
        }
        Mnemonic::Xgetbv => {
            if ctx.cpu.cr4 & CR4_OSXSAVE == 0 {
                return Err(Fault::ud());
            }
            if ctx.cpu.gpr[reg::RCX] as u32 != 0 {
                return Err(Fault::gp(0));
            }
            ctx.cpu.gpr[reg::RAX] = ctx.cpu.xcr0 & 0xffff_ffff;
            ctx.cpu.gpr[reg::RDX] = ctx.cpu.xcr0 >> 32;
            SystemOutcome::Continue
        }
        Mnemonic::Xsetbv => {
            if ctx.cpu.cr4 & CR4_OSXSAVE == 0 {
                return Err(Fault::ud());
            }
            xsetbv(ctx, bus)?;
            SystemOutcome::EndBlock
        }
        _ => return Err(Fault::ud()),
    };
    ctx.cpu.rip = i.next_ip();
    Ok(outcome)
}
