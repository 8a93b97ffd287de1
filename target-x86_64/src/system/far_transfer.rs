//! Far JMP, far CALL and RETF (Intel SDM Vol. 2 "JMP", "CALL", "RET"; Vol. 3A 5.8.1-5.8.2
//! direct transfers to code segments, 5.8.6 returns to a calling procedure). A far JMP to a
//! 64-bit code segment is how a kernel enters 64-bit mode after enabling IA-32e paging.
//!
//! Warts: call gates, TSS and task-gate targets are #GP(selector) (neither is modelled); far
//! CALL is same-privilege only, which is all a direct call to a code segment can be.

use iced_x86::{Code, Instruction, Mnemonic, OpKind};

use super::descriptor::{is_null, read_descriptor, sel_code, set_accessed, Descriptor};
use super::operand::{canonical, ea, long_mode, protected, read_data, Stack};
use super::segment_load::load_segment;
use super::SystemOutcome;
use crate::context::X86Context;
use crate::cpu_state::sreg;
use crate::exception::{vector, Fault};
use crate::memory::LinearMemory;
use crate::segment::Segment;

/// Checks the code segment of a return (RETF, IRET) to `selector` from privilege `cpl`:
/// RPL >= CPL, a code segment whose DPL fits the RPL, present.
pub(crate) fn check_return_cs(
    ctx: &X86Context,
    mem: &mut dyn LinearMemory,
    selector: u16,
    cpl: u8,
) -> Result<Descriptor, Fault> {
    if is_null(selector) {
        return Err(Fault::gp(0));
    }
    let gp = Fault::gp(sel_code(selector));
    let rpl = (selector & 3) as u8;
    if rpl < cpl {
        return Err(gp);
    }
    let d = read_descriptor(ctx, mem, selector, false)?;
    if !d.is_code()
        || (d.is_conforming() && d.dpl() > rpl)
        || (!d.is_conforming() && d.dpl() != rpl)
    {
        return Err(gp);
    }
    if long_mode(ctx) && d.l() && d.db() {
        return Err(gp);
    }
    if !d.present() {
        return Err(Fault::with_code(vector::NP, sel_code(selector)));
    }
    Ok(d)
}

/// After a return to an outer level: data segment registers the new CPL may not use become
/// null (SDM 5.8.6 and the IRET pseudocode).
pub(crate) fn fix_data_segments(ctx: &mut X86Context, cpl: u8) {
    for s in [sreg::ES, sreg::DS, sreg::FS, sreg::GS] {
        let seg = &ctx.cpu.seg[s];
        let conforming_code = seg.s && seg.type_ & 0xc == 0xc;
        if !seg.unusable && !conforming_code && seg.dpl < cpl {
            ctx.cpu.seg[s] = Segment {
                selector: 0,
                unusable: true,
                ..Segment::default()
            };
        }
    }
}

/// The new RIP for `offset` in code segment `d`: full and canonical for 64-bit code, else cut
/// to the operand size and checked against the limit.
pub(crate) fn code_offset(
    ctx: &X86Context,
    d: &Descriptor,
    offset: u64,
    bytes: usize,
) -> Result<u64, Fault> {
    if long_mode(ctx) && d.l() {
        return if canonical(offset) {
            Ok(offset)
        } else {
            Err(Fault::gp(0))
        };
    }
    let off = if bytes == 2 {
        offset & 0xffff
    } else {
        offset & 0xffff_ffff
    };
    if off > u64::from(d.limit()) {
        return Err(Fault::gp(0));
    }
    Ok(off)
}

/// Checks a far JMP/CALL target code segment (conforming: DPL <= CPL; else RPL <= CPL and
/// DPL = CPL).
fn check_target_cs(
    ctx: &X86Context,
    mem: &mut dyn LinearMemory,
    selector: u16,
) -> Result<Descriptor, Fault> {
    if is_null(selector) {
        return Err(Fault::gp(0));
    }
    let gp = Fault::gp(sel_code(selector));
    let cpl = ctx.cpu.cpl();
    let d = read_descriptor(ctx, mem, selector, false)?;
    // System descriptors (call gates, TSSs, task gates) are not modelled.
    if !d.is_code() {
        return Err(gp);
    }
    let rpl = (selector & 3) as u8;
    let ok = if d.is_conforming() {
        d.dpl() <= cpl
    } else {
        rpl <= cpl && d.dpl() == cpl
    };
    if !ok || (long_mode(ctx) && d.l() && d.db()) {
        return Err(gp);
    }
    if !d.present() {
        return Err(Fault::with_code(vector::NP, sel_code(selector)));
    }
    Ok(d)
}

/// (selector, offset, operand bytes) of a far JMP/CALL.
fn far_target(
    ctx: &X86Context,
    mem: &mut dyn LinearMemory,
    i: &Instruction,
) -> Result<(u16, u64, usize), Fault> {
    match i.op_kind(0) {
        OpKind::FarBranch16 => Ok((i.far_branch_selector(), u64::from(i.far_branch16()), 2)),
        OpKind::FarBranch32 => Ok((i.far_branch_selector(), u64::from(i.far_branch32()), 4)),
        OpKind::Memory => {
            let bytes = match i.code() {
                Code::Jmp_m1616 | Code::Call_m1616 => 2,
                Code::Jmp_m1632 | Code::Call_m1632 => 4,
                Code::Jmp_m1664 | Code::Call_m1664 => 8,
                _ => return Err(Fault::ud()),
            };
            let addr = ea(ctx, i);
            let offset = read_data(mem, addr, bytes)?;
            let sel = read_data(mem, addr.wrapping_add(bytes as u64), 2)? as u16;
            Ok((sel, offset, bytes))
        }
        _ => Err(Fault::ud()),
    }
}

/// Loads CS in real mode: selector and base only.
fn real_cs(ctx: &mut X86Context, selector: u16) {
    let cs = &mut ctx.cpu.seg[sreg::CS];
    cs.selector = selector;
    cs.base = u64::from(selector) << 4;
}

/// Far JMP, far CALL, RETF.
pub(super) fn execute(
    ctx: &mut X86Context,
    i: &Instruction,
    mem: &mut dyn LinearMemory,
) -> Result<SystemOutcome, Fault> {
    if i.mnemonic() == Mnemonic::Retf {
        return retf(ctx, i, mem);
    }
    let (selector, offset, bytes) = far_target(ctx, mem, i)?;
    let is_call = i.mnemonic() == Mnemonic::Call;
    let mut st = Stack::current(ctx);
    if is_call {
        st.push(mem, bytes, u64::from(ctx.cpu.seg[sreg::CS].selector))?;
        st.push(mem, bytes, i.next_ip())?;
    }
    if !protected(ctx) {
        let mask = if bytes == 2 { 0xffff } else { 0xffff_ffff };
        real_cs(ctx, selector);
        ctx.cpu.rip = offset & mask;
    } else {
        let d = check_target_cs(ctx, mem, selector)?;
        let rip = code_offset(ctx, &d, offset, bytes)?;
        set_accessed(ctx, mem, selector, &d)?;
        let cpl = ctx.cpu.cpl();
        let mut cs = d.to_segment((selector & 0xfffc) | u16::from(cpl));
        if !d.is_conforming() {
            cs.dpl = cpl;
        }
        ctx.cpu.seg[sreg::CS] = cs;
        ctx.cpu.rip = rip;
    }
    if is_call {
        st.commit(ctx);
    }
    Ok(SystemOutcome::EndBlock)
}

/// RETF [imm16]: same-privilege or outer-privilege return.
fn retf(
    ctx: &mut X86Context,
    i: &Instruction,
    mem: &mut dyn LinearMemory,
) -> Result<SystemOutcome, Fault> {
    let bytes = match i.code() {
        Code::Retfw | Code::Retfw_imm16 => 2,
        Code::Retfd | Code::Retfd_imm16 => 4,
        _ => 8,
    };
    let release = if i.op_count() == 1 {
        u64::from(i.immediate16())
    } else {
        0
    };
    let mut st = Stack::current(ctx);
    let offset = st.pop(mem, bytes)?;
    let selector = st.pop(mem, bytes)? as u16;
    if !protected(ctx) {
        st.release(release);
        st.commit(ctx);
        real_cs(ctx, selector);
        ctx.cpu.rip = offset & if bytes == 2 { 0xffff } else { 0xffff_ffff };
        return Ok(SystemOutcome::EndBlock);
    }
    let cpl = ctx.cpu.cpl();
    let d = check_return_cs(ctx, mem, selector, cpl)?;
    let rip = code_offset(ctx, &d, offset, bytes)?;
    let rpl = (selector & 3) as u8;
    st.release(release);
    let outer = if rpl > cpl {
        let sp = st.pop(mem, bytes)?;
        let ss_sel = st.pop(mem, bytes)? as u16;
        let null_ok = long_mode(ctx) && d.l();
        let ss = load_segment(ctx, mem, sreg::SS, ss_sel, rpl, null_ok)?;
        Some((ss, sp.wrapping_add(release)))
    } else {
        None
    };
    let cs = d.to_segment(selector);
    ctx.cpu.seg[sreg::CS] = cs;
    ctx.cpu.rip = rip;
    match outer {
        Some((ss, sp)) => {
            let mask = if long_mode(ctx) && d.l() {
                u64::MAX
            } else if ss.db {
                0xffff_ffff
            } else {
                0xffff
            };
            ctx.cpu.seg[sreg::SS] = ss;
            ctx.cpu.gpr[crate::cpu_state::reg::RSP] = sp & mask;
            fix_data_segments(ctx, rpl);
        }
        None => st.commit(ctx),
    }
    Ok(SystemOutcome::EndBlock)
}
