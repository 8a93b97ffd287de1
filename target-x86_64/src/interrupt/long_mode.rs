//! IA-32e mode delivery (Intel SDM Vol. 3A 6.14): 16-byte gates, interrupt and trap gates only,
//! 64-bit target code, the IST and RSPn stacks from the 64-bit TSS (7.7), SS loaded with a null
//! selector on a privilege change, RSP aligned to 16, and an always-64-bit frame of
//! SS, RSP, RFLAGS, CS, RIP and the error code.
//!
//! Warts: no canonical check of the RSP read from the TSS beyond the one on the new RSP.

use super::{
    ext_bit, idt_code, pushed_error_code, return_rip, with_ext, Event, EventKind, Step,
    CLEARED_FLAGS,
};
use crate::context::X86Context;
use crate::cpu_state::{bits, reg, sreg};
use crate::exception::{vector, Fault};
use crate::memory::{LinearMemory, LinearMemoryExt};
use crate::segment::Segment;
use crate::system::descriptor::{is_null, read_descriptor, sel_code, Descriptor};
use crate::system::operand::{canonical, Stack};

/// Checks the code segment a gate names (SDM 6.12.1.1): not null, a code segment, DPL <= CPL,
/// 64-bit when `long`, present. Error codes carry `ext`.
pub(super) fn target_code_segment(
    ctx: &X86Context,
    mem: &mut dyn LinearMemory,
    selector: u16,
    ext: u32,
    long: bool,
) -> Result<Descriptor, Fault> {
    if is_null(selector) {
        return Err(Fault::gp(ext));
    }
    let d = read_descriptor(ctx, mem, selector, false).map_err(|f| with_ext(f, ext))?;
    let bad = !d.is_code() || d.dpl() > ctx.cpu.cpl() || (long && (!d.l() || d.db()));
    if bad {
        return Err(Fault::gp(sel_code(selector) | ext));
    }
    if !d.present() {
        return Err(Fault::with_code(vector::NP, sel_code(selector) | ext));
    }
    Ok(d)
}

/// Reads a u64 at `offset` in the current 64-bit TSS, or #TS(TR | EXT) if past its limit.
fn read_tss64(
    ctx: &X86Context,
    mem: &mut dyn LinearMemory,
    offset: u64,
    ext: u32,
) -> Result<u64, Fault> {
    let tr = &ctx.cpu.tr;
    let ts = Fault::with_code(vector::TS, sel_code(tr.selector) | ext);
    if tr.unusable || !tr.present || offset + 7 > u64::from(tr.limit) {
        return Err(ts);
    }
    mem.read_u64(tr.base.wrapping_add(offset), true)
}

/// Reads the gate for `vector` from the 64-bit IDT.
pub(super) fn read_gate64(
    ctx: &X86Context,
    mem: &mut dyn LinearMemory,
    vector: u8,
    ext: u32,
) -> Result<Descriptor, Fault> {
    let off = u64::from(vector) * 16;
    if off + 15 > u64::from(ctx.cpu.idt.limit) {
        return Err(Fault::gp(idt_code(vector, ext)));
    }
    let addr = ctx.cpu.idt.base.wrapping_add(off);
    Ok(Descriptor {
        lo: mem.read_u64(addr, true)?,
        hi: mem.read_u64(addr.wrapping_add(8), true)?,
    })
}

/// Delivers `event` through the 64-bit IDT.
pub(super) fn deliver(
    ctx: &mut X86Context,
    mem: &mut dyn LinearMemory,
    event: &Event,
) -> Result<(), Step> {
    let ext = ext_bit(event);
    let code = idt_code(event.vector, ext);
    let gate = read_gate64(ctx, mem, event.vector, ext)?;
    let interrupt_gate = match (gate.s(), gate.type_()) {
        (false, 0xe) => true,
        (false, 0xf) => false,
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
    let cs = target_code_segment(ctx, mem, selector, ext, true)?;
    let new_cpl = if cs.is_conforming() { cpl } else { cs.dpl() };
    let rsp = if gate.gate_ist() != 0 {
        read_tss64(ctx, mem, 36 + 8 * u64::from(gate.gate_ist() - 1), ext)?
    } else if new_cpl < cpl {
        read_tss64(ctx, mem, 4 + 8 * u64::from(new_cpl), ext)?
    } else {
        ctx.cpu.gpr[reg::RSP]
    };
    if !canonical(rsp) {
        return Err(Fault::with_code(vector::SS, ext).into());
    }
    let target = gate.gate_offset();
    if !canonical(target) {
        return Err(Fault::gp(ext).into());
    }

    // The frame, always 8 bytes per slot, on a 16-byte aligned stack (SDM 6.14.2).
    let rflags = ctx.cpu.rflags;
    let mut st = Stack::at(rsp & !0xf, 0, u64::MAX, true);
    st.push(mem, 8, u64::from(ctx.cpu.seg[sreg::SS].selector))?;
    st.push(mem, 8, ctx.cpu.gpr[reg::RSP])?;
    st.push(mem, 8, rflags)?;
    st.push(mem, 8, u64::from(ctx.cpu.seg[sreg::CS].selector))?;
    st.push(mem, 8, return_rip(ctx, event))?;
    if let Some(e) = pushed_error_code(event) {
        st.push(mem, 8, u64::from(e))?;
    }

    // Commit.
    ctx.cpu.seg[sreg::CS] = cs.to_segment((selector & 0xfffc) | u16::from(new_cpl));
    ctx.cpu.seg[sreg::CS].dpl = new_cpl;
    if new_cpl != cpl {
        // A privilege change loads SS with a null selector whose RPL is the new CPL.
        ctx.cpu.seg[sreg::SS] = null_ss(new_cpl);
    }
    st.commit(ctx);
    ctx.cpu.rip = target;
    let mut f = rflags & !CLEARED_FLAGS;
    if interrupt_gate {
        f &= !bits::RFLAGS_IF;
    }
    ctx.cpu.rflags = f | bits::RFLAGS_FIXED;
    Ok(())
}

/// The SS register after loading a null selector at `cpl` in 64-bit mode: unusable, but its
/// DPL is the CPL (which [`crate::CpuState::cpl`] reads).
pub fn null_ss(cpl: u8) -> Segment {
    Segment {
        selector: u16::from(cpl),
        dpl: cpl,
        unusable: true,
        // Writable data type and 32-bit, as QEMU and KVM report a null SS in 64-bit mode.
        type_: 0x3,
        s: true,
        db: true,
        ..Segment::default()
    }
}
