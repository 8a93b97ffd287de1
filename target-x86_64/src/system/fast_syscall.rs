//! SYSCALL, SYSRET and SWAPGS (Intel SDM Vol. 2 for each; Vol. 3A 5.8.8 fast system calls in
//! 64-bit mode). CS and SS come from IA32_STAR as fixed flat descriptors, not from the GDT.
//!
//! Warts: SYSCALL and SYSRET are IA-32e-mode only (Intel's rule; AMD's legacy-mode SYSCALL is
//! #UD here); compatibility-mode SYSCALL goes to IA32_CSTAR as on AMD. SYSENTER/SYSEXIT are not
//! implemented.

use iced_x86::{Code, Instruction, Mnemonic};

use super::operand::{bitness, canonical, long_mode};
use super::SystemOutcome;
use crate::context::X86Context;
use crate::cpu_state::{bits, reg, sreg};
use crate::exception::Fault;
use crate::segment::Segment;

/// RFLAGS bits SYSRET takes from R11 (everything but VM, VIF-related and reserved ones).
const SYSRET_FLAGS: u64 = 0x3c_7fd7;
/// RFLAGS.RF.
const RF: u64 = 1 << 16;

fn code_segment(selector: u16, dpl: u8, long: bool) -> Segment {
    Segment {
        dpl,
        ..Segment::flat(selector, true, long)
    }
}

fn stack_segment(selector: u16, dpl: u8) -> Segment {
    Segment {
        dpl,
        ..Segment::flat(selector, false, false)
    }
}

/// SYSCALL, SYSRET, SWAPGS.
pub(super) fn execute(ctx: &mut X86Context, i: &Instruction) -> Result<SystemOutcome, Fault> {
    let sce = ctx.cpu.efer & bits::EFER_SCE != 0;
    match i.mnemonic() {
        Mnemonic::Syscall => {
            if !sce || !long_mode(ctx) {
                return Err(Fault::ud());
            }
            ctx.sync_flags();
            let target = if bitness(ctx) == 64 {
                ctx.cpu.lstar
            } else {
                ctx.cpu.cstar
            };
            let sel = ((ctx.cpu.star >> 32) as u16) & 0xfffc;
            ctx.cpu.gpr[reg::RCX] = i.next_ip();
            ctx.cpu.gpr[reg::R8 + 3] = ctx.cpu.rflags & !RF;
            ctx.cpu.rflags = (ctx.cpu.rflags & !ctx.cpu.sfmask & !RF) | bits::RFLAGS_FIXED;
            ctx.cpu.seg[sreg::CS] = code_segment(sel, 0, true);
            ctx.cpu.seg[sreg::SS] = stack_segment(sel.wrapping_add(8), 0);
            ctx.cpu.rip = target;
        }
        Mnemonic::Sysret | Mnemonic::Sysretq => {
            if !sce || bitness(ctx) != 64 {
                return Err(Fault::ud());
            }
            if ctx.cpu.cpl() != 0 {
                return Err(Fault::gp(0));
            }
            let base = (ctx.cpu.star >> 48) as u16;
            let rcx = ctx.cpu.gpr[reg::RCX];
            let (cs, rip) = if i.code() == Code::Sysretq {
                // Intel raises #GP at CPL 0 for a non-canonical return address.
                if !canonical(rcx) {
                    return Err(Fault::gp(0));
                }
                (code_segment(base.wrapping_add(16) | 3, 3, true), rcx)
            } else {
                (code_segment(base | 3, 3, false), rcx & 0xffff_ffff)
            };
            ctx.cpu.rflags = (ctx.cpu.gpr[reg::R8 + 3] & SYSRET_FLAGS) | bits::RFLAGS_FIXED;
            ctx.cc_op = crate::flags::CC_EFLAGS;
            ctx.cpu.seg[sreg::CS] = cs;
            ctx.cpu.seg[sreg::SS] = stack_segment(base.wrapping_add(8) | 3, 3);
            ctx.cpu.rip = rip;
        }
        Mnemonic::Swapgs => {
            if bitness(ctx) != 64 {
                return Err(Fault::ud());
            }
            if ctx.cpu.cpl() != 0 {
                return Err(Fault::gp(0));
            }
            let gs = &mut ctx.cpu.seg[sreg::GS].base;
            std::mem::swap(gs, &mut ctx.cpu.kernel_gs_base);
            ctx.cpu.rip = i.next_ip();
        }
        _ => return Err(Fault::ud()),
    }
    Ok(SystemOutcome::EndBlock)
}
