//! Legacy protected-mode delivery (Intel SDM Vol. 3A 6.11-6.12: 8-byte interrupt and trap
//! gates of 16 or 32 bits, the inner-privilege stack from the TSS's SSn:ESPn per 7.2.1) and
//! real-address-mode delivery through the IVT (20.1.4).
//!
//! Warts: task gates are [`Step::Unsupported`]; the new stack's segment limit is not checked;
//! data segment registers are left alone on an inner-privilege entry (they matter only to
//! virtual-8086 mode, which is not modelled).

use super::long_mode::target_code_segment;
use super::{
    ext_bit, idt_code, pushed_error_code, return_rip, Event, EventKind, Step, CLEARED_FLAGS,
};
use crate::context::X86Context;
use crate::cpu_state::{bits, reg, sreg};
use crate::exception::{vector, Fault};
use crate::memory::{LinearMemory, LinearMemoryExt};
use crate::segment::Segment;
use crate::system::descriptor::{is_null, read_descriptor, sel_code};
use crate::system::operand::Stack;

/// The inner stack SSn:ESPn for privilege `cpl` from the current 16- or 32-bit TSS.
fn tss_stack(
    ctx: &X86Context,
    mem: &mut dyn LinearMemory,
    cpl: u8,
    ext: u32,
) -> Result<(u16, u64), Fault> {
    let tr = &ctx.cpu.tr;
    let ts = Fault::with_code(vector::TS, sel_code(tr.selector) | ext);
    if tr.unusable || !tr.present {
        return Err(ts);
    }
    let n = u64::from(cpl);
    // 32-bit TSS (types 9/11): ESPn at 4 + 8n, SSn at 8 + 8n; 16-bit (1/3): 2 + 4n, 4 + 4n.
    let wide = tr.type_ & 0x8 != 0;
    let (sp_off, ss_off) = if wide {
        (4 + 8 * n, 8 + 8 * n)
    } else {
        (2 + 4 * n, 4 + 4 * n)
    };
    if ss_off + 1 > u64::from(tr.limit) {
        return Err(ts);
    }
    let sp = if wide {
        u64::from(mem.read_u32(tr.base.wrapping_add(sp_off) & 0xffff_ffff, true)?)
    } else {
        u64::from(mem.read_u16(tr.base.wrapping_add(sp_off) & 0xffff_ffff, true)?)
    };
    let ss = mem.read_u16(tr.base.wrapping_add(ss_off) & 0xffff_ffff, true)?;
    Ok((ss, sp))
}

/// Checks the inner stack segment from the TSS (SDM 6.12.1.1 and the INT n pseudocode):
/// errors are #TS, or #SS when not present.
fn inner_stack_segment(
    ctx: &X86Context,
    mem: &mut dyn LinearMemory,
    ss: u16,
    cpl: u8,
    ext: u32,
) -> Result<Segment, Fault> {
    let ts = Fault::with_code(vector::TS, sel_code(ss) | ext);
    if is_null(ss) {
        return Err(Fault::with_code(vector::TS, ext));
    }
    if (ss & 3) as u8 != cpl {
        return Err(ts);
    }
    let d = read_descriptor(ctx, mem, ss, false).map_err(|_| ts)?;
    if !d.is_writable_data() || d.dpl() != cpl {
        return Err(ts);
    }
    if !d.present() {
        return Err(Fault::with_code(vector::SS, sel_code(ss) | ext));
    }
    Ok(d.to_segment(ss))
}

/// Delivers `event` through the 8-byte-gate IDT of legacy protected mode.
pub(super) fn deliver(
    ctx: &mut X86Context,
    mem: &mut dyn LinearMemory,
    event: &Event,
) -> Result<(), Step> {
    let ext = ext_bit(event);
    let code = idt_code(event.vector, ext);
    let off = u64::from(event.vector) * 8;
    if off + 7 > u64::from(ctx.cpu.idt.limit) {
        return Err(Fault::gp(code).into());
    }
    let gate = crate::system::descriptor::Descriptor {
        lo: mem.read_u64(ctx.cpu.idt.base.wrapping_add(off) & 0xffff_ffff, true)?,
        hi: 0,
    };
    let (wide, interrupt_gate) = match (gate.s(), gate.type_()) {
        (false, 0x5) => return Err(Step::Unsupported("task gate")),
        (false, 0x6) => (false, true),
        (false, 0x7) => (false, false),
        (false, 0xe) => (true, true),
        (false, 0xf) => (true, false),
        _ => return Err(Fault::gp(code).into()),
    };
    let cpl = ctx.cpu.cpl();
    if matches!(event.kind, EventKind::Software { .. }) && gate.dpl() < cpl {
        return Err(Fault::gp(code).into());
    }
    if !gate.present() {
        return Err(Fault::with_code(vector::NP, code).into());
    }
    let selector = gate.gate_selector();
    let cs = target_code_segment(ctx, mem, selector, ext, false)?;
    let new_cpl = if cs.is_conforming() { cpl } else { cs.dpl() };
    let target = gate.gate_offset() & if wide { 0xffff_ffff } else { 0xffff };
    if target > u64::from(cs.limit()) {
        return Err(Fault::gp(ext).into());
    }
    let size = if wide { 4 } else { 2 };
    let rflags = ctx.cpu.rflags;
    let old_ss = ctx.cpu.seg[sreg::SS].selector;
    let old_sp = ctx.cpu.gpr[reg::RSP];

    let (mut st, new_ss) = if new_cpl < cpl {
        let (ss_sel, sp) = tss_stack(ctx, mem, new_cpl, ext)?;
        let ss = inner_stack_segment(ctx, mem, ss_sel, new_cpl, ext)?;
        let mask = if ss.db { 0xffff_ffff } else { 0xffff };
        let mut st = Stack::at(sp, ss.base, mask, false);
        st.push(mem, size, u64::from(old_ss))?;
        st.push(mem, size, old_sp)?;
        (st, Some(ss))
    } else {
        let mut st = Stack::current(ctx);
        st.supervisor = true;
        (st, None)
    };
    st.push(mem, size, rflags)?;
    st.push(mem, size, u64::from(ctx.cpu.seg[sreg::CS].selector))?;
    st.push(mem, size, return_rip(ctx, event))?;
    if let Some(e) = pushed_error_code(event) {
        st.push(mem, size, u64::from(e))?;
    }

    // Commit.
    ctx.cpu.seg[sreg::CS] = cs.to_segment((selector & 0xfffc) | u16::from(new_cpl));
    ctx.cpu.seg[sreg::CS].dpl = new_cpl;
    if let Some(ss) = new_ss {
        ctx.cpu.seg[sreg::SS] = ss;
        // The whole ESP is replaced on a stack switch (not merged under the old SS size).
        ctx.cpu.gpr[reg::RSP] = st.sp & st.mask;
    } else {
        st.commit(ctx);
    }
    ctx.cpu.rip = target;
    let mut f = rflags & !CLEARED_FLAGS;
    if interrupt_gate {
        f &= !bits::RFLAGS_IF;
    }
    ctx.cpu.rflags = f | bits::RFLAGS_FIXED;
    Ok(())
}

/// Delivers `event` in real-address mode: the IVT entry (IP, CS) at IDTR.base + 4 * vector,
/// a 16-bit frame of FLAGS, CS, IP; IF, TF, AC and RF cleared.
pub(super) fn real_mode(
    ctx: &mut X86Context,
    mem: &mut dyn LinearMemory,
    event: &Event,
) -> Result<(), Step> {
    let ext = ext_bit(event);
    let off = u64::from(event.vector) * 4;
    if off + 3 > u64::from(ctx.cpu.idt.limit) {
        return Err(Fault::gp(idt_code(event.vector, ext)).into());
    }
    let entry = ctx.cpu.idt.base.wrapping_add(off) & 0xffff_ffff;
    let ip = mem.read_u16(entry, true)?;
    let cs = mem.read_u16(entry.wrapping_add(2) & 0xffff_ffff, true)?;
    let rflags = ctx.cpu.rflags;
    let mut st = Stack::current(ctx);
    st.supervisor = true;
    st.push(mem, 2, rflags)?;
    st.push(mem, 2, u64::from(ctx.cpu.seg[sreg::CS].selector))?;
    st.push(mem, 2, return_rip(ctx, event) & 0xffff)?;
    // No error code in real mode, even for exceptions that have one elsewhere.

    st.commit(ctx);
    let seg = &mut ctx.cpu.seg[sreg::CS];
    seg.selector = cs;
    seg.base = u64::from(cs) << 4;
    ctx.cpu.rip = u64::from(ip);
    let cleared = bits::RFLAGS_IF | (1 << 8) | (1 << 18) | (1 << 16);
    ctx.cpu.rflags = (rflags & !cleared) | bits::RFLAGS_FIXED;
    Ok(())
}
