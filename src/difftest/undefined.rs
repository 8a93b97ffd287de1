//! Undefined flags: the one place that says what the differential suite masks, and why.
//!
//! # The rule
//!
//! Only RFLAGS' six arithmetic flags (CF PF AF ZF SF OF) are ever masked, and only where the
//! Intel SDM says an instruction leaves them *undefined*. Per generated sequence, the set of
//! flags that are undefined is tracked along every control-flow path (a small data-flow pass,
//! [`undefined_on_entry`]): an instruction that writes a flag makes it defined or undefined as
//! the SDM says, a join (a branch target) takes the union of its predecessors. Then:
//!
//! 1. An instruction that would *read* a currently-undefined flag (adc/sbb/rcl/rcr read CF,
//!    jcc/setcc/cmovcc their condition, lahf/pushf the flags they copy, cmc CF, loope/loopne
//!    ZF) is not generated: the generator draws another one. So undefined flags never reach a
//!    register, memory or control flow, and the whole rest of the state is compared exactly.
//! 2. At the end, the flags undefined at the point where the run ended are masked in RFLAGS:
//!    at the end of the code for a completed run, or on entry to the faulting instruction for
//!    an exception (whose saved state is the one before it).
//!
//! # The masked cases
//!
//! Per instruction, the undefined set comes from iced-x86's instruction info
//! (`Instruction::rflags_undefined`, which encodes the SDM's tables), except for the
//! count-dependent shifts and rotates, which come from the JIT's own table,
//! `tandem_target_x86_64::flags::undefined_flags_of`, with the actual masked count (the
//! generator always knows it: an immediate, or a `mov cl, imm8` in the same group):
//!
//! | instructions                  | undefined                                        |
//! |-------------------------------|--------------------------------------------------|
//! | and or xor test               | AF                                               |
//! | shl/sal shr sar, count 1      | AF                                               |
//! | shl/sal shr sar, count 2..    | AF OF; also CF for shl/shr when count >= width   |
//! | rol ror rcl rcr, count > 1    | OF                                               |
//! | shld shrd, count 1 / 2..width | AF / AF OF                                       |
//! | any shift or rotate, count 0  | nothing (no flag changes)                        |
//! | mul imul                      | SF ZF AF PF                                      |
//! | div idiv                      | CF PF AF ZF SF OF                                |
//! | bt bts btr btc                | OF SF AF PF                                      |
//! | bsf bsr                       | CF OF SF AF PF                                   |
//! | lzcnt tzcnt                   | OF SF PF AF                                      |
//!
//! A `rep`/`repne` CMPS or SCAS counts as *maybe* writing its flags (it writes none when RCX
//! is 0), so it never turns an undefined flag into a defined one.
//!
//! Results the SDM leaves undefined outside RFLAGS are avoided rather than masked: `bsf`/`bsr`
//! always get a non-zero source (a `bts` on it in the same group), 16-bit `shld`/`shrd` never
//! get a count above 16, and `bswap` is never generated with a 16-bit operand.
//!
//! # KVM/PVM artefacts
//!
//! None is excluded: at CPL3 the PVM backend runs the sequence natively on the host CPU; the
//! only host involvement is delivering an exception through the harness's IDT, which the
//! harness undoes from the exception frame.

use iced_x86::{Instruction, Mnemonic, OpKind, RflagsBits};
use tandem_target_x86_64::flags::{bit, undefined_flags_of};
use tandem_tcg::Width;

/// The arithmetic flags: the only ones ever masked.
pub const ARITH: u64 = bit::ARITH;

/// What one instruction does to the flags, as RFLAGS bit masks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Effect {
    /// Flags whose value it reads.
    pub read: u64,
    /// Flags it writes (including those it leaves undefined).
    pub written: u64,
    /// Flags it leaves undefined.
    pub undefined: u64,
}

/// iced-x86's RflagsBits as RFLAGS bits (arithmetic flags and DF; the generator writes no
/// other flag).
fn rflags(bits: u32) -> u64 {
    let map = [
        (RflagsBits::OF, bit::OF),
        (RflagsBits::SF, bit::SF),
        (RflagsBits::ZF, bit::ZF),
        (RflagsBits::AF, bit::AF),
        (RflagsBits::CF, bit::CF),
        (RflagsBits::PF, bit::PF),
        (RflagsBits::DF, bit::DF),
    ];
    map.iter()
        .filter(|(i, _)| bits & i != 0)
        .fold(0, |acc, (_, r)| acc | r)
}

/// The operand width of `insn`'s first operand.
fn width_of(insn: &Instruction) -> Width {
    let bytes = match insn.op0_kind() {
        OpKind::Register => insn.op0_register().size(),
        _ => insn.memory_size().size(),
    };
    match bytes {
        1 => Width::W8,
        2 => Width::W16,
        4 => Width::W32,
        _ => Width::W64,
    }
}

/// The raw (unmasked) count of a shift or rotate: its immediate, 1 for the `..._1` forms, or
/// `cl` for the CL forms (None when unknown).
fn raw_count(insn: &Instruction, cl: Option<u8>) -> Option<u64> {
    let last = insn.op_count().checked_sub(1)?;
    match insn.op_kind(last) {
        OpKind::Immediate8 => Some(u64::from(insn.immediate8())),
        OpKind::Register if insn.op_register(last) == iced_x86::Register::CL => cl.map(u64::from),
        // `shl r/m, 1` (D0/D1) has the 1 as an implicit immediate operand.
        _ => Some(1),
    }
}

/// The flag effect of `insn`; `cl` is CL's value before it when the generator knows it (it
/// always does for the CL-count shifts it emits).
pub fn effect(insn: &Instruction, cl: Option<u8>) -> Effect {
    let mut e = Effect {
        read: rflags(insn.rflags_read()),
        written: rflags(insn.rflags_modified()),
        undefined: rflags(insn.rflags_undefined()),
    };
    let m = insn.mnemonic();
    // A REP-prefixed CMPS/SCAS may run zero iterations and then writes no flag: its flags
    // are "maybe written", which cannot make an undefined flag defined.
    if (insn.has_rep_prefix() || insn.has_repne_prefix())
        && matches!(
            m,
            Mnemonic::Cmpsb
                | Mnemonic::Cmpsw
                | Mnemonic::Cmpsd
                | Mnemonic::Cmpsq
                | Mnemonic::Scasb
                | Mnemonic::Scasw
                | Mnemonic::Scasd
                | Mnemonic::Scasq
        )
    {
        e.written = 0;
    }
    if matches!(
        m,
        Mnemonic::Shl
            | Mnemonic::Sal
            | Mnemonic::Shr
            | Mnemonic::Sar
            | Mnemonic::Rol
            | Mnemonic::Ror
            | Mnemonic::Rcl
            | Mnemonic::Rcr
            | Mnemonic::Shld
            | Mnemonic::Shrd
    ) {
        let w = width_of(insn);
        let mask = if w == Width::W64 { 63 } else { 31 };
        match raw_count(insn, cl) {
            // A zero count leaves every flag alone (and reads none).
            Some(c) if c & mask == 0 => return Effect::default(),
            Some(c) => e.undefined = undefined_flags_of(m, w, c & mask),
            // Unknown count: anything may be undefined.
            None => e.undefined = e.written,
        }
    }
    e
}

/// The flags undefined on entry to each node of a control-flow graph: node `i` has effect
/// `effects[i]` and successors `succ[i]` (indices up to `effects.len()`, the end). Returns
/// `effects.len() + 1` sets; the last is the one at the end of the code. Nodes never reached
/// get 0.
pub fn undefined_on_entry(effects: &[Effect], succ: &[Vec<usize>]) -> Vec<u64> {
    let n = effects.len();
    let mut state: Vec<Option<u64>> = vec![None; n + 1];
    if let Some(s) = state.first_mut() {
        *s = Some(0);
    }
    let mut work = vec![0usize];
    // Monotone unions over six bits: this converges after a few passes even with loops.
    while let Some(i) = work.pop() {
        let (Some(Some(inp)), Some(e)) = (state.get(i).copied(), effects.get(i)) else {
            continue;
        };
        let out = (inp & !e.written) | e.undefined;
        for &s in succ.get(i).map(Vec::as_slice).unwrap_or(&[]) {
            let Some(slot) = state.get_mut(s) else {
                continue;
            };
            let merged = slot.unwrap_or(0) | out;
            if *slot != Some(merged) {
                *slot = Some(merged);
                work.push(s);
            }
        }
    }
    state.into_iter().map(|s| s.unwrap_or(0) & ARITH).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::code_asm::*;

    fn insn(f: impl FnOnce(&mut CodeAssembler) -> Result<(), iced_x86::IcedError>) -> Instruction {
        let mut a = CodeAssembler::new(64).unwrap();
        f(&mut a).unwrap();
        a.instructions()[0]
    }

    #[test]
    fn shift_counts() {
        let e = effect(&insn(|a| a.shl(eax, 0)), None);
        assert_eq!(e, Effect::default());
        let e = effect(&insn(|a| a.shl(eax, 1)), None);
        assert_eq!(e.undefined, bit::AF);
        let e = effect(&insn(|a| a.shl(al, cl)), Some(9));
        assert_eq!(e.undefined, bit::AF | bit::OF | bit::CF);
        let e = effect(&insn(|a| a.shl(rax, cl)), Some(64));
        assert_eq!(e, Effect::default());
        let e = effect(&insn(|a| a.rcl(eax, 1)), None);
        assert_eq!((e.read, e.undefined), (bit::CF, 0));
        let e = effect(&insn(|a| a.adc(eax, ebx)), None);
        assert_eq!(e.read, bit::CF);
        let e = effect(&insn(|a| a.mul(ebx)), None);
        assert_eq!(e.undefined, bit::SF | bit::ZF | bit::AF | bit::PF);
    }

    #[test]
    fn dataflow_joins() {
        let mul = Effect {
            read: 0,
            written: ARITH,
            undefined: bit::ZF,
        };
        let add = Effect {
            read: 0,
            written: ARITH,
            undefined: 0,
        };
        let jcc = Effect::default();
        // 0: jcc -> 2 | 1: mul | 2: (join) end
        let s = undefined_on_entry(&[jcc, mul], &[vec![1, 2], vec![2]]);
        assert_eq!(s, vec![0, 0, bit::ZF]);
        // 0: mul | 1: add | end
        let s = undefined_on_entry(&[mul, add], &[vec![1], vec![2]]);
        assert_eq!(s, vec![0, bit::ZF, 0]);
    }
}
