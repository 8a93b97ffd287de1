//! Which arithmetic flags each instruction of a block leaves for nobody: a backward pass over
//! the block, QEMU's liveness analysis reduced to what x86 flags need.
//!
//! A flag is live after an instruction if a later instruction of the block reads it before
//! one overwrites it unconditionally, or if a later instruction can fault before that (the
//! exception frame saves RFLAGS), or if the block ends first (the next block, an interrupt, or
//! the dispatcher may look). Shifts and rotates by CL, or by an immediate whose masked count is
//! 0, may leave flags unchanged, so they overwrite nothing here.

use iced_x86::{Instruction, InstructionInfoFactory, Mnemonic, OpAccess, OpKind, RflagsBits};

use crate::flags::bit;

/// The six arithmetic flags, in RFLAGS bit positions.
const ALL: u64 = bit::CF | bit::PF | bit::AF | bit::ZF | bit::SF | bit::OF;

/// iced's flag bits as RFLAGS bits (its other bits, the x87 condition codes, dropped).
fn eflags(iced: u32) -> u64 {
    [
        (RflagsBits::CF, bit::CF),
        (RflagsBits::PF, bit::PF),
        (RflagsBits::AF, bit::AF),
        (RflagsBits::ZF, bit::ZF),
        (RflagsBits::SF, bit::SF),
        (RflagsBits::OF, bit::OF),
    ]
    .iter()
    .filter(|(i, _)| iced & i != 0)
    .fold(0, |a, (_, e)| a | e)
}

/// A shift or rotate whose count may be 0 at run time (or is 0): its flag writes may not
/// happen.
fn may_keep_flags(i: &Instruction) -> bool {
    use Mnemonic as M;
    if !matches!(
        i.mnemonic(),
        M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror | M::Rcl | M::Rcr | M::Shld | M::Shrd
    ) {
        return false;
    }
    let n = i.op_count() - 1;
    match i.op_kind(n) {
        OpKind::Immediate8 => {
            let mask = if i.op0_register().size() == 8 || i.memory_size().size() == 8 {
                63
            } else {
                31
            };
            i.immediate8() & mask == 0
        }
        // The count is CL (or the implicit 1, which is never 0).
        OpKind::Register => true,
        _ => false,
    }
}

/// The instruction may raise an exception (and so expose RFLAGS) part-way through a block.
fn may_fault(factory: &mut InstructionInfoFactory, i: &Instruction) -> bool {
    use Mnemonic as M;
    if matches!(
        i.mnemonic(),
        M::Div | M::Idiv | M::Ud2 | M::Int | M::Int1 | M::Int3 | M::Into | M::Bound
    ) || crate::fpu::handles(i)
        || crate::system::handles_instruction(i)
    {
        return true;
    }
    factory
        .info(i)
        .used_memory()
        .iter()
        .any(|m| m.access() != OpAccess::NoMemAccess)
}

/// For each instruction of `insns` (in order, ending where translation ends), the arithmetic
/// flags dead after it.
pub fn dead_after(insns: &[Instruction]) -> Vec<u64> {
    let mut factory = InstructionInfoFactory::new();
    let mut live = ALL;
    let mut dead = vec![0; insns.len()];
    for (k, i) in insns.iter().enumerate().rev() {
        dead[k] = ALL & !live;
        let read = eflags(i.rflags_read()) | if may_fault(&mut factory, i) { ALL } else { 0 };
        let written = if may_keep_flags(i) {
            0
        } else {
            eflags(i.rflags_modified())
        };
        live = (live & !written) | read;
    }
    dead
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};

    fn block(bytes: &[u8]) -> Vec<Instruction> {
        let mut d = Decoder::with_ip(64, bytes, 0x1000, DecoderOptions::NONE);
        let mut v = Vec::new();
        while d.can_decode() {
            v.push(d.decode());
        }
        v
    }

    #[test]
    fn a_rotate_followed_by_xor_leaves_cf_and_of_dead() {
        // ror rax,7; xor rax,rcx; ror rbx,3
        let d = dead_after(&block(&[
            0x48, 0xc1, 0xc8, 0x07, 0x48, 0x31, 0xc8, 0x48, 0xc1, 0xcb, 0x03,
        ]));
        assert_eq!(d[0], ALL, "xor overwrites everything the rotate wrote");
        assert_eq!(d[2], 0, "the block's last instruction: all live");
    }

    #[test]
    fn reads_faults_and_zero_counts_keep_flags_live() {
        // ror rax,7; adc rbx,rcx; ...
        let d = dead_after(&block(&[
            0x48, 0xc1, 0xc8, 0x07, 0x48, 0x11, 0xcb, 0x48, 0x31, 0xc0,
        ]));
        assert_eq!(d[0] & bit::CF, 0, "ADC reads CF");
        // ror rax,7; mov rbx,[rsi]; xor eax,eax
        let d = dead_after(&block(&[
            0x48, 0xc1, 0xc8, 0x07, 0x48, 0x8b, 0x1e, 0x31, 0xc0,
        ]));
        assert_eq!(d[0], 0, "a load can fault and expose RFLAGS");
        // ror rax,7; shl rbx,cl; xor eax,eax
        let d = dead_after(&block(&[
            0x48, 0xc1, 0xc8, 0x07, 0x48, 0xd3, 0xe3, 0x31, 0xc0,
        ]));
        assert_eq!(d[1], ALL, "xor kills them after the shift");
        assert_eq!(
            d[0], ALL,
            "a shift by CL may write nothing, but xor follows"
        );
        // ror rax,7; shl rbx,cl (last)
        let d = dead_after(&block(&[0x48, 0xc1, 0xc8, 0x07, 0x48, 0xd3, 0xe3]));
        assert_eq!(
            d[0], 0,
            "CL may be 0: the rotate's flags may survive the block"
        );
    }
}
