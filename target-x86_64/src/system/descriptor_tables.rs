//! LGDT, LIDT, SGDT, SIDT, LLDT, LTR, SLDT, STR (Intel SDM Vol. 2 for each; Vol. 3A 2.4 the
//! memory-management registers, 3.5.1 the GDT/LDT, 7.2.4 the task register, 2.5 CR4.UMIP).
//!
//! LTR marks the TSS descriptor busy in memory, as the CPU does. In IA-32e mode LDT and TSS
//! descriptors are 16 bytes (Vol. 3A 7.2.3) and their bases 64-bit.
//!
//! Warts: the 16-bit operand-size forms of SGDT/SIDT store all 32 base bits (as every CPU since
//! the 486 does, though the SDM calls the top byte undefined).

use iced_x86::{Code, Instruction, Mnemonic, OpKind};

use super::descriptor::{is_null, read_descriptor, sel_code, set_tss_busy};
use super::operand::{
    bitness, canonical, ea, long_mode, protected, read_data, read_rm, write_data, write_rm,
};
use super::SystemOutcome;
use crate::context::X86Context;
use crate::cpu_state::DescriptorTable;
use crate::exception::{vector, Fault};
use crate::memory::LinearMemory;

/// CR4.UMIP: SGDT/SIDT/SLDT/SMSW/STR are privileged.
pub(crate) const CR4_UMIP: u64 = 1 << 11;

/// #GP(0) unless CPL 0.
pub(crate) fn require_cpl0(ctx: &X86Context) -> Result<(), Fault> {
    if ctx.cpu.cpl() != 0 {
        Err(Fault::gp(0))
    } else {
        Ok(())
    }
}

/// #GP(0) for the UMIP-protected stores outside CPL 0.
pub(crate) fn umip_check(ctx: &X86Context) -> Result<(), Fault> {
    if ctx.cpu.cr4 & CR4_UMIP != 0 && ctx.cpu.cpl() != 0 {
        Err(Fault::gp(0))
    } else {
        Ok(())
    }
}

fn load_table(
    ctx: &X86Context,
    mem: &mut dyn LinearMemory,
    i: &Instruction,
) -> Result<DescriptorTable, Fault> {
    if i.op_kind(0) != OpKind::Memory {
        return Err(Fault::ud());
    }
    require_cpl0(ctx)?;
    let addr = ea(ctx, i);
    let limit = read_data(mem, addr, 2)? as u16;
    let base_addr = addr.wrapping_add(2);
    let base = if bitness(ctx) == 64 {
        let b = read_data(mem, base_addr, 8)?;
        if !canonical(b) {
            return Err(Fault::gp(0));
        }
        b
    } else {
        let b = read_data(mem, base_addr, 4)?;
        // The 16-bit operand-size form loads a 24-bit base.
        if matches!(i.code(), Code::Lgdt_m1632_16 | Code::Lidt_m1632_16) {
            b & 0x00ff_ffff
        } else {
            b
        }
    };
    Ok(DescriptorTable { base, limit })
}

fn store_table(
    ctx: &X86Context,
    mem: &mut dyn LinearMemory,
    i: &Instruction,
    t: DescriptorTable,
) -> Result<(), Fault> {
    if i.op_kind(0) != OpKind::Memory {
        return Err(Fault::ud());
    }
    umip_check(ctx)?;
    let addr = ea(ctx, i);
    let base_bytes = if bitness(ctx) == 64 { 8 } else { 4 };
    // Base first, then limit: the whole operand faults before anything is stored only if
    // the pages differ; that is as close to atomic as the CPU gets either.
    write_data(mem, addr.wrapping_add(2), base_bytes, t.base)?;
    write_data(mem, addr, 2, u64::from(t.limit))
}

/// LLDT with `selector` (SDM "LLDT"): null leaves the LDT unusable.
fn lldt(ctx: &mut X86Context, mem: &mut dyn LinearMemory, selector: u16) -> Result<(), Fault> {
    if is_null(selector) {
        ctx.cpu.ldt = crate::segment::Segment {
            selector,
            unusable: true,
            ..crate::segment::Segment::null_ldt()
        };
        return Ok(());
    }
    if selector & 4 != 0 {
        return Err(Fault::gp(sel_code(selector)));
    }
    let d = read_descriptor(ctx, mem, selector, long_mode(ctx))?;
    if d.s() || d.type_() != 2 {
        return Err(Fault::gp(sel_code(selector)));
    }
    if !d.present() {
        return Err(Fault::with_code(vector::NP, sel_code(selector)));
    }
    if long_mode(ctx) && !canonical(d.base()) {
        return Err(Fault::gp(sel_code(selector)));
    }
    ctx.cpu.ldt = d.to_segment(selector);
    Ok(())
}

/// LTR with `selector` (SDM "LTR"): an available TSS, marked busy in memory and in TR.
fn ltr(ctx: &mut X86Context, mem: &mut dyn LinearMemory, selector: u16) -> Result<(), Fault> {
    if is_null(selector) {
        return Err(Fault::gp(0));
    }
    if selector & 4 != 0 {
        return Err(Fault::gp(sel_code(selector)));
    }
    let long = long_mode(ctx);
    let d = read_descriptor(ctx, mem, selector, long)?;
    // Available 32/64-bit TSS (9); the 16-bit one (1) only outside IA-32e mode.
    let ok_type = d.type_() == 9 || (!long && d.type_() == 1);
    if d.s() || !ok_type {
        return Err(Fault::gp(sel_code(selector)));
    }
    if !d.present() {
        return Err(Fault::with_code(vector::NP, sel_code(selector)));
    }
    if long && !canonical(d.base()) {
        return Err(Fault::gp(sel_code(selector)));
    }
    set_tss_busy(ctx, mem, selector, &d)?;
    let mut tr = d.to_segment(selector);
    tr.type_ |= 2;
    ctx.cpu.tr = tr;
    Ok(())
}

/// The descriptor-table instructions.
pub(super) fn execute(
    ctx: &mut X86Context,
    i: &Instruction,
    mem: &mut dyn LinearMemory,
) -> Result<SystemOutcome, Fault> {
    match i.mnemonic() {
        Mnemonic::Lgdt => ctx.cpu.gdt = load_table(ctx, mem, i)?,
        Mnemonic::Lidt => ctx.cpu.idt = load_table(ctx, mem, i)?,
        Mnemonic::Sgdt => store_table(ctx, mem, i, ctx.cpu.gdt)?,
        Mnemonic::Sidt => store_table(ctx, mem, i, ctx.cpu.idt)?,
        m @ (Mnemonic::Lldt | Mnemonic::Ltr) => {
            // Protected mode only (#UD in real mode), CPL 0.
            if !protected(ctx) {
                return Err(Fault::ud());
            }
            require_cpl0(ctx)?;
            let selector = read_rm(ctx, mem, i, 0, 2)? as u16;
            if m == Mnemonic::Lldt {
                lldt(ctx, mem, selector)?;
            } else {
                ltr(ctx, mem, selector)?;
            }
        }
        m @ (Mnemonic::Sldt | Mnemonic::Str) => {
            if !protected(ctx) {
                return Err(Fault::ud());
            }
            umip_check(ctx)?;
            let sel = if m == Mnemonic::Sldt {
                ctx.cpu.ldt.selector
            } else {
                ctx.cpu.tr.selector
            };
            // A register destination gets the zero-extended selector; memory gets 16 bits.
            write_rm(ctx, mem, i, 0, 2, u64::from(sel))?;
        }
        _ => return Err(Fault::ud()),
    }
    ctx.cpu.rip = i.next_ip();
    Ok(SystemOutcome::EndBlock)
}
