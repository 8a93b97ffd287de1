//! IRET, IRETD, IRETQ (Intel SDM Vol. 2 "IRET/IRETD/IRETQ"; Vol. 3A 6.14.3 IRET in IA-32e
//! mode, 6.7.1 NMI unblocking).
//!
//! Real mode pops IP, CS, FLAGS. Protected and IA-32e mode pop RIP, CS, RFLAGS, then SS:RSP
//! when returning to an outer privilege level and always in 64-bit mode; the RFLAGS image is
//! merged by the privilege rules (IOPL only at CPL 0, IF only at CPL <= IOPL). IRET ends NMI
//! blocking.
//!
//! Warts: IRET with NT set (a task return) and IRET to virtual-8086 mode are #GP(0) (neither
//! tasks nor VM86 are modelled).

use iced_x86::{Code, Instruction};

use super::descriptor::Descriptor;
use super::far_transfer::{check_return_cs, code_offset, fix_data_segments};
use super::operand::{bitness, long_mode, protected, Stack};
use super::port_io::iopl;
use super::segment_load::load_segment;
use super::SystemOutcome;
use crate::context::X86Context;
use crate::cpu_state::{bits, reg, sreg};
use crate::exception::Fault;
use crate::flags::CC_EFLAGS;
use crate::memory::LinearMemory;

const NT: u64 = 1 << 14;
const VM: u64 = 1 << 17;
/// CF PF AF ZF SF TF DF OF NT RF AC ID: what IRET always restores.
const ALWAYS: u64 = 0x25_4dd5;
const IOPL_BITS: u64 = 0x3000;
/// VIF, VIP.
const VIRTUAL: u64 = 0x18_0000;

/// Merges the popped RFLAGS image into `old` under the privilege rules of `cpl`.
fn merge_flags(old: u64, image: u64, cpl: u8, iopl: u8, bytes: usize) -> u64 {
    let mut changeable = ALWAYS;
    if cpl == 0 {
        changeable |= IOPL_BITS | VIRTUAL;
    }
    if cpl <= iopl {
        changeable |= bits::RFLAGS_IF;
    }
    if bytes == 2 {
        changeable &= 0xffff;
    }
    (old & !changeable) | (image & changeable) | bits::RFLAGS_FIXED
}

/// IRET in every supported mode.
pub(super) fn execute(
    ctx: &mut X86Context,
    i: &Instruction,
    mem: &mut dyn LinearMemory,
) -> Result<SystemOutcome, Fault> {
    let bytes = match i.code() {
        Code::Iretw => 2,
        Code::Iretd => 4,
        _ => 8,
    };
    ctx.sync_flags();
    let old_flags = ctx.cpu.rflags;
    let mut st = Stack::current(ctx);
    if !protected(ctx) {
        let ip = st.pop(mem, bytes)?;
        let cs = st.pop(mem, bytes)? as u16;
        let image = st.pop(mem, bytes)?;
        st.commit(ctx);
        // Real mode: every flag but VM/VIF/VIP is restored.
        let keep = if bytes == 2 { !0xffff } else { VM | VIRTUAL };
        ctx.cpu.rflags = (old_flags & keep) | (image & !keep & 0x3f_7fd5) | bits::RFLAGS_FIXED;
        let seg = &mut ctx.cpu.seg[sreg::CS];
        seg.selector = cs;
        seg.base = u64::from(cs) << 4;
        ctx.cpu.rip = ip & if bytes == 2 { 0xffff } else { 0xffff_ffff };
    } else {
        if !long_mode(ctx) && old_flags & NT != 0 {
            return Err(Fault::gp(0));
        }
        let rip = st.pop(mem, bytes)?;
        let cs_sel = st.pop(mem, bytes)? as u16;
        let image = st.pop(mem, bytes)?;
        let cpl = ctx.cpu.cpl();
        if !long_mode(ctx) && image & VM != 0 && cpl == 0 && bytes != 2 {
            return Err(Fault::gp(0));
        }
        let d = check_return_cs(ctx, mem, cs_sel, cpl)?;
        let rpl = (cs_sel & 3) as u8;
        let rip = code_offset(ctx, &d, rip, bytes)?;
        let to_long = long_mode(ctx) && d.l();
        // 64-bit mode always pops SS:RSP; elsewhere only on a return to an outer level.
        let outer = if bitness(ctx) == 64 || rpl > cpl {
            let sp = st.pop(mem, bytes)?;
            let ss_sel = st.pop(mem, bytes)? as u16;
            let ss = load_segment(ctx, mem, sreg::SS, ss_sel, rpl, to_long)?;
            Some((ss, sp))
        } else {
            None
        };
        commit_protected(ctx, &d, cs_sel, rip, outer, st, to_long);
        ctx.cpu.rflags = merge_flags(old_flags, image, cpl, iopl(ctx), bytes);
        if rpl > cpl {
            fix_data_segments(ctx, rpl);
        }
    }
    ctx.cc_op = CC_EFLAGS;
    ctx.cpu.events.nmi_masked = false;
    Ok(SystemOutcome::EndBlock)
}

fn commit_protected(
    ctx: &mut X86Context,
    d: &Descriptor,
    cs_sel: u16,
    rip: u64,
    outer: Option<(crate::segment::Segment, u64)>,
    st: Stack,
    to_long: bool,
) {
    ctx.cpu.seg[sreg::CS] = d.to_segment(cs_sel);
    ctx.cpu.rip = rip;
    match outer {
        Some((ss, sp)) => {
            let mask = if to_long || ss.unusable {
                u64::MAX
            } else if ss.db {
                0xffff_ffff
            } else {
                0xffff
            };
            ctx.cpu.seg[sreg::SS] = ss;
            ctx.cpu.gpr[reg::RSP] = sp & mask;
        }
        None => st.commit(ctx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_merge_follows_privilege() {
        // Old: IF set, IOPL 0. Image: IOPL 3, CF set, IF clear.
        let old = 0x202;
        let image = 0x3000 | 0x1 | 0x2;
        // CPL 3: IOPL and IF are kept, CF restored.
        assert_eq!(merge_flags(old, image, 3, 0, 8), 0x203);
        // CPL 0: everything, IF cleared.
        assert_eq!(merge_flags(old, image, 0, 0, 8), 0x3003);
    }
}
