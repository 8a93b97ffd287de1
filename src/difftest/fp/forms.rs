//! Instruction forms by iced-x86 [`Code`]: the operands are read off the code's name
//! (`Addps_xmm_xmmm128` is an XMM register, then an XMM register or 16 bytes of memory;
//! `Pextrb_r32m8_xmm_imm8` a GPR or a byte of memory, an XMM register, an imm8), drawn, and
//! the instruction built. So a class is a list of codes, and a form the name cannot describe
//! is refused (`None`) rather than guessed.
//!
//! Memory operands are `[base + disp]` with RBX, RSI or RDI as base and the displacement
//! computed from the base's known value, so that the address is exactly the one drawn: inside
//! the data region, 16-byte aligned where the instruction requires it (one time in
//! [`MISALIGN_ONE_IN`] deliberately not, to check the #GP), anywhere otherwise.

use iced_x86::{Code, IcedError, Instruction, MemoryOperand, Mnemonic, Register};

use crate::difftest::generator::{DATA_ADDR, DATA_LEN};
use crate::difftest::operands::{Draw, BASES, WRITABLE};

/// How rarely an operand that must be aligned is misaligned on purpose.
pub const MISALIGN_ONE_IN: u64 = 60;

/// XMM0..XMM15.
pub const XMM: [Register; 16] = [
    Register::XMM0,
    Register::XMM1,
    Register::XMM2,
    Register::XMM3,
    Register::XMM4,
    Register::XMM5,
    Register::XMM6,
    Register::XMM7,
    Register::XMM8,
    Register::XMM9,
    Register::XMM10,
    Register::XMM11,
    Register::XMM12,
    Register::XMM13,
    Register::XMM14,
    Register::XMM15,
];
/// MM0..MM7.
pub const MM: [Register; 8] = [
    Register::MM0,
    Register::MM1,
    Register::MM2,
    Register::MM3,
    Register::MM4,
    Register::MM5,
    Register::MM6,
    Register::MM7,
];
/// ST(0)..ST(7).
pub const ST: [Register; 8] = [
    Register::ST0,
    Register::ST1,
    Register::ST2,
    Register::ST3,
    Register::ST4,
    Register::ST5,
    Register::ST6,
    Register::ST7,
];
const GPR64: [Register; 16] = [
    Register::RAX,
    Register::RCX,
    Register::RDX,
    Register::RBX,
    Register::RSP,
    Register::RBP,
    Register::RSI,
    Register::RDI,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
    Register::R12,
    Register::R13,
    Register::R14,
    Register::R15,
];
const GPR32: [Register; 16] = [
    Register::EAX,
    Register::ECX,
    Register::EDX,
    Register::EBX,
    Register::ESP,
    Register::EBP,
    Register::ESI,
    Register::EDI,
    Register::R8D,
    Register::R9D,
    Register::R10D,
    Register::R11D,
    Register::R12D,
    Register::R13D,
    Register::R14D,
    Register::R15D,
];
const GPR16: [Register; 16] = [
    Register::AX,
    Register::CX,
    Register::DX,
    Register::BX,
    Register::SP,
    Register::BP,
    Register::SI,
    Register::DI,
    Register::R8W,
    Register::R9W,
    Register::R10W,
    Register::R11W,
    Register::R12W,
    Register::R13W,
    Register::R14W,
    Register::R15W,
];
const GPR8: [Register; 16] = [
    Register::AL,
    Register::CL,
    Register::DL,
    Register::BL,
    Register::SPL,
    Register::BPL,
    Register::SIL,
    Register::DIL,
    Register::R8L,
    Register::R9L,
    Register::R10L,
    Register::R11L,
    Register::R12L,
    Register::R13L,
    Register::R14L,
    Register::R15L,
];

/// The GPR number `i` at `width` bits.
pub fn gpr(width: u32, i: u8) -> Register {
    let i = usize::from(i & 15);
    match width {
        8 => GPR8[i],
        16 => GPR16[i],
        32 => GPR32[i],
        _ => GPR64[i],
    }
}

/// One operand as a code's name lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Xmm,
    XmmOrMem,
    Mm,
    MmOrMem,
    Mem,
    Gpr(u32),
    GprOrMem(u32),
    Imm8,
    St0,
    Sti,
    Ax,
}

/// The operands of `code` from its name, or None for a name this module does not read.
fn kinds(code: Code) -> Option<Vec<Kind>> {
    let name = format!("{code:?}");
    name.split('_')
        .skip(1)
        .map(|t| {
            Some(match t {
                "xmm" => Kind::Xmm,
                "mm" => Kind::Mm,
                "imm8" => Kind::Imm8,
                "st0" => Kind::St0,
                "sti" => Kind::Sti,
                "AX" => Kind::Ax,
                "r8" => Kind::Gpr(8),
                "r16" => Kind::Gpr(16),
                "r32" => Kind::Gpr(32),
                "r64" => Kind::Gpr(64),
                "rm8" => Kind::GprOrMem(8),
                "rm16" => Kind::GprOrMem(16),
                "rm32" | "r32m8" | "r32m16" => Kind::GprOrMem(32),
                "rm64" | "r64m8" | "r64m16" | "r64m32" => Kind::GprOrMem(64),
                t if t.starts_with("xmmm") => Kind::XmmOrMem,
                t if t.starts_with("mmm") => Kind::MmOrMem,
                t if t.starts_with('m') && t[1..].starts_with(|c: char| c.is_ascii_digit()) => {
                    Kind::Mem
                }
                _ => return None,
            })
        })
        .collect()
}

/// A drawn operand.
#[derive(Debug, Clone, Copy)]
enum Arg {
    Reg(Register),
    Mem,
    Imm(u32),
}

/// Builds `code` with `args`, `mem` standing for the memory operand.
fn make(code: Code, args: &[Arg], mem: MemoryOperand) -> Option<Instruction> {
    use Arg::*;
    let built = match *args {
        [] => Ok(Instruction::with(code)),
        [Reg(a)] => Instruction::with1(code, a),
        [Mem] => Instruction::with1(code, mem),
        [Reg(a), Reg(b)] => Instruction::with2(code, a, b),
        [Reg(a), Mem] => Instruction::with2(code, a, mem),
        [Mem, Reg(b)] => Instruction::with2(code, mem, b),
        [Reg(a), Imm(i)] => Instruction::with2(code, a, i),
        [Reg(a), Reg(b), Imm(i)] => Instruction::with3(code, a, b, i),
        [Reg(a), Mem, Imm(i)] => Instruction::with3(code, a, mem, i),
        [Mem, Reg(b), Imm(i)] => Instruction::with3(code, mem, b, i),
        _ => return None,
    };
    built.ok()
}

/// Whether a 16-byte memory operand of `m` must be aligned (legacy SSE, except the explicitly
/// unaligned moves, the masked stores and the SSE4.2 string compares).
pub fn needs_alignment(m: Mnemonic) -> bool {
    !matches!(
        m,
        Mnemonic::Maskmovdqu
            | Mnemonic::Maskmovq
            | Mnemonic::Movups
            | Mnemonic::Movupd
            | Mnemonic::Movdqu
            | Mnemonic::Lddqu
            | Mnemonic::Pcmpestri
            | Mnemonic::Pcmpestri64
            | Mnemonic::Pcmpestrm
            | Mnemonic::Pcmpestrm64
            | Mnemonic::Pcmpistri
            | Mnemonic::Pcmpistrm
    )
}

/// `[base + disp]` addressing `DATA_ADDR + offset`, with a base drawn from [`BASES`].
pub fn mem_at(d: &mut Draw, offset: u64) -> MemoryOperand {
    let k = d.rng.index(BASES.len());
    let base = gpr(64, BASES[k]);
    let disp = (DATA_ADDR + offset).wrapping_sub(d.bases[k]) as i64;
    MemoryOperand::with_base_displ(base, disp)
}

/// A memory operand of `size` bytes in the data region: at a multiple of `align` when `align`
/// is more than 1, anywhere otherwise.
pub fn mem_of(d: &mut Draw, size: u64, align: u64) -> MemoryOperand {
    let slots = (DATA_LEN as u64 - size) / align.max(1);
    let offset = d.rng.below(slots + 1) * align.max(1);
    mem_at(d, offset)
}

/// An imm8 for `code`: the bits the SDM gives a meaning (reserved ones stay clear), shift
/// counts around the element width, lane indexes in range.
fn imm8(d: &mut Draw, code: Code, m: Mnemonic) -> u32 {
    let r = &mut *d.rng;
    let mm = format!("{code:?}").contains("_mm_");
    let element = match m {
        Mnemonic::Psllw | Mnemonic::Psrlw | Mnemonic::Psraw => 16,
        Mnemonic::Pslld | Mnemonic::Psrld | Mnemonic::Psrad => 32,
        Mnemonic::Psllq | Mnemonic::Psrlq => 64,
        Mnemonic::Pslldq | Mnemonic::Psrldq | Mnemonic::Palignr => 16,
        _ => 0,
    };
    if element > 0 {
        // Counts 0, 1, width-1, width, width+1 or anything: the edges of each shift.
        return match r.below(6) {
            0 => 0,
            1 => 1,
            2 => element - 1,
            3 => element,
            4 => element + 1 + r.below(u64::from(element)) as u32,
            _ => r.below(256) as u32,
        };
    }
    let below = match m {
        Mnemonic::Cmpps | Mnemonic::Cmppd | Mnemonic::Cmpss | Mnemonic::Cmpsd => 8,
        Mnemonic::Roundps | Mnemonic::Roundpd | Mnemonic::Roundss | Mnemonic::Roundsd => 16,
        Mnemonic::Blendps | Mnemonic::Pextrb | Mnemonic::Pinsrb => 16,
        Mnemonic::Blendpd | Mnemonic::Shufpd | Mnemonic::Extractps => 4,
        Mnemonic::Pextrd | Mnemonic::Pinsrd => 4,
        Mnemonic::Pextrq | Mnemonic::Pinsrq => 2,
        Mnemonic::Pextrw | Mnemonic::Pinsrw if mm => 4,
        Mnemonic::Pextrw | Mnemonic::Pinsrw => 8,
        Mnemonic::Mpsadbw => 8,
        Mnemonic::Pcmpestri
        | Mnemonic::Pcmpestri64
        | Mnemonic::Pcmpestrm
        | Mnemonic::Pcmpestrm64
        | Mnemonic::Pcmpistri
        | Mnemonic::Pcmpistrm => 128,
        // DPPD uses bits 5:4 (which products) and 1:0 (where the sum goes).
        Mnemonic::Dppd => return r.below(256) as u32 & 0x33,
        _ => 256,
    };
    r.below(below) as u32
}

/// Where a form's memory operand comes from.
#[derive(Debug, Clone, Copy)]
pub enum Mem {
    /// Drawn: a register-or-memory operand is memory one time in three.
    Drawn,
    /// This one (set-up code stored something there first); register-or-memory operands are
    /// memory.
    At(MemoryOperand),
    /// None: register-or-memory operands are registers (a form with a memory-only operand is
    /// refused).
    Never,
}

/// Builds `code` with drawn operands and memory from `mem`. `None` when the form is not one
/// this module reads.
pub fn build(d: &mut Draw, code: Code, mem: Mem) -> Option<Instruction> {
    let m = code.mnemonic();
    if matches!(m, Mnemonic::Maskmovq | Mnemonic::Maskmovdqu) {
        // Stores the selected bytes of the first register at [RDI], inside the data region.
        let regs = if m == Mnemonic::Maskmovq {
            &MM[..]
        } else {
            &XMM[..]
        };
        let (a, b) = (*d.rng.pick(regs)?, *d.rng.pick(regs)?);
        let i = if m == Mnemonic::Maskmovq {
            Instruction::with_maskmovq(64, a, b, Register::None)
        } else {
            Instruction::with_maskmovdqu(64, a, b, Register::None)
        };
        return i.ok();
    }
    let kinds = kinds(code)?;
    let mut args = Vec::with_capacity(kinds.len());
    for (i, k) in kinds.iter().enumerate() {
        let want_mem = match mem {
            Mem::Drawn => d.rng.chance(1, 3),
            Mem::At(_) => true,
            Mem::Never => false,
        };
        args.push(match *k {
            Kind::Xmm => Arg::Reg(*d.rng.pick(&XMM)?),
            Kind::Mm => Arg::Reg(*d.rng.pick(&MM)?),
            Kind::Sti => Arg::Reg(*d.rng.pick(&ST)?),
            Kind::St0 => Arg::Reg(Register::ST0),
            Kind::Ax => Arg::Reg(Register::AX),
            Kind::Mem if matches!(mem, Mem::Never) => return None,
            Kind::Mem => Arg::Mem,
            Kind::XmmOrMem if want_mem => Arg::Mem,
            Kind::XmmOrMem => Arg::Reg(*d.rng.pick(&XMM)?),
            Kind::MmOrMem if want_mem => Arg::Mem,
            Kind::MmOrMem => Arg::Reg(*d.rng.pick(&MM)?),
            Kind::GprOrMem(_) if want_mem => Arg::Mem,
            Kind::Gpr(w) | Kind::GprOrMem(w) => {
                // The first operand is the destination: never RSP or a base.
                let n = if i == 0 {
                    *d.rng.pick(&WRITABLE)?
                } else {
                    d.rng.below(16) as u8
                };
                Arg::Reg(gpr(w, n))
            }
            Kind::Imm8 => Arg::Imm(imm8(d, code, m)),
        });
    }
    let placeholder = MemoryOperand::with_base(Register::RBX);
    let insn = make(code, &args, placeholder)?;
    if !args.iter().any(|a| matches!(a, Arg::Mem)) {
        return Some(insn);
    }
    let mem = match mem {
        Mem::At(mem) => mem,
        _ => {
            let size = insn.memory_size().size().max(1) as u64;
            let align = if size >= 16 && needs_alignment(m) {
                if d.rng.chance(1, MISALIGN_ONE_IN) {
                    1
                } else {
                    16
                }
            } else if d.rng.chance(1, 2) {
                // Often on a 16-byte boundary, where the region's values start.
                16
            } else {
                1
            };
            mem_of(d, size, align)
        }
    };
    make(code, &args, mem)
}

/// Appends `code` with drawn operands to `a` (see [`build`]).
pub fn emit(
    d: &mut Draw,
    a: &mut iced_x86::code_asm::CodeAssembler,
    code: Code,
) -> Option<Result<(), IcedError>> {
    let insn = build(d, code, Mem::Drawn)?;
    Some(a.add_instruction(insn))
}

/// Appends a code from one of `lists`, each list drawn with its weight, then a code of it
/// uniformly.
pub fn emit_weighted(
    d: &mut Draw,
    a: &mut iced_x86::code_asm::CodeAssembler,
    lists: &[(u64, &[Code])],
) -> Option<Result<(), IcedError>> {
    let total = lists.iter().map(|(w, _)| w).sum();
    let mut at = d.rng.below(total);
    for (w, codes) in lists {
        if at < *w {
            return emit_one_of(d, a, codes);
        }
        at -= w;
    }
    None
}

/// A control register's value moved through memory: one time in three `store [m]`, else
/// `mov [m], value; load [m]` (`width` 16 or 32 bits: FNSTCW/FLDCW, STMXCSR/LDMXCSR).
pub fn control_word(
    d: &mut Draw,
    a: &mut iced_x86::code_asm::CodeAssembler,
    width: u32,
    store: Code,
    load: Code,
    value: u32,
) -> Option<Result<(), IcedError>> {
    let bytes = u64::from(width / 8);
    let m = mem_of(d, bytes, bytes);
    if d.rng.chance(1, 3) {
        let st = build(d, store, Mem::At(m))?;
        return Some(a.add_instruction(st));
    }
    let mov = if width == 16 {
        Instruction::with2(Code::Mov_rm16_imm16, m, value & 0xffff)
    } else {
        Instruction::with2(Code::Mov_rm32_imm32, m, value)
    };
    let ld = build(d, load, Mem::At(m))?;
    Some(
        mov.and_then(|mov| a.add_instruction(mov))
            .and_then(|()| a.add_instruction(ld)),
    )
}

/// Appends one of `codes` (uniformly), or None for an empty list.
pub fn emit_one_of(
    d: &mut Draw,
    a: &mut iced_x86::code_asm::CodeAssembler,
    codes: &[Code],
) -> Option<Result<(), IcedError>> {
    let code = *d.rng.pick(codes)?;
    emit(d, a, code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::difftest::rng::Rng;

    #[test]
    fn names_are_read() {
        use Kind::*;
        assert_eq!(kinds(Code::Addps_xmm_xmmm128), Some(vec![Xmm, XmmOrMem]));
        assert_eq!(
            kinds(Code::Pextrb_r32m8_xmm_imm8),
            Some(vec![GprOrMem(32), Xmm, Imm8])
        );
        assert_eq!(kinds(Code::Fadd_st0_sti), Some(vec![St0, Sti]));
        assert_eq!(kinds(Code::Fld_m80fp), Some(vec![Mem]));
        assert_eq!(kinds(Code::Fnstsw_AX), Some(vec![Ax]));
        assert_eq!(kinds(Code::Fcom_st0_sti_DCD0), None);
        assert_eq!(
            kinds(Code::Cvtsi2sd_xmm_rm64),
            Some(vec![Xmm, GprOrMem(64)])
        );
    }

    #[test]
    fn memory_operands_land_in_the_region_aligned() {
        let mut rng = Rng::new(5);
        let bases = [DATA_ADDR + 800, DATA_ADDR + 1001, DATA_ADDR + 1279];
        let mut d = Draw {
            rng: &mut rng,
            keep_rcx: false,
            bases,
        };
        let (mut memory, mut aligned) = (0, 0);
        for _ in 0..300 {
            let Some(i) = build(&mut d, Code::Addps_xmm_xmmm128, Mem::Drawn) else {
                panic!("addps builds")
            };
            if i.op1_kind() != iced_x86::OpKind::Memory {
                continue;
            }
            memory += 1;
            let k = BASES
                .iter()
                .position(|&b| gpr(64, b) == i.memory_base())
                .unwrap();
            let at = bases[k].wrapping_add(i.memory_displacement64());
            assert!((DATA_ADDR..DATA_ADDR + DATA_LEN as u64 - 15).contains(&at));
            aligned += u32::from(at % 16 == 0);
        }
        // Misaligned on purpose only now and then.
        assert!(
            memory > 50 && aligned + 3 >= memory,
            "{aligned} of {memory}"
        );
        let i = build(&mut d, Code::Cvttsd2si_r64_xmmm64, Mem::Drawn).unwrap();
        assert!(WRITABLE.iter().any(|&n| gpr(64, n) == i.op0_register()));
        let i = build(&mut d, Code::Pinsrq_xmm_rm64_imm8, Mem::Never).unwrap();
        assert_eq!(i.op1_kind(), iced_x86::OpKind::Register);
        assert!(build(&mut d, Code::Fld_m80fp, Mem::Never).is_none());
    }
}
