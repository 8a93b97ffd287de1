//! IN and OUT (Intel SDM Vol. 2 "IN", "OUT"; Vol. 1 19.5 I/O permission: IOPL, then the TSS
//! I/O permission bitmap, 19.5.2).
//!
//! Warts: INS/OUTS (and their REP forms) are not implemented here (they are string
//! instructions over guest memory; the engine raises #UD for them until they are).

use iced_x86::{Instruction, Mnemonic, OpKind, Register};

use super::operand::{protected, read_gpr, write_gpr};
use super::SystemOutcome;
use crate::context::X86Context;
use crate::exception::Fault;
use crate::memory::{LinearMemory, LinearMemoryExt, SystemBus};

/// RFLAGS.IOPL.
pub(crate) fn iopl(ctx: &X86Context) -> u8 {
    ((ctx.cpu.rflags >> 12) & 3) as u8
}

/// Checks that `size` bytes at `port` may be accessed: always in real mode and when
/// CPL <= IOPL; otherwise every bit for them in the TSS I/O bitmap must be clear (#GP(0) if
/// not, or if the bitmap or the TSS does not reach them).
pub(crate) fn io_allowed(
    ctx: &X86Context,
    mem: &mut dyn LinearMemory,
    port: u16,
    size: usize,
) -> Result<(), Fault> {
    if !protected(ctx) || ctx.cpu.cpl() <= iopl(ctx) {
        return Ok(());
    }
    let tr = &ctx.cpu.tr;
    let limit = u64::from(tr.limit);
    // Only 32/64-bit TSSs (type bit 3) have a bitmap, and the base field is at 0x66.
    if tr.unusable || tr.type_ & 0x8 == 0 || limit < 0x67 {
        return Err(Fault::gp(0));
    }
    let map_base = u64::from(mem.read_u16(tr.base.wrapping_add(0x66), true)?);
    let byte = map_base + u64::from(port / 8);
    // Two bytes, since an access of up to 4 ports may straddle a byte.
    if byte + 1 > limit {
        return Err(Fault::gp(0));
    }
    let bitmap = mem.read_u16(tr.base.wrapping_add(byte), true)?;
    let wanted = ((1u16 << size) - 1) << (port & 7);
    if bitmap & wanted != 0 {
        return Err(Fault::gp(0));
    }
    Ok(())
}

fn port_of(ctx: &X86Context, i: &Instruction, n: u32) -> Result<u16, Fault> {
    match i.op_kind(n) {
        OpKind::Immediate8 => Ok(u16::from(i.immediate8())),
        OpKind::Register if i.op_register(n) == Register::DX => {
            Ok(read_gpr(ctx, Register::DX)? as u16)
        }
        _ => Err(Fault::ud()),
    }
}

/// IN AL/AX/EAX, imm8|DX and OUT imm8|DX, AL/AX/EAX.
pub(super) fn execute(
    ctx: &mut X86Context,
    i: &Instruction,
    mem: &mut dyn LinearMemory,
    bus: &mut dyn SystemBus,
) -> Result<SystemOutcome, Fault> {
    let is_in = i.mnemonic() == Mnemonic::In;
    let (port_op, reg_op) = if is_in { (1, 0) } else { (0, 1) };
    if i.op_kind(reg_op) != OpKind::Register {
        return Err(Fault::ud());
    }
    let reg = i.op_register(reg_op);
    let size = reg.size();
    if !matches!(size, 1 | 2 | 4) {
        return Err(Fault::ud());
    }
    let port = port_of(ctx, i, port_op)?;
    io_allowed(ctx, mem, port, size)?;
    if is_in {
        let mut buf = [0u8; 4];
        bus.port_in(port, &mut buf[..size]);
        // IN EAX zero-extends into RAX (a 32-bit register write); AL/AX merge.
        write_gpr(ctx, reg, u64::from(u32::from_le_bytes(buf)))?;
    } else {
        let v = read_gpr(ctx, reg)? as u32;
        bus.port_out(port, &v.to_le_bytes()[..size]);
    }
    ctx.cpu.rip = i.next_ip();
    Ok(SystemOutcome::Continue)
}
