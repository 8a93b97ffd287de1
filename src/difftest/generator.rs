//! Sequence generation: a seeded, reproducible snippet per (class, seed) — 1..=8 groups of
//! instructions drawn from the class, random registers, flags and memory — plus what the
//! comparison needs to know about it (which flags are undefined where; see [`undefined`]).
//!
//! # The memory the sequence may touch
//!
//! - The data region, [`DATA_ADDR`]..+[`DATA_LEN`]: RBX, RSI and RDI start inside its middle
//!   ([`BASE_LO`]..[`BASE_HI`]) and are never written except by string instructions, which
//!   move RSI/RDI by at most 7 elements of 8 bytes per group; memory operands are
//!   `[base + disp8]` and bit offsets from a register are at most ±256 bits, so every access
//!   stays inside the region.
//! - The stack: RSP starts at [`STACK_RSP`], in the middle of a compared region
//!   [`STACK_REGION`]..[`STACK_TOP`]; a sequence pushes or pops at most a few dozen bytes.
//!
//! Both regions start with random contents and are compared after the run.
//!
//! The floating-point classes ([`Class::FP`]) draw RBX/RSI/RDI before the code, which none of
//! their instructions writes, and aim memory operands at exact addresses anywhere in the data
//! region (`[base + disp32]`), 16-byte aligned where the instruction needs it; their data
//! region holds float-rich values (and, for `fxsave`, valid FXSAVE images). Every class starts
//! from a random x87/SSE state ([`fp::state`]: XMM0-15, MXCSR, FCW, the x87 stack), drawn from
//! a stream of its own so that the integer classes' code and registers do not depend on it.
//!
//! [`undefined`]: super::undefined
//! [`fp::state`]: super::fp::state

use std::ops::Range;

use iced_x86::code_asm::CodeAssembler;
use iced_x86::{BlockEncoder, BlockEncoderOptions, Code, Instruction, InstructionBlock, Register};

use super::builders;
use super::classes::Class;
use super::error::DiffError;
use super::faults::raises_gp;
use super::fp;
use super::operands::{Draw, BASES};
use super::rng::{mix, Rng};
use super::undefined::{effect, undefined_memory, undefined_on_entry, Effect, ARITH};
use crate::harness::{Snippet, CODE_ADDR, STACK_TOP};
use tandem_target_x86_64::cpu_state::reg;
use tandem_target_x86_64::flags::bit;

/// The data region's address.
pub const DATA_ADDR: u64 = 0x50_0000;
/// The data region's size.
pub const DATA_LEN: usize = 2048;
/// Lowest initial offset of RBX/RSI/RDI in the data region.
pub const BASE_LO: u64 = 768;
/// Highest initial offset (exclusive).
pub const BASE_HI: u64 = 1280;
/// Start of the compared stack region (it ends at the stack top).
pub const STACK_REGION: u64 = STACK_TOP - 512;
/// Initial RSP.
pub const STACK_RSP: u64 = STACK_TOP - 256;
/// Most groups per sequence.
pub const MAX_GROUPS: u64 = 8;
/// Most groups per sequence of a floating-point class (one instruction each, mostly).
pub const MAX_FP_GROUPS: u64 = 16;
/// Salt of the random stream the starting x87/SSE state is drawn from.
const FP_STATE_SALT: u64 = 0xf87_55e0;

/// Where a branch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A later group, chosen when the sequence is laid out (`n` = the end).
    Later { within: usize },
    /// An instruction of the same group, by index.
    Local(usize),
    /// The first instruction after this group.
    Next,
}

/// How control leaves an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// To the next instruction.
    Fall,
    /// Unconditionally to the target.
    Jump(Target),
    /// To the next instruction or the target.
    Branch(Target),
    /// A call: to the target (the callee returns to the next instruction).
    Call(Target),
    /// A return to the given target.
    Ret(Target),
}

#[derive(Debug, Clone)]
struct Item {
    insn: Instruction,
    flow: Flow,
    cl: Option<u8>,
}

type Group = Vec<Item>;

/// One generated sequence and what comparing its results needs.
#[derive(Debug, Clone)]
pub struct Sequence {
    /// Its seed.
    pub seed: u64,
    /// Its class.
    pub class: Class,
    /// The snippet to run (code at [`CODE_ADDR`], registers, the two memory regions).
    pub snippet: Snippet,
    /// For each instruction of the laid-out code: its address and what is undefined on entry
    /// to it (flags, x87 condition codes, XMM registers: the bits of
    /// [`undefined`](super::undefined)).
    pub points: Vec<(u64, u64)>,
    /// What is undefined at the end of the code.
    pub undefined_at_end: u64,
    /// Memory the code may leave undefined (the pointer and reserved fields of the images
    /// FXSAVE stores), masked in the compared regions.
    pub memory_undefined: Vec<Range<u64>>,
    /// The address of the first instruction that raises #GP(0) on purpose, if any (see
    /// [`faults`](super::faults)).
    pub expected_gp: Option<u64>,
}

impl Sequence {
    /// What to mask for a run that ended at `rip`, `completed` or not: what is undefined at
    /// the end of the code, or on entry to the instruction at `rip` (an exception's saved
    /// state is the one before the faulting instruction); everything undefined anywhere when
    /// `rip` is not an instruction boundary (the RIPs then differ anyway).
    pub fn mask_for(&self, rip: u64, completed: bool) -> u64 {
        if completed {
            return self.undefined_at_end;
        }
        match self.points.iter().find(|(a, _)| *a == rip) {
            Some((_, u)) => *u,
            None if rip == CODE_ADDR + self.snippet.code.len() as u64 => self.undefined_at_end,
            None => self
                .points
                .iter()
                .fold(self.undefined_at_end, |acc, (_, u)| acc | u),
        }
    }
}

/// The jcc codes by condition number (o no b ae e ne be a s ns p np l ge le g).
const JCC: [Code; 16] = [
    Code::Jo_rel8_64,
    Code::Jno_rel8_64,
    Code::Jb_rel8_64,
    Code::Jae_rel8_64,
    Code::Je_rel8_64,
    Code::Jne_rel8_64,
    Code::Jbe_rel8_64,
    Code::Ja_rel8_64,
    Code::Js_rel8_64,
    Code::Jns_rel8_64,
    Code::Jp_rel8_64,
    Code::Jnp_rel8_64,
    Code::Jl_rel8_64,
    Code::Jge_rel8_64,
    Code::Jle_rel8_64,
    Code::Jg_rel8_64,
];

fn branch(code: Code, flow: Flow) -> Result<Item, DiffError> {
    Ok(Item {
        insn: Instruction::with_branch(code, 0).map_err(DiffError::encode)?,
        flow,
        cl: None,
    })
}

fn plain(insns: Vec<Instruction>) -> Group {
    let mut cl = None;
    insns
        .into_iter()
        .map(|insn| {
            let item = Item {
                insn,
                flow: Flow::Fall,
                cl,
            };
            // A `mov cl, imm8` in the group tells the next instruction (its shift) the count.
            cl = (insn.code() == Code::Mov_r8_imm8 && insn.op0_register() == Register::CL)
                .then(|| insn.immediate8());
            item
        })
        .collect()
}

/// Builds one group with `f`; None when the drawn form does not exist or does not encode
/// (AH with a REX prefix, say).
fn build(
    d: &mut Draw,
    f: fn(&mut Draw, &mut CodeAssembler) -> builders::Built,
) -> Result<Option<Group>, DiffError> {
    let mut a = CodeAssembler::new(64).map_err(DiffError::encode)?;
    match f(d, &mut a) {
        Some(Ok(())) => {}
        Some(Err(_)) | None => return Ok(None),
    }
    let insns = a.take_instructions();
    let mut enc = iced_x86::Encoder::new(64);
    if insns.is_empty() || insns.iter().any(|i| enc.encode(i, CODE_ADDR).is_err()) {
        return Ok(None);
    }
    Ok(Some(plain(insns)))
}

fn builder_of(class: Class) -> fn(&mut Draw, &mut CodeAssembler) -> builders::Built {
    match class {
        Class::Shift => builders::shift,
        Class::MulDiv => builders::muldiv,
        Class::Bits => builders::bits,
        Class::Move => builders::moves,
        Class::Stack => builders::stack,
        Class::String => builders::string,
        Class::Flags => builders::flags,
        Class::SseFloat => fp::sse_float::build,
        Class::SseConvert => fp::sse_convert::build,
        Class::SseInt => fp::sse_int::build,
        Class::SseMove => fp::sse_move::build,
        Class::Sse42 => fp::sse42::build,
        Class::Mmx => fp::mmx::build,
        Class::X87 => fp::x87::build,
        Class::Fxsave => fp::fxsave::build,
        Class::Arith | Class::Control | Class::Mixed | Class::FpMixed => builders::arith,
    }
}

/// A group of a plain (non-control) class, drawing until one builds.
fn plain_group(d: &mut Draw, class: Class) -> Result<Group, DiffError> {
    for _ in 0..100 {
        if let Some(g) = build(d, builder_of(class))? {
            return Ok(g);
        }
    }
    Ok(plain(vec![Instruction::with(Code::Nopd)]))
}

/// A control-flow group: a forward jcc/jmp/loop/jrcxz, a counted backward loop, or a call to
/// a nearby subroutine.
fn control_group(d: &mut Draw) -> Result<Group, DiffError> {
    Ok(match d.rng.below(8) {
        0..=2 => vec![branch(
            JCC[d.rng.index(16)],
            Flow::Branch(Target::Later { within: 8 }),
        )?],
        3 => vec![branch(
            Code::Jmp_rel8_64,
            Flow::Jump(Target::Later { within: 8 }),
        )?],
        4 => {
            let code = [
                Code::Loop_rel8_64_RCX,
                Code::Loope_rel8_64_RCX,
                Code::Loopne_rel8_64_RCX,
                Code::Jrcxz_rel8_64,
                Code::Jecxz_rel8_64,
            ][d.rng.index(5)];
            // rel8 only: keep the target within two groups.
            vec![branch(code, Flow::Branch(Target::Later { within: 2 }))?]
        }
        5 | 6 => {
            // mov ecx, n; top: body; loop top   (the body keeps RCX)
            let mut a = CodeAssembler::new(64).map_err(DiffError::encode)?;
            a.mov(iced_x86::code_asm::ecx, 1 + d.rng.below(4) as u32)
                .map_err(DiffError::encode)?;
            let mut g = plain(a.take_instructions());
            d.keep_rcx = true;
            for _ in 0..1 + d.rng.below(2) {
                g.extend(plain_group(d, Class::Arith)?);
            }
            d.keep_rcx = false;
            g.push(branch(
                Code::Loop_rel8_64_RCX,
                Flow::Branch(Target::Local(1)),
            )?);
            g
        }
        _ => {
            // call sub; jmp over; sub: body; ret; over:
            let mut body = Vec::new();
            for _ in 0..1 + d.rng.below(2) {
                body.extend(plain_group(d, Class::Arith)?);
            }
            let sub = 2;
            let mut g = vec![
                branch(Code::Call_rel32_64, Flow::Call(Target::Local(sub)))?,
                branch(Code::Jmp_rel8_64, Flow::Jump(Target::Next))?,
            ];
            g.extend(body);
            g.push(Item {
                insn: Instruction::with(Code::Retnq),
                flow: Flow::Ret(Target::Local(1)),
                cl: None,
            });
            g
        }
    })
}

/// A group for `class`.
fn group(d: &mut Draw, class: Class) -> Result<Group, DiffError> {
    match class {
        Class::Control if d.rng.chance(1, 2) => control_group(d),
        Class::Control => plain_group(d, Class::Arith),
        Class::Mixed => match d.rng.below(10) {
            0 => control_group(d),
            n => plain_group(d, Class::INTEGER[(n - 1) as usize]),
        },
        // Every floating-point class but fxsave, whose images hold bytes FXSAVE leaves
        // undefined that the others' loads would read.
        Class::FpMixed => loop {
            let c = Class::FP[d.rng.index(Class::FP.len())];
            if !matches!(c, Class::Fxsave | Class::FpMixed) {
                break plain_group(d, c);
            }
        },
        c => plain_group(d, c),
    }
}

/// The laid-out sequence: instructions with resolved flat targets and successor lists.
struct Layout {
    insns: Vec<Instruction>,
    effects: Vec<Effect>,
    succ: Vec<Vec<usize>>,
    /// Flat index of each instruction's group.
    group_of: Vec<usize>,
}

/// Lays the groups out, resolving branch targets with `targets[g]` (the group index a
/// `Later` branch of group `g` goes to; `groups.len()` is the end, which gets a `nop`).
fn layout(groups: &[Group], targets: &[usize]) -> Layout {
    let starts: Vec<usize> = groups
        .iter()
        .scan(0, |at, g| {
            let s = *at;
            *at += g.len();
            Some(s)
        })
        .collect();
    let total: usize = groups.iter().map(Vec::len).sum();
    let start_of = |g: usize| starts.get(g).copied().unwrap_or(total);
    let mut l = Layout {
        insns: Vec::new(),
        effects: Vec::new(),
        succ: Vec::new(),
        group_of: Vec::new(),
    };
    let mut needs_end = false;
    for (gi, g) in groups.iter().enumerate() {
        let base = start_of(gi);
        for (k, item) in g.iter().enumerate() {
            let here = base + k;
            let resolve = |t: Target| match t {
                Target::Later { .. } => start_of(targets.get(gi).copied().unwrap_or(groups.len())),
                Target::Local(j) => base + j,
                Target::Next => base + g.len(),
            };
            let succ = match item.flow {
                Flow::Fall => vec![here + 1],
                Flow::Jump(t) | Flow::Call(t) | Flow::Ret(t) => vec![resolve(t)],
                Flow::Branch(t) => vec![here + 1, resolve(t)],
            };
            needs_end |= item.flow != Flow::Fall && succ.contains(&total);
            let mut insn = item.insn;
            insn.set_ip(CODE_ADDR + here as u64 * 16);
            if let Some(&t) = succ.last().filter(|_| item.flow != Flow::Fall) {
                if !matches!(item.flow, Flow::Ret(_)) {
                    insn.set_near_branch64(CODE_ADDR + t as u64 * 16);
                }
            }
            l.insns.push(insn);
            l.effects.push(effect(&item.insn, item.cl));
            l.succ.push(succ);
            l.group_of.push(gi);
        }
    }
    if needs_end {
        // Branches to the end need an instruction to land on.
        let mut nop = Instruction::with(Code::Nopd);
        nop.set_ip(CODE_ADDR + total as u64 * 16);
        l.insns.push(nop);
        l.effects.push(Effect::default());
        l.succ.push(vec![total + 1]);
        l.group_of.push(groups.len());
    }
    l
}

/// The first instruction that reads a flag undefined on entry to it.
fn first_bad_read(l: &Layout, undefined: &[u64]) -> Option<usize> {
    l.effects
        .iter()
        .zip(undefined)
        .position(|(e, u)| e.read & u != 0)
}

/// Generates the sequence for (`class`, `seed`).
pub fn generate(class: Class, seed: u64) -> Result<Sequence, DiffError> {
    let mut rng = Rng::new(mix(seed) ^ class.salt());
    let bases = if class.is_fp() {
        Some(draw_bases(&mut rng))
    } else {
        None
    };
    let mut d = Draw {
        rng: &mut rng,
        keep_rcx: false,
        bases: bases.unwrap_or_default(),
    };
    let max = if class.is_fp() {
        MAX_FP_GROUPS
    } else {
        MAX_GROUPS
    };
    let n = 1 + d.rng.below(max) as usize;
    let mut groups = Vec::with_capacity(n);
    for _ in 0..n {
        groups.push(group(&mut d, class)?);
    }
    let mut targets: Vec<usize> = Vec::with_capacity(n);
    for (gi, g) in groups.iter().enumerate() {
        let within =
            g.iter()
                .find_map(|i| match i.flow {
                    Flow::Jump(Target::Later { within })
                    | Flow::Branch(Target::Later { within }) => Some(within),
                    _ => None,
                })
                .unwrap_or(1);
        let hi = (gi + within).min(n);
        // Prefer skipping at least one group: a branch to the next one tests little.
        let lo = (gi + 2).min(hi);
        targets.push(d.rng.range(lo as i64, hi as i64) as usize);
    }
    // Rule 1 of `undefined`: redraw any group that reads a flag undefined there.
    let mut attempts = 0;
    let (l, undefined) = loop {
        let l = layout(&groups, &targets);
        let u = undefined_on_entry(&l.effects, &l.succ);
        let Some(bad) = first_bad_read(&l, &u) else {
            break (l, u);
        };
        let gi = l.group_of.get(bad).copied().unwrap_or(0);
        attempts += 1;
        let Some(slot) = groups.get_mut(gi) else {
            break (l, u);
        };
        *slot = if attempts > 64 {
            plain(vec![Instruction::with(Code::Nopd)])
        } else {
            group(&mut d, class)?
        };
    };
    let encoded = BlockEncoder::encode(
        64,
        InstructionBlock::new(&l.insns, CODE_ADDR),
        BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
    )
    .map_err(DiffError::encode)?;
    let points: Vec<(u64, u64)> = encoded
        .new_instruction_offsets
        .iter()
        .zip(&undefined)
        .map(|(&off, &u)| (CODE_ADDR + u64::from(off), u))
        .collect();
    let undefined_at_end = undefined.last().copied().unwrap_or(ARITH);
    let (memory_undefined, expected_gp) = match bases {
        Some(b) => {
            let base = |r: Register| {
                BASES
                    .iter()
                    .position(|&n| fp::forms::gpr(64, n) == r)
                    .map(|k| b[k])
            };
            let memory = l
                .insns
                .iter()
                .flat_map(|i| undefined_memory(i, base))
                .collect();
            // The floating-point classes have no branches: the first one in code order is
            // the first one run.
            let gp = (0..l.insns.len())
                .find(|&i| raises_gp(&l.insns[i], i.checked_sub(1).map(|j| &l.insns[j]), &base))
                .and_then(|i| points.get(i).map(|p: &(u64, u64)| p.0));
            (memory, gp)
        }
        None => (Vec::new(), None),
    };
    let mut fp_rng = Rng::new(mix(seed ^ FP_STATE_SALT) ^ class.salt());
    let snippet = initial(&mut rng, &mut fp_rng, class, bases, encoded.code_buffer);
    Ok(Sequence {
        seed,
        class,
        snippet,
        points,
        undefined_at_end,
        memory_undefined,
        expected_gp,
    })
}

/// Values for RBX, RSI and RDI in the middle of the data region.
fn draw_bases(rng: &mut Rng) -> [u64; 3] {
    [0; 3].map(|_| DATA_ADDR + BASE_LO + rng.below(BASE_HI - BASE_LO))
}

/// Random bytes, as edge-case-rich 64-bit words.
fn random_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len.div_ceil(8))
        .flat_map(|_| rng.interesting().to_le_bytes())
        .take(len)
        .collect()
}

/// Data-region bytes for the floating-point classes: 16-byte chunks of XMM-style values, or
/// an x87 extended value followed by random bytes.
fn float_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        if rng.chance(3, 10) {
            out.extend_from_slice(&fp::values::f80(rng));
            out.extend_from_slice(&rng.next_u64().to_le_bytes()[..6]);
        } else {
            out.extend_from_slice(&fp::values::xmm(rng));
        }
    }
    out.truncate(len);
    out
}

/// The snippet: `code`, random registers and flags (RBX/RSI/RDI from `bases` when they were
/// drawn first), random memory, and a random x87/SSE state from `fp_rng`.
fn initial(
    rng: &mut Rng,
    fp_rng: &mut Rng,
    class: Class,
    bases: Option<[u64; 3]>,
    code: Vec<u8>,
) -> Snippet {
    let mut s = Snippet::new(code);
    for r in s.initial.gpr.iter_mut() {
        *r = rng.interesting();
    }
    s.initial.gpr[reg::RSP] = STACK_RSP;
    let bases = bases.unwrap_or_else(|| draw_bases(rng));
    for (&r, b) in BASES.iter().zip(bases) {
        s.initial.gpr[usize::from(r)] = b;
    }
    s.initial.rflags = 0x202 | (rng.next_u64() & (ARITH | bit::DF));
    let data = if class.is_fp() {
        let mut data = float_bytes(rng, DATA_LEN);
        if class == Class::Fxsave {
            fp::fxsave::fill(rng, &mut data);
        }
        data
    } else {
        random_bytes(rng, DATA_LEN)
    };
    s.memory = vec![
        (DATA_ADDR, data),
        (
            STACK_REGION,
            random_bytes(rng, (STACK_TOP - STACK_REGION) as usize),
        ),
    ];
    let start = if class == Class::Mmx {
        fp::state::StackStart::MostlyZero
    } else {
        fp::state::StackStart::Any
    };
    s.initial.fx = fp::state::random_state(fp_rng, start);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_generates_and_is_reproducible() {
        for class in Class::ALL {
            for seed in 0..200 {
                let a = generate(class, seed).unwrap();
                let b = generate(class, seed).unwrap();
                assert_eq!(a.snippet, b.snippet, "{class} {seed}");
                assert!(!a.snippet.code.is_empty());
                a.snippet.validate().unwrap();
            }
        }
    }
}
