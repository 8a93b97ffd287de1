//! RDMSR and WRMSR (Intel SDM Vol. 2 "RDMSR"/"WRMSR"; Vol. 4 for the MSRs; Vol. 3A 11.11 the
//! MTRRs, 11.12.2 PAT values, 2.2.1 EFER).
//!
//! The MSRs carried in `CpuState` (see [`crate::msr`]), FS/GS base, EFER (LMA read-only, LME
//! frozen while paging is on), the MTRRs (kept in [`X86Context`], no effect on emulation) and
//! a few read-mostly MSRs Linux touches at boot. Anything else is #GP(0), which Linux's
//! `rdmsr_safe` expects for absent MSRs.
//!
//! The local APIC's MSRs (IA32_APIC_BASE, IA32_TSC_DEADLINE, x2APIC 0x800-0x8ff) belong to
//! the APIC: an engine with one routes them there before this model is asked. Without one,
//! IA32_APIC_BASE is a stored value and the others are #GP, as on a CPU without them.
//!
//! Warts: IA32_TSC writes are stored, not applied to the bus's clock.

use iced_x86::{Instruction, Mnemonic};

use super::descriptor_tables::require_cpl0;
use super::operand::canonical;
use super::SystemOutcome;
use crate::context::X86Context;
use crate::cpu_state::{bits, reg, sreg};
use crate::exception::Fault;
use crate::memory::SystemBus;
use crate::msr;

const IA32_PLATFORM_ID: u32 = 0x17;
const IA32_FEATURE_CONTROL: u32 = 0x3a;
const IA32_ARCH_CAPABILITIES: u32 = 0x10a;
/// Offered (CPUID.7:EBX bit 1) because with it, an invariant TSC and a known frequency,
/// Linux trusts the TSC without its clocksource watchdog, which on a loaded host compares
/// the TSC against a late-ticking reference, calls it unstable, and moves the guest to the
/// ACPI PM timer: a port read per clock read.
const IA32_TSC_ADJUST: u32 = 0x3b;
/// IA32_ARCH_CAPABILITIES: the emulated CPU executes nothing speculatively, so it is immune to
/// every transient-execution attack the MSR can declare (RDCL_NO, SSB_NO, MDS_NO, TAA_NO,
/// PSCHANGE_MC_NO, SBDR_SSDP_NO, FBSDP_NO, PSDP_NO, GDS_NO, RFDS_NO, and no L1D flush needed).
/// Saying so keeps Linux from page-table isolation, whose CR3 switch on every kernel entry
/// would flush the TLB each time.
const ARCH_CAPABILITIES_VALUE: u64 = 1
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 6)
    | (1 << 8)
    | (1 << 13)
    | (1 << 14)
    | (1 << 15)
    | (1 << 26)
    | (1 << 27);
const IA32_BIOS_SIGN_ID: u32 = 0x8b;
const IA32_MTRRCAP: u32 = 0xfe;
const IA32_MCG_CAP: u32 = 0x179;
const IA32_MCG_STATUS: u32 = 0x17a;
const IA32_MTRR_PHYSBASE0: u32 = 0x200;
const IA32_MTRR_DEF_TYPE: u32 = 0x2ff;
const IA32_FS_BASE: u32 = 0xc000_0100;
const IA32_GS_BASE: u32 = 0xc000_0101;

/// The fixed-range MTRR MSRs, in the order of [`X86Context::mtrr_fixed`].
const MTRR_FIXED: [u32; 11] = [
    0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f,
];

/// MTRRCAP: 8 variable ranges, fixed ranges and write-combining supported.
const MTRRCAP_VALUE: u64 = 8 | (1 << 8) | (1 << 10);
/// EFER bits a guest may write: SCE, LME, NXE (LMA is read-only, writes ignored).
const EFER_WRITABLE: u64 = bits::EFER_SCE | bits::EFER_LME | bits::EFER_NXE;

fn fixed_slot(index: u32) -> Option<usize> {
    MTRR_FIXED.iter().position(|&m| m == index)
}

fn var_slot(index: u32) -> Option<usize> {
    let off = index.checked_sub(IA32_MTRR_PHYSBASE0)?;
    (off < 16).then_some(off as usize)
}

/// A memory type byte valid in an MTRR or PAT: UC 0, WC 1, WT 4, WP 5, WB 6 (UC- 7 in PAT).
fn valid_memtype(t: u8, pat: bool) -> bool {
    matches!(t, 0 | 1 | 4 | 5 | 6) || (pat && t == 7)
}

/// The value RDMSR `index` returns, or #GP(0).
pub fn read_msr(ctx: &X86Context, index: u32, bus: &mut dyn SystemBus) -> Result<u64, Fault> {
    if let Some(i) = fixed_slot(index) {
        return Ok(ctx.mtrr_fixed[i]);
    }
    if let Some(i) = var_slot(index) {
        return Ok(ctx.mtrr_var[i]);
    }
    Ok(match index {
        msr::IA32_TSC => bus.tsc(),
        IA32_FS_BASE => ctx.cpu.seg[sreg::FS].base,
        IA32_GS_BASE => ctx.cpu.seg[sreg::GS].base,
        IA32_MTRRCAP => MTRRCAP_VALUE,
        IA32_ARCH_CAPABILITIES => ARCH_CAPABILITIES_VALUE,
        IA32_TSC_ADJUST => ctx.tsc_adjust,
        IA32_MTRR_DEF_TYPE => ctx.mtrr_def_type,
        // Locked, VMX off: Linux then leaves VMX alone.
        IA32_FEATURE_CONTROL => 1,
        IA32_PLATFORM_ID | IA32_BIOS_SIGN_ID | IA32_MCG_CAP | IA32_MCG_STATUS => 0,
        _ => return ctx.cpu.msr(index).ok_or(Fault::gp(0)),
    })
}

/// WRMSR `index` := `v` with the per-MSR checks; the outcome says whether paging changed.
pub fn write_msr(ctx: &mut X86Context, index: u32, v: u64) -> Result<SystemOutcome, Fault> {
    let gp = Fault::gp(0);
    if let Some(i) = fixed_slot(index) {
        if !v.to_le_bytes().iter().all(|&t| valid_memtype(t, false)) {
            return Err(gp);
        }
        ctx.mtrr_fixed[i] = v;
        return Ok(SystemOutcome::Continue);
    }
    if let Some(i) = var_slot(index) {
        // PHYSBASE: type in 7:0, bits 11:8 reserved; PHYSMASK: bits 10:0 reserved. Both
        // limited to a 52-bit physical address.
        let bad = if i % 2 == 0 {
            !valid_memtype(v as u8, false) || v & 0xf00 != 0
        } else {
            v & 0x7ff != 0
        };
        if bad || v >> 52 != 0 {
            return Err(gp);
        }
        ctx.mtrr_var[i] = v;
        return Ok(SystemOutcome::Continue);
    }
    match index {
        IA32_TSC_ADJUST => {
            ctx.tsc_adjust = v;
            return Ok(SystemOutcome::Continue);
        }
        msr::IA32_EFER => {
            if v & !(EFER_WRITABLE | bits::EFER_LMA) != 0 {
                return Err(gp);
            }
            let old = ctx.cpu.efer;
            // LME may not change while paging is on (SDM 9.8.5).
            if (old ^ v) & bits::EFER_LME != 0 && ctx.cpu.cr0 & bits::CR0_PG != 0 {
                return Err(gp);
            }
            ctx.cpu.efer = (v & EFER_WRITABLE) | (old & bits::EFER_LMA);
            return Ok(if (old ^ v) & bits::EFER_NXE != 0 {
                SystemOutcome::FlushTlb
            } else {
                SystemOutcome::EndBlock
            });
        }
        IA32_FS_BASE | IA32_GS_BASE => {
            if !canonical(v) {
                return Err(gp);
            }
            let s = if index == IA32_FS_BASE {
                sreg::FS
            } else {
                sreg::GS
            };
            ctx.cpu.seg[s].base = v;
            return Ok(SystemOutcome::EndBlock);
        }
        IA32_MTRR_DEF_TYPE => {
            // Type in 7:0, FE bit 10, E bit 11; the rest reserved.
            if v & !0xcff != 0 || !valid_memtype(v as u8, false) {
                return Err(gp);
            }
            ctx.mtrr_def_type = v;
            return Ok(SystemOutcome::Continue);
        }
        msr::IA32_PAT if !v.to_le_bytes().iter().all(|&t| valid_memtype(t, true)) => {
            return Err(gp);
        }
        msr::IA32_LSTAR
        | msr::IA32_CSTAR
        | msr::IA32_KERNEL_GS_BASE
        | msr::IA32_SYSENTER_ESP
        | msr::IA32_SYSENTER_EIP
            if !canonical(v) =>
        {
            return Err(gp);
        }
        // Microcode update trigger: accepted and ignored.
        IA32_BIOS_SIGN_ID | IA32_MCG_STATUS => return Ok(SystemOutcome::Continue),
        _ => {}
    }
    if ctx.cpu.set_msr(index, v) {
        Ok(SystemOutcome::EndBlock)
    } else {
        Err(gp)
    }
}

/// RDMSR (EDX:EAX := MSR[ECX]) and WRMSR (MSR[ECX] := EDX:EAX), CPL 0 only.
pub(super) fn execute(
    ctx: &mut X86Context,
    i: &Instruction,
    bus: &mut dyn SystemBus,
) -> Result<SystemOutcome, Fault> {
    require_cpl0(ctx)?;
    let index = ctx.cpu.gpr[reg::RCX] as u32;
    let outcome = if i.mnemonic() == Mnemonic::Rdmsr {
        let v = read_msr(ctx, index, bus)?;
        ctx.cpu.gpr[reg::RAX] = v & 0xffff_ffff;
        ctx.cpu.gpr[reg::RDX] = v >> 32;
        SystemOutcome::Continue
    } else {
        let v = (ctx.cpu.gpr[reg::RDX] << 32) | (ctx.cpu.gpr[reg::RAX] & 0xffff_ffff);
        write_msr(ctx, index, v)?
    };
    ctx.cpu.rip = i.next_ip();
    Ok(outcome)
}
