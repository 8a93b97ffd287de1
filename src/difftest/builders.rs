//! One group of instructions per call, per class: the instruction under test and, where the
//! instruction needs it, a set-up instruction in the same group (`mov cl, n` before a shift by
//! CL, `mov ecx, n` before a `rep` string op, a `bts` that makes a `bsf` source non-zero, a
//! small bit offset before `bt [mem], reg`, a `push imm` before `popf`). Control flow is built
//! by the generator, which knows the other groups.

use iced_x86::code_asm::*;
use iced_x86::IcedError;

use super::operands::{r16, r32, r64, r8, Draw, Op};
use super::shapes::*;

/// What a builder returns: `None` when the drawn form does not exist (draw again).
pub type Built = Option<Result<(), IcedError>>;

/// add adc sub sbb cmp and or xor test inc dec neg not.
pub fn arith(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    let w = d.width();
    let dst = d.dst_rm(w);
    let src = match (dst, d.rng.below(3)) {
        (_, 0) => Op::I(d.imm(w)),
        (Op::M(..), _) => Op::R(d.src(w)),
        _ => d.src_rm(w),
    };
    match d.rng.below(13) {
        0 => bin!(a.add, w, dst, src),
        1 => bin!(a.adc, w, dst, src),
        2 => bin!(a.sub, w, dst, src),
        3 => bin!(a.sbb, w, dst, src),
        4 => bin!(a.cmp, w, dst, src),
        5 => bin!(a.and, w, dst, src),
        6 => bin!(a.or, w, dst, src),
        7 => bin!(a.xor, w, dst, src),
        8 => match src {
            Op::I(i) => rm_i!(a.test, w, dst, i),
            _ => rm_r!(a.test, w, dst, Op::R(d.src(w))),
        },
        9 => un!(a.inc, w, dst),
        10 => un!(a.dec, w, dst),
        11 => un!(a.neg, w, dst),
        _ => un!(a.not, w, dst),
    }
}

/// A shift or rotate count for width `w`: 0, 1, w-1, w, w+1, or anything up to 255.
fn count(d: &mut Draw, w: u32) -> u8 {
    let w = w as u8;
    match d.rng.below(6) {
        0 => 0,
        1 => 1,
        2 => w - 1,
        3 => w,
        4 => w.wrapping_add(1),
        _ => d.rng.below(256) as u8,
    }
}

/// shl shr sar rol ror rcl rcr shld shrd, by immediate or by CL (set in the same group).
pub fn shift(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    let which = d.rng.below(9);
    let by_cl = d.rng.chance(1, 3) && !d.keep_rcx;
    if which >= 7 {
        let w = d.width_no8();
        let dst = d.dst_rm(w);
        let src = d.src(w);
        // A 16-bit double shift by more than 16 leaves the destination undefined (SDM).
        let c = if w == 16 {
            d.rng.below(17) as u8
        } else {
            count(d, w)
        };
        let c = if by_cl {
            if let Err(e) = a.mov(cl, i32::from(c)) {
                return Some(Err(e));
            }
            None
        } else {
            Some(c)
        };
        return if which == 7 {
            dbl!(a.shld, w, dst, src, c)
        } else {
            dbl!(a.shrd, w, dst, src, c)
        };
    }
    let w = d.width();
    let dst = d.dst_rm(w);
    let c = count(d, w);
    if by_cl {
        if let Err(e) = a.mov(cl, i32::from(c)) {
            return Some(Err(e));
        }
        match which {
            0 => rm_cl!(a.shl, w, dst),
            1 => rm_cl!(a.shr, w, dst),
            2 => rm_cl!(a.sar, w, dst),
            3 => rm_cl!(a.rol, w, dst),
            4 => rm_cl!(a.ror, w, dst),
            5 => rm_cl!(a.rcl, w, dst),
            _ => rm_cl!(a.rcr, w, dst),
        }
    } else {
        match which {
            0 => rm_i!(a.shl, w, dst, c),
            1 => rm_i!(a.shr, w, dst, c),
            2 => rm_i!(a.sar, w, dst, c),
            3 => rm_i!(a.rol, w, dst, c),
            4 => rm_i!(a.ror, w, dst, c),
            5 => rm_i!(a.rcl, w, dst, c),
            _ => rm_i!(a.rcr, w, dst, c),
        }
    }
}

/// mul imul (1, 2, 3 operands) div idiv; a division is often prepared with `mov edx, 0` or a
/// sign extension so that it does not always raise #DE.
pub fn muldiv(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    let which = d.rng.below(6);
    if which == 4 {
        let w = d.width_no8();
        let dst = Op::R(d.dst(w));
        return r_rm!(a.imul_2, w, dst, d.src_rm(w));
    }
    if which == 5 {
        let w = d.width_no8();
        let dst = d.dst(w);
        let imm = d.imm(32) as i32;
        return match (w, d.src_rm(w)) {
            (16, Op::R(s)) => Some(a.imul_3(r16(dst), r16(s), imm as i16 as i32)),
            (16, Op::M(b, x)) => Some(a.imul_3(
                r16(dst),
                word_ptr(super::operands::mem(b, x)),
                imm as i16 as i32,
            )),
            (32, Op::R(s)) => Some(a.imul_3(r32(dst), r32(s), imm)),
            (32, Op::M(b, x)) => {
                Some(a.imul_3(r32(dst), dword_ptr(super::operands::mem(b, x)), imm))
            }
            (64, Op::R(s)) => Some(a.imul_3(r64(dst), r64(s), imm)),
            (64, Op::M(b, x)) => {
                Some(a.imul_3(r64(dst), qword_ptr(super::operands::mem(b, x)), imm))
            }
            _ => None,
        };
    }
    let w = d.width();
    let src = d.src_rm(w);
    if which >= 2 && d.rng.chance(1, 2) {
        // Prepare the dividend's high half.
        let r = match (which, w) {
            (2, 8) => a.movzx(ax, al),
            (2, _) => a.mov(edx, 0),
            (_, 8) => a.cbw(),
            (_, 16) => a.cwd(),
            (_, 32) => a.cdq(),
            _ => a.cqo(),
        };
        if let Err(e) = r {
            return Some(Err(e));
        }
    }
    match which {
        0 => un!(a.mul, w, src),
        1 => un!(a.imul, w, src),
        2 => un!(a.div, w, src),
        _ => un!(a.idiv, w, src),
    }
}

/// bt bts btr btc bsf bsr lzcnt tzcnt popcnt bswap.
pub fn bits(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    let w = d.width_no8();
    let which = d.rng.below(10);
    if which < 4 {
        let dst = d.dst_rm(w);
        let src = match dst {
            _ if d.rng.chance(1, 2) => Op::I(d.rng.below(256) as i64),
            Op::M(base, _) => {
                // A register bit offset addresses memory beyond the operand: keep it small.
                let r = loop {
                    let r = d.dst(64);
                    if r != base && r < 16 {
                        break r;
                    }
                };
                if let Err(e) = a.mov(r64(r), d.rng.range(-64, 255)) {
                    return Some(Err(e));
                }
                Op::R(r)
            }
            _ => Op::R(d.src(w)),
        };
        return match which {
            0 => bt!(a.bt, w, dst, src),
            1 => bt!(a.bts, w, dst, src),
            2 => bt!(a.btr, w, dst, src),
            _ => bt!(a.btc, w, dst, src),
        };
    }
    if which < 6 {
        // bsf/bsr of zero leave the destination undefined: set a bit of the source first.
        let src = d.dst_rm(w);
        let bit = d.rng.below(u64::from(w)) as i32;
        if let Some(Err(e)) = bt!(a.bts, w, src, Op::I(i64::from(bit))) {
            return Some(Err(e));
        }
        let dst = Op::R(d.dst(w));
        return if which == 4 {
            r_rm!(a.bsf, w, dst, src)
        } else {
            r_rm!(a.bsr, w, dst, src)
        };
    }
    let dst = Op::R(d.dst(w));
    let src = d.src_rm(w);
    match which {
        6 => r_rm!(a.lzcnt, w, dst, src),
        7 => r_rm!(a.tzcnt, w, dst, src),
        8 => r_rm!(a.popcnt, w, dst, src),
        // bswap of a 16-bit register is undefined (SDM): 32 and 64 only.
        _ => match (w, dst) {
            (64, Op::R(r)) => Some(a.bswap(r64(r))),
            (_, Op::R(r)) => Some(a.bswap(r32(r))),
            _ => None,
        },
    }
}

/// mov movzx movsx movsxd lea xchg cmovcc setcc xadd cmpxchg movbe cbw..cqo.
pub fn moves(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    use super::operands::mem;
    match d.rng.below(12) {
        0 => {
            let w = d.width();
            let dst = d.dst_rm(w);
            let imm = d.imm(w) as i32;
            match (w, dst, d.rng.below(3)) {
                (64, Op::R(r), 0) => Some(a.mov(r64(r), d.rng.interesting() as i64)),
                (8, Op::R(r), 0) => Some(a.mov(r8(r), imm)),
                (16, Op::R(r), 0) => Some(a.mov(r16(r), imm)),
                (32, Op::R(r), 0) => Some(a.mov(r32(r), imm)),
                (8, Op::M(b, x), 0) => Some(a.mov(byte_ptr(mem(b, x)), imm)),
                (16, Op::M(b, x), 0) => Some(a.mov(word_ptr(mem(b, x)), imm)),
                (32, Op::M(b, x), 0) => Some(a.mov(dword_ptr(mem(b, x)), imm)),
                (64, Op::M(b, x), 0) => Some(a.mov(qword_ptr(mem(b, x)), imm)),
                (_, Op::R(r), 1) => match (w, d.mem()) {
                    (8, Op::M(b, x)) => Some(a.mov(r8(r), byte_ptr(mem(b, x)))),
                    (16, Op::M(b, x)) => Some(a.mov(r16(r), word_ptr(mem(b, x)))),
                    (32, Op::M(b, x)) => Some(a.mov(r32(r), dword_ptr(mem(b, x)))),
                    (64, Op::M(b, x)) => Some(a.mov(r64(r), qword_ptr(mem(b, x)))),
                    _ => None,
                },
                _ => rm_r!(a.mov, w, dst, Op::R(d.src(w))),
            }
        }
        1 | 2 => {
            let from = if d.rng.chance(1, 2) { 8 } else { 16 };
            let w = if from == 8 {
                d.width_no8()
            } else {
                [32, 64][d.rng.index(2)]
            };
            let dst = d.dst(w);
            let zx = d.rng.chance(1, 2);
            macro_rules! ext {
                ($m:ident) => {
                    match (w, from, d.src_rm(from)) {
                        (16, 8, Op::R(s)) => Some(a.$m(r16(dst), r8(s))),
                        (32, 8, Op::R(s)) => Some(a.$m(r32(dst), r8(s))),
                        (64, 8, Op::R(s)) => Some(a.$m(r64(dst), r8(s))),
                        (32, 16, Op::R(s)) => Some(a.$m(r32(dst), r16(s))),
                        (64, 16, Op::R(s)) => Some(a.$m(r64(dst), r16(s))),
                        (16, 8, Op::M(b, x)) => Some(a.$m(r16(dst), byte_ptr(mem(b, x)))),
                        (32, 8, Op::M(b, x)) => Some(a.$m(r32(dst), byte_ptr(mem(b, x)))),
                        (64, 8, Op::M(b, x)) => Some(a.$m(r64(dst), byte_ptr(mem(b, x)))),
                        (32, 16, Op::M(b, x)) => Some(a.$m(r32(dst), word_ptr(mem(b, x)))),
                        (64, 16, Op::M(b, x)) => Some(a.$m(r64(dst), word_ptr(mem(b, x)))),
                        _ => None,
                    }
                };
            }
            if zx {
                ext!(movzx)
            } else {
                ext!(movsx)
            }
        }
        3 => {
            let dst = d.dst(64);
            match d.src_rm(32) {
                Op::R(s) => Some(a.movsxd(r64(dst), r32(s))),
                Op::M(b, x) => Some(a.movsxd(r64(dst), dword_ptr(mem(b, x)))),
                Op::I(_) => None,
            }
        }
        4 => {
            // lea computes an address without touching memory: any base, index and scale.
            let w = d.width_no8();
            let dst = d.dst(w);
            let base = r64(d.rng.below(16) as u8);
            let disp = d.imm(32) as i32;
            let index = loop {
                let i = d.rng.below(16) as u8;
                if i != 4 {
                    break r64(i);
                }
            };
            let scale = [1, 2, 4, 8][d.rng.index(4)];
            let m = if d.rng.chance(1, 2) {
                base + index * scale + disp
            } else {
                base + disp
            };
            match w {
                16 => Some(a.lea(r16(dst), m)),
                32 => Some(a.lea(r32(dst), m)),
                _ => Some(a.lea(r64(dst), m)),
            }
        }
        5 => {
            let w = d.width();
            rm_r!(a.xchg, w, d.dst_rm(w), Op::R(d.dst(w)))
        }
        6 => {
            let w = d.width_no8();
            let cc = d.rng.below(16);
            let dst = Op::R(d.dst(w));
            let src = d.src_rm(w);
            cond!(
                r_rm,
                cc,
                a,
                [cmovo cmovno cmovb cmovae cmove cmovne cmovbe cmova cmovs cmovns cmovp cmovnp cmovl cmovge cmovle cmovg],
                w,
                dst,
                src
            )
        }
        7 => {
            let cc = d.rng.below(16);
            let dst = d.dst_rm(8);
            cond!(
                rm8,
                cc,
                a,
                [seto setno setb setae sete setne setbe seta sets setns setp setnp setl setge setle setg],
                dst
            )
        }
        8 => {
            let w = d.width();
            rm_r!(a.xadd, w, d.dst_rm(w), Op::R(d.dst(w)))
        }
        9 => {
            let w = d.width();
            rm_r!(a.cmpxchg, w, d.dst_rm(w), Op::R(d.src(w)))
        }
        10 => {
            let w = d.width_no8();
            let Op::M(b, x) = d.mem() else { return None };
            let r = d.dst(w);
            match (w, d.rng.chance(1, 2)) {
                (16, true) => Some(a.movbe(r16(r), word_ptr(mem(b, x)))),
                (32, true) => Some(a.movbe(r32(r), dword_ptr(mem(b, x)))),
                (64, true) => Some(a.movbe(r64(r), qword_ptr(mem(b, x)))),
                (16, false) => Some(a.movbe(word_ptr(mem(b, x)), r16(r))),
                (32, false) => Some(a.movbe(dword_ptr(mem(b, x)), r32(r))),
                _ => Some(a.movbe(qword_ptr(mem(b, x)), r64(r))),
            }
        }
        _ => Some(match d.rng.below(6) {
            0 => a.cbw(),
            1 => a.cwde(),
            2 => a.cdqe(),
            3 => a.cwd(),
            4 => a.cdq(),
            _ => a.cqo(),
        }),
    }
}

/// The RFLAGS bits a generated `popf` may load: the arithmetic flags, DF and IF (which CPL3
/// cannot change: the CPU keeps it, silently) and the fixed bit 1.
const POPF_BITS: i64 = 0x8d5 | 0x400 | 0x200;

/// push pop pushf popf.
pub fn stack(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    use super::operands::mem;
    match d.rng.below(9) {
        0 => Some(a.push(r64(d.src(64)))),
        1 => Some(a.push(r16(d.src(64)))),
        2 => Some(a.push(d.imm(32) as i32)),
        3 => match d.mem() {
            Op::M(b, x) => Some(a.push(qword_ptr(mem(b, x)))),
            _ => None,
        },
        4 => Some(a.pop(r64(d.dst(64)))),
        5 => Some(a.pop(r16(d.dst(64)))),
        6 => match d.mem() {
            Op::M(b, x) => Some(a.pop(qword_ptr(mem(b, x)))),
            _ => None,
        },
        7 => Some(a.pushfq()),
        _ => {
            let flags = (d.rng.next_u64() as i64 & POPF_BITS) | 2;
            if let Err(e) = a.push(flags as i32) {
                return Some(Err(e));
            }
            Some(a.popfq())
        }
    }
}

/// movs stos lods cmps scas (b/w/d/q), plain or with rep/repe/repne after `mov ecx, 0..7`,
/// sometimes after cld/std.
pub fn string(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    let prefixed = d.rng.chance(2, 3) && !d.keep_rcx;
    if prefixed {
        if let Err(e) = a.mov(ecx, d.rng.below(8) as u32) {
            return Some(Err(e));
        }
    }
    match d.rng.below(5) {
        0 => {
            if let Err(e) = a.cld() {
                return Some(Err(e));
            }
        }
        1 => {
            if let Err(e) = a.std() {
                return Some(Err(e));
            }
        }
        _ => {}
    }
    let op = d.rng.below(5);
    let size = d.rng.below(4);
    // movs/stos/lods take rep; cmps/scas repe or repne.
    let a = match (prefixed, op, d.rng.chance(1, 2)) {
        (false, _, _) => a,
        (true, 0..=2, _) => a.rep(),
        (true, _, true) => a.repe(),
        (true, _, false) => a.repne(),
    };
    Some(match (op, size) {
        (0, 0) => a.movsb(),
        (0, 1) => a.movsw(),
        (0, 2) => a.movsd(),
        (0, _) => a.movsq(),
        (1, 0) => a.stosb(),
        (1, 1) => a.stosw(),
        (1, 2) => a.stosd(),
        (1, _) => a.stosq(),
        (2, 0) => a.lodsb(),
        (2, 1) => a.lodsw(),
        (2, 2) => a.lodsd(),
        (2, _) => a.lodsq(),
        (3, 0) => a.cmpsb(),
        (3, 1) => a.cmpsw(),
        (3, 2) => a.cmpsd(),
        (3, _) => a.cmpsq(),
        (_, 0) => a.scasb(),
        (_, 1) => a.scasw(),
        (_, 2) => a.scasd(),
        (_, _) => a.scasq(),
    })
}

/// lahf sahf clc stc cmc cld std.
pub fn flags(d: &mut Draw, a: &mut CodeAssembler) -> Built {
    Some(match d.rng.below(7) {
        0 => a.lahf(),
        1 => a.sahf(),
        2 => a.clc(),
        3 => a.stc(),
        4 => a.cmc(),
        5 => a.cld(),
        _ => a.std(),
    })
}
