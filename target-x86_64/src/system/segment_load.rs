//! Segment-register loads: MOV Sreg, r/m; MOV r/m, Sreg; PUSH/POP Sreg; LDS/LES/LFS/LGS/LSS
//! (Intel SDM Vol. 2 "MOV", "POP", "LDS/LES/LFS/LGS/LSS"; Vol. 3A 3.4.3-3.4.5 and 5.5-5.7
//! the privilege checks on data and stack segment loads; 3.4.4 null selectors in 64-bit mode).
//!
//! [`load_segment`] is the one place a data or stack segment is checked and built; far
//! returns and IRET reuse it for SS at the new privilege level.
//!
//! Warts: loading a null selector into FS/GS zeroes the hidden base (QEMU's and AMD's choice;
//! Intel keeps it), which only matters to code that loads a null selector after WRFSBASE.

use iced_x86::{Instruction, Mnemonic, OpKind};

use super::descriptor::{is_null, read_descriptor, sel_code, set_accessed};
use super::operand::{
    bitness, ea, protected, read_data, read_gpr, sreg_index, write_gpr, write_rm, Stack,
};
use super::SystemOutcome;
use crate::context::X86Context;
use crate::cpu_state::sreg;
use crate::exception::{vector, Fault};
use crate::interrupt::null_ss;
use crate::memory::LinearMemory;
use crate::segment::Segment;

/// Builds the value segment register `s` (ES, SS, DS, FS or GS) takes when `selector` is
/// loaded at privilege `cpl`, with the SDM's checks; nothing is committed. `null_ss_ok`
/// permits a null SS (64-bit mode, CPL < 3, RPL = CPL).
pub(crate) fn load_segment(
    ctx: &X86Context,
    mem: &mut dyn LinearMemory,
    s: usize,
    selector: u16,
    cpl: u8,
    null_ss_ok: bool,
) -> Result<Segment, Fault> {
    if !protected(ctx) {
        // Real mode: only the selector and base change; the cached limit and attributes stay
        // (which is what makes "unreal mode" work).
        let mut seg = ctx.cpu.seg[s];
        seg.selector = selector;
        seg.base = u64::from(selector) << 4;
        return Ok(seg);
    }
    let rpl = (selector & 3) as u8;
    let gp = Fault::gp(sel_code(selector));
    if s == sreg::SS {
        if is_null(selector) {
            if null_ss_ok && cpl != 3 && rpl == cpl {
                let mut ss = null_ss(cpl);
                ss.selector = selector;
                return Ok(ss);
            }
            return Err(Fault::gp(0));
        }
        if rpl != cpl {
            return Err(gp);
        }
        let d = read_descriptor(ctx, mem, selector, false)?;
        if !d.is_writable_data() || d.dpl() != cpl {
            return Err(gp);
        }
        if !d.present() {
            return Err(Fault::with_code(vector::SS, sel_code(selector)));
        }
        set_accessed(ctx, mem, selector, &d)?;
        return Ok(d.to_segment(selector));
    }
    if is_null(selector) {
        return Ok(Segment {
            selector,
            unusable: true,
            ..Segment::default()
        });
    }
    let d = read_descriptor(ctx, mem, selector, false)?;
    if !d.is_readable() {
        return Err(gp);
    }
    if !d.is_conforming() && (rpl > d.dpl() || cpl > d.dpl()) {
        return Err(gp);
    }
    if !d.present() {
        return Err(Fault::with_code(vector::NP, sel_code(selector)));
    }
    set_accessed(ctx, mem, selector, &d)?;
    Ok(d.to_segment(selector))
}

/// Commits a loaded segment; SS loads block interrupts for one instruction (SDM 6.8.3).
fn commit(ctx: &mut X86Context, s: usize, seg: Segment) {
    ctx.cpu.seg[s] = seg;
    if s == sreg::SS {
        ctx.cpu.events.interrupt_shadow = 1;
    }
}

fn load_here(
    ctx: &X86Context,
    mem: &mut dyn LinearMemory,
    s: usize,
    selector: u16,
) -> Result<Segment, Fault> {
    load_segment(ctx, mem, s, selector, ctx.cpu.cpl(), bitness(ctx) == 64)
}

/// MOV to/from a segment register, PUSH/POP of one, and LDS/LES/LFS/LGS/LSS.
pub(super) fn execute(
    ctx: &mut X86Context,
    i: &Instruction,
    mem: &mut dyn LinearMemory,
) -> Result<SystemOutcome, Fault> {
    let reg_sreg = |n: u32| {
        (i.op_kind(n) == OpKind::Register)
            .then(|| sreg_index(i.op_register(n)))
            .flatten()
    };
    match i.mnemonic() {
        Mnemonic::Mov => {
            if let Some(s) = reg_sreg(0) {
                if s == sreg::CS {
                    return Err(Fault::ud());
                }
                let selector = match i.op_kind(1) {
                    OpKind::Register => read_gpr(ctx, i.op_register(1))?,
                    OpKind::Memory => read_data(mem, ea(ctx, i), 2)?,
                    _ => return Err(Fault::ud()),
                } as u16;
                let seg = load_here(ctx, mem, s, selector)?;
                commit(ctx, s, seg);
            } else if let Some(s) = reg_sreg(1) {
                // A register gets the zero-extended selector; memory 16 bits.
                let sel = u64::from(ctx.cpu.seg[s].selector);
                write_rm(ctx, mem, i, 0, 2, sel)?;
            } else {
                return Err(Fault::ud());
            }
        }
        Mnemonic::Push => {
            let s = reg_sreg(0).ok_or(Fault::ud())?;
            let bytes = i.stack_pointer_increment().unsigned_abs() as usize;
            let mut st = Stack::current(ctx);
            st.push(mem, bytes, u64::from(ctx.cpu.seg[s].selector))?;
            st.commit(ctx);
        }
        Mnemonic::Pop => {
            let s = reg_sreg(0).ok_or(Fault::ud())?;
            if s == sreg::CS {
                return Err(Fault::ud());
            }
            let bytes = i.stack_pointer_increment().unsigned_abs() as usize;
            let mut st = Stack::current(ctx);
            let selector = st.pop(mem, bytes)? as u16;
            let seg = load_here(ctx, mem, s, selector)?;
            st.commit(ctx);
            commit(ctx, s, seg);
        }
        m @ (Mnemonic::Lss | Mnemonic::Lds | Mnemonic::Les | Mnemonic::Lfs | Mnemonic::Lgs) => {
            if i.op_kind(0) != OpKind::Register || i.op_kind(1) != OpKind::Memory {
                return Err(Fault::ud());
            }
            let dst = i.op_register(0);
            let bytes = dst.size();
            let addr = ea(ctx, i);
            let offset = read_data(mem, addr, bytes)?;
            let selector = read_data(mem, addr.wrapping_add(bytes as u64), 2)? as u16;
            let s = match m {
                Mnemonic::Lss => sreg::SS,
                Mnemonic::Lds => sreg::DS,
                Mnemonic::Les => sreg::ES,
                Mnemonic::Lfs => sreg::FS,
                _ => sreg::GS,
            };
            let seg = load_here(ctx, mem, s, selector)?;
            write_gpr(ctx, dst, offset)?;
            commit(ctx, s, seg);
        }
        _ => return Err(Fault::ud()),
    }
    ctx.cpu.rip = i.next_ip();
    Ok(SystemOutcome::EndBlock)
}
