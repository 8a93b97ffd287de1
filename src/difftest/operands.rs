//! Operands the generator draws: registers it may write, registers it may read, memory
//! operands inside the data region, immediates; and the typed CodeAssembler registers for a
//! register number.

use iced_x86::code_asm::*;

use super::rng::Rng;

/// RBX, RSI and RDI hold addresses inside the data region for the whole sequence (only the
/// string instructions move RSI/RDI, within bounds); RSP is the stack pointer.
pub const BASES: [u8; 3] = [3, 6, 7];
/// Registers an instruction may write: everything but RSP and the bases.
pub const WRITABLE: [u8; 12] = [0, 1, 2, 5, 8, 9, 10, 11, 12, 13, 14, 15];
/// Register number of RCX (the count register of loops, string ops and CL shifts).
pub const RCX: u8 = 1;

/// An operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A register by encoding number; for 8-bit operands 16..=19 are AH CH DH BH.
    R(u8),
    /// `[base + disp]`, base one of [`BASES`].
    M(u8, i32),
    /// An immediate, already in range for its width.
    I(i64),
}

const R64: [AsmRegister64; 16] = [
    rax,
    rcx,
    rdx,
    rbx,
    rsp,
    rbp,
    rsi,
    rdi,
    iced_x86::code_asm::r8,
    r9,
    r10,
    r11,
    r12,
    r13,
    r14,
    r15,
];
const R32: [AsmRegister32; 16] = [
    eax, ecx, edx, ebx, esp, ebp, esi, edi, r8d, r9d, r10d, r11d, r12d, r13d, r14d, r15d,
];
const R16: [AsmRegister16; 16] = [
    ax, cx, dx, bx, sp, bp, si, di, r8w, r9w, r10w, r11w, r12w, r13w, r14w, r15w,
];
const R8: [AsmRegister8; 20] = [
    al, cl, dl, bl, spl, bpl, sil, dil, r8b, r9b, r10b, r11b, r12b, r13b, r14b, r15b, ah, ch, dh,
    bh,
];

/// The 64-bit register number `i` (masked to 0..16).
pub fn r64(i: u8) -> AsmRegister64 {
    R64[usize::from(i & 15)]
}
/// The 32-bit register number `i`.
pub fn r32(i: u8) -> AsmRegister32 {
    R32[usize::from(i & 15)]
}
/// The 16-bit register number `i`.
pub fn r16(i: u8) -> AsmRegister16 {
    R16[usize::from(i & 15)]
}
/// The 8-bit register number `i` (16..=19: AH CH DH BH).
pub fn r8(i: u8) -> AsmRegister8 {
    R8.get(usize::from(i)).copied().unwrap_or(al)
}
/// `[base + disp]`.
pub fn mem(base: u8, disp: i32) -> AsmMemoryOperand {
    r64(base) + disp
}

/// The operand drawer for one sequence.
pub struct Draw<'a> {
    /// The randomness.
    pub rng: &'a mut Rng,
    /// Keep RCX unwritten (inside a `loop` body).
    pub keep_rcx: bool,
    /// The values of RBX, RSI and RDI (the [`BASES`]) for the whole sequence, when they are
    /// drawn before the code (the floating-point classes, which aim memory operands at exact,
    /// aligned addresses); zero otherwise.
    pub bases: [u64; 3],
}

impl Draw<'_> {
    /// A register the instruction may write, at width `w` (8-bit draws may give AH/CH/DH).
    pub fn dst(&mut self, w: u32) -> u8 {
        loop {
            let mut r = *self.rng.pick(&WRITABLE).unwrap_or(&0);
            if w == 8 && r < 3 && self.rng.chance(1, 4) {
                r += 16;
            }
            if !(self.keep_rcx && (r == RCX || r == 17)) {
                return r;
            }
        }
    }

    /// A register the instruction may read, at width `w`.
    pub fn src(&mut self, w: u32) -> u8 {
        if w == 8 && self.rng.chance(1, 6) {
            16 + self.rng.below(4) as u8
        } else {
            self.rng.below(16) as u8
        }
    }

    /// A memory operand in the data region.
    pub fn mem(&mut self) -> Op {
        let base = *self.rng.pick(&BASES).unwrap_or(&3);
        Op::M(base, self.rng.range(-128, 120) as i32)
    }

    /// A writable register or memory.
    pub fn dst_rm(&mut self, w: u32) -> Op {
        if self.rng.chance(1, 3) {
            self.mem()
        } else {
            Op::R(self.dst(w))
        }
    }

    /// A readable register or memory.
    pub fn src_rm(&mut self, w: u32) -> Op {
        if self.rng.chance(1, 3) {
            self.mem()
        } else {
            Op::R(self.src(w))
        }
    }

    /// An immediate for width `w` (at most 32 bits, sign-extended for 64-bit operands).
    pub fn imm(&mut self, w: u32) -> i64 {
        let v = self.rng.interesting();
        match w {
            8 => i64::from(v as i8),
            16 => i64::from(v as i16),
            _ => i64::from(v as i32),
        }
    }

    /// An operand width: 8, 16, 32 or 64.
    pub fn width(&mut self) -> u32 {
        [8, 16, 32, 64][self.rng.index(4)]
    }

    /// A width of 16, 32 or 64 (instructions without a byte form).
    pub fn width_no8(&mut self) -> u32 {
        [16, 32, 64][self.rng.index(3)]
    }
}
