//! Undefined results: the one place that says what the differential suite masks, and why.
//!
//! # The rule
//!
//! Only what the Intel SDM leaves *undefined*, or what Intel and AMD CPUs compute differently
//! (below), is masked (plus the x87 pointers and reserved bytes, which are not results). Four
//! kinds of state can be undefined after an instruction, and the suite tracks all four the same
//! way, as bits of one mask per program point: RFLAGS' six arithmetic flags (CF PF AF ZF SF
//! OF), the x87 condition codes C0-C3 of FSW ([`C0`]..[`C3`]), whole XMM registers
//! ([`xmm_bit`]), and the NaN lanes of XMM registers ([`xmm_nan_bit`]). Per generated sequence, the set
//! that is undefined is followed along every control-flow path (a small data-flow pass,
//! [`undefined_on_entry`]): an instruction that writes one makes it defined or undefined as the
//! SDM says, a join (a branch target) takes the union of its predecessors. Then:
//!
//! 1. An instruction that would *read* something currently undefined (adc/sbb/rcl/rcr read CF,
//!    jcc/setcc/cmovcc/fcmovcc their condition, lahf/pushf the flags they copy, cmc CF,
//!    loope/loopne ZF; fnstsw and fxsave the condition codes; any instruction an undefined XMM
//!    register as a source, fxsave all of them) is not generated: the generator draws another
//!    one. So undefined values never reach a register, memory or control flow, and the rest
//!    of the state is compared exactly.
//! 2. At the end, what is undefined at the point where the run ended is masked: at the end of
//!    the code for a completed run, or on entry to the faulting instruction for an exception
//!    (whose saved state is the one before it).
//!
//! # The masked flags
//!
//! Per instruction, the undefined set comes from iced-x86's instruction info
//! (`Instruction::rflags_undefined`, which encodes the SDM's tables, x87 condition codes
//! included), except for the count-dependent shifts and rotates, which come from the JIT's own
//! table, `tandem_target_x86_64::flags::undefined_flags_of`, with the actual masked count (the
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
//! # x87 condition codes
//!
//! The SDM's "FPU Flags Affected" paragraph of most x87 instructions leaves some of C0-C3
//! undefined: C0 C2 C3 after loads, stores, arithmetic, FSQRT FSCALE FRNDINT FXTRACT FCHS FABS
//! FXCH FINCSTP FDECSTP FCMOVcc and the integer conversions (C1 keeps its meaning: stack
//! overflow/underflow or round-up), all four after FNSTSW, FNSTCW, FLDCW, FNCLEX and FFREE.
//! The compares (FCOM FUCOM FICOM FTST FXAM), FPREM/FPREM1 and FNINIT define all four, and
//! FXRSTOR loads them ([`effect`] adds that, and that FXSAVE reads them, which iced-x86's
//! tables leave out). FCOMI/FUCOMI set EFLAGS, defined. Undefined condition codes are masked
//! in FSW at the end; an FNSTSW or FXSAVE that would store them is not generated (rule 1).
//!
//! # Implementation-specific results
//!
//! Two kinds of result differ between CPUs that both follow the SDM, so neither may reach a
//! compared field (the recorded expectations are replayed on Intel and AMD hosts alike):
//!
//! - RCPPS RCPSS RSQRTPS RSQRTSS return an approximation whose bits the SDM does not define
//!   (only a relative error of at most 1.5 * 2^-12): Intel and AMD tables differ. Their
//!   destination XMM register is undefined until fully rewritten (the whole register, although
//!   the scalar forms keep the upper lanes: the simple rule costs little).
//! - DPPS with two or more NaN products: which NaN reaches each result lane. AMD writes one
//!   NaN to every selected lane, as the SDM's pseudo-code does; Intel's adder tree propagates
//!   a different NaN per lane (recorded on an AMD EPYC and replayed on an Intel Xeon: seven of
//!   the CI set's 1,000 `sse_float` sequences differed there, and only there). The destination
//!   is tracked as "NaN choice implementation-specific" ([`xmm_nan_bit`]): its non-NaN lanes
//!   are compared exactly, every NaN lane is compared as "a NaN" ([`canonical_nans`]), and, as
//!   for an undefined register, nothing reads it until it is rewritten (rule 1), so the choice
//!   never spreads. DPPD's two products go through one addition: no choice to make.
//!
//! # The FXSAVE image
//!
//! The final state compares the whole x87/SSE state as the FXSAVE image holds it: FCW, FSW
//! (less undefined condition codes), the abridged tag word, ST0-7 (80 bits each, empty
//! registers included: their contents survive pops and FNINIT), MXCSR and XMM0-15. Not
//! compared ([`FXSAVE_UNDEFINED`], for the state and for every image an FXSAVE stores in the
//! data region):
//!
//! - FOP, FIP/FCS and FDP/FDS (bytes 6-23): the x87 last-instruction opcode and pointers. They
//!   describe the last non-control x87 instruction rather than compute a result; emulation
//!   does not keep them (QEMU neither), AMD saves them only while an exception is pending
//!   (FSW.ES), and newer Intel CPUs deprecate FCS/FDS (CPUID.7.EBX[13]) and save zeros.
//! - Byte 5 and the 6 bytes above each 80-bit register (reserved: AMD writes zeros, the SDM
//!   promises nothing), and bytes 416-463 (reserved; AMD leaves them alone). Bytes 464-511 are
//!   "available to software": the SDM says the processor does not write them, so they are
//!   compared.
//! - MXCSR_MASK (bytes 28-31): the CPU's mask of supported MXCSR bits, not state: 0xffff on
//!   Intel, 0x2ffff on this AMD host (bit 17, AMD's misaligned-SSE mode bit MM).
//!
//! # Intel and AMD
//!
//! At CPL3 the PVM backend runs sequences natively on the host CPU, an AMD Zen 4 on some days
//! and an Intel Xeon on others, so the oracle is whichever vendor's CPU the run is on, and the
//! recorded expectations must hold on both. Where Intel and AMD differ architecturally the generator stays
//! on common ground: MXCSR bit 17 (MM, AMD only) is never set, so a misaligned 16-byte SSE
//! operand is a #GP on both, and FXRSTOR/LDMXCSR are tested with reserved bits 18-31 only;
//! no SSE4a (EXTRQ INSERTQ MOVNTSS/SD) or 3DNow!; the x87 transcendentals (FSIN FCOS FSINCOS
//! FPTAN FPATAN F2XM1 FYL2X FYL2XP1) are not generated, their last-bit accuracy being each
//! implementation's own. The rest of x87 (including FPREM, FSCALE, FXTRACT, FRNDINT, FSQRT,
//! unsupported 80-bit encodings raising #IA, denormals) and SSE through SSE4.2 (NaN
//! propagation, MIN/MAX operand order, DAZ/FTZ, integer indefinite) is defined identically
//! by both vendors' manuals and compared exactly.
//!
//! # KVM/PVM artefacts
//!
//! None is excluded: at CPL3 the PVM backend runs the sequence natively on the host CPU; the
//! only host involvement is delivering an exception through the harness's IDT, which the
//! harness undoes from the exception frame, and moving the x87/SSE state in and out (XSAVE
//! images, checked by the harness tests to carry every compared field).

use std::ops::Range;

use iced_x86::{
    Code, Instruction, InstructionInfoFactory, Mnemonic, OpAccess, OpKind, Register, RflagsBits,
};
use tandem_target_x86_64::flags::{bit, undefined_flags_of};
use tandem_tcg::Width;

/// The arithmetic flags: the only RFLAGS bits ever masked.
pub const ARITH: u64 = bit::ARITH;
/// x87 condition code C0 as an effect bit (above every RFLAGS bit).
pub const C0: u64 = 1 << 32;
/// x87 condition code C1.
pub const C1: u64 = 1 << 33;
/// x87 condition code C2.
pub const C2: u64 = 1 << 34;
/// x87 condition code C3.
pub const C3: u64 = 1 << 35;
/// The four condition codes.
pub const FPU_CC: u64 = C0 | C1 | C2 | C3;
/// First effect bit of the XMM registers (XMMi is bit `XMM_SHIFT + i`).
const XMM_SHIFT: u32 = 48;
/// Every XMM register.
pub const XMM_ALL: u64 = 0xffff << XMM_SHIFT;
/// First effect bit of the XMM registers whose NaN lanes are implementation-specific (bits
/// 16-31: RFLAGS bits the generator never writes).
const XMM_NAN_SHIFT: u32 = 16;
/// Every XMM register's NaN-choice bit.
pub const XMM_NAN_ALL: u64 = 0xffff << XMM_NAN_SHIFT;
/// Everything the data-flow pass tracks.
pub const TRACKED: u64 = ARITH | FPU_CC | XMM_ALL | XMM_NAN_ALL;

/// The effect bit of XMMi.
pub const fn xmm_bit(i: usize) -> u64 {
    1 << (XMM_SHIFT as usize + (i & 15))
}

/// The effect bit saying that which NaN XMMi's NaN lanes hold is the implementation's.
pub const fn xmm_nan_bit(i: usize) -> u64 {
    1 << (XMM_NAN_SHIFT as usize + (i & 15))
}

/// What a NaN lane of a register whose NaN choice is implementation-specific compares as: the
/// x86 "real indefinite" QNaN.
pub const CANONICAL_NAN32: u32 = 0xffc0_0000;

/// `x` with every single-precision NaN lane replaced by [`CANONICAL_NAN32`].
pub fn canonical_nans(x: u128) -> u128 {
    (0..4).fold(0, |acc, lane| {
        let v = (x >> (32 * lane)) as u32;
        let v = if f32::from_bits(v).is_nan() {
            CANONICAL_NAN32
        } else {
            v
        };
        acc | (u128::from(v) << (32 * lane))
    })
}

/// The NaN-choice bits of the XMM registers in `xmm` (a set of [`xmm_bit`]s).
const fn nan_bits_of(xmm: u64) -> u64 {
    ((xmm & XMM_ALL) >> XMM_SHIFT) << XMM_NAN_SHIFT
}

/// The FSW bits of the condition codes in `mask` (C0 bit 8, C1 bit 9, C2 bit 10, C3 bit 14).
pub fn fsw_bits(mask: u64) -> u16 {
    [(C0, 1 << 8), (C1, 1 << 9), (C2, 1 << 10), (C3, 1 << 14)]
        .iter()
        .filter(|(c, _)| mask & c != 0)
        .fold(0, |acc, (_, f)| acc | f)
}

/// Byte ranges of an FXSAVE image that are not compared (see the module doc): reserved byte 5,
/// FOP/FIP/FCS/FDP/FDS, MXCSR_MASK, the reserved bytes above each ST register, and 416-463.
pub const FXSAVE_UNDEFINED: [Range<usize>; 11] = [
    5..24,
    28..32,
    42..48,
    58..64,
    74..80,
    90..96,
    106..112,
    122..128,
    138..144,
    154..160,
    416..464,
];

/// The address ranges an instruction leaves undefined in memory: the uncompared bytes of the
/// image an FXSAVE stores; `base` gives a base register's (constant) value.
pub fn undefined_memory(
    insn: &Instruction,
    base: impl Fn(Register) -> Option<u64>,
) -> Vec<Range<u64>> {
    if !matches!(insn.code(), Code::Fxsave_m512byte | Code::Fxsave64_m512byte) {
        return Vec::new();
    }
    let Some(b) = base(insn.memory_base()) else {
        return Vec::new();
    };
    let at = b.wrapping_add(insn.memory_displacement64());
    FXSAVE_UNDEFINED
        .iter()
        .map(|r| at + r.start as u64..at + r.end as u64)
        .collect()
}

/// What one instruction does to the tracked state (RFLAGS bits, [`FPU_CC`], [`XMM_ALL`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Effect {
    /// What it reads.
    pub read: u64,
    /// What it writes (including what it leaves undefined).
    pub written: u64,
    /// What it leaves undefined.
    pub undefined: u64,
}

/// iced-x86's RflagsBits as effect bits (arithmetic flags, DF, and the x87 condition codes;
/// the generator writes no other flag).
fn rflags(bits: u32) -> u64 {
    let map = [
        (RflagsBits::OF, bit::OF),
        (RflagsBits::SF, bit::SF),
        (RflagsBits::ZF, bit::ZF),
        (RflagsBits::AF, bit::AF),
        (RflagsBits::CF, bit::CF),
        (RflagsBits::PF, bit::PF),
        (RflagsBits::DF, bit::DF),
        (RflagsBits::C0, C0),
        (RflagsBits::C1, C1),
        (RflagsBits::C2, C2),
        (RflagsBits::C3, C3),
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

/// The XMM registers `insn` reads and those it writes whole, as effect bits (from iced-x86's
/// register usage, implicit operands included: XMM0 of BLENDV* and PCMP*STRM).
fn xmm_usage(insn: &Instruction) -> (u64, u64) {
    let mut factory = InstructionInfoFactory::new();
    let (mut read, mut written) = (0, 0);
    for u in factory.info(insn).used_registers() {
        let r = u.register();
        if !r.is_xmm() {
            continue;
        }
        let b = xmm_bit(r.number());
        match u.access() {
            OpAccess::Read | OpAccess::CondRead => read |= b,
            OpAccess::ReadWrite | OpAccess::ReadCondWrite => {
                read |= b;
                written |= b;
            }
            OpAccess::Write => written |= b,
            _ => {}
        }
    }
    (read, written)
}

/// The effect of `insn` on flags, condition codes and XMM registers; `cl` is CL's value before
/// it when the generator knows it (it always does for the CL-count shifts it emits).
pub fn effect(insn: &Instruction, cl: Option<u8>) -> Effect {
    let mut e = Effect {
        read: rflags(insn.rflags_read()),
        written: rflags(insn.rflags_modified()),
        undefined: rflags(insn.rflags_undefined()),
    };
    let (xr, xw) = xmm_usage(insn);
    // Reading or rewriting a register reads or rewrites its NaN choice too.
    e.read |= xr | nan_bits_of(xr);
    e.written |= xw | nan_bits_of(xw);
    let m = insn.mnemonic();
    match m {
        // FXSAVE stores FSW and every XMM register; FXRSTOR loads them all (iced-x86 lists
        // neither).
        Mnemonic::Fxsave | Mnemonic::Fxsave64 => e.read |= FPU_CC | XMM_ALL | XMM_NAN_ALL,
        Mnemonic::Fxrstor | Mnemonic::Fxrstor64 => e.written |= FPU_CC | XMM_ALL | XMM_NAN_ALL,
        // Approximations: the destination's bits are the implementation's.
        Mnemonic::Rcpps | Mnemonic::Rcpss | Mnemonic::Rsqrtps | Mnemonic::Rsqrtss => {
            e.undefined |= xmm_bit(insn.op0_register().number());
            e.written |= xmm_bit(insn.op0_register().number());
        }
        // Which NaN each lane gets is the implementation's (see the module doc).
        Mnemonic::Dpps => e.undefined |= xmm_nan_bit(insn.op0_register().number()),
        _ => {}
    }
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
    state
        .into_iter()
        .map(|s| s.unwrap_or(0) & TRACKED)
        .collect()
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
    fn x87_and_xmm_effects() {
        let e = effect(&insn(|a| a.fadd_2(st0, st1)), None);
        assert_eq!(e.undefined & FPU_CC, C0 | C2 | C3);
        let e = effect(&insn(|a| a.ftst()), None);
        assert_eq!((e.written & FPU_CC, e.undefined & FPU_CC), (FPU_CC, 0));
        let e = effect(&insn(|a| a.fnstsw(ax)), None);
        assert_eq!(e.read & FPU_CC, FPU_CC);
        let e = effect(&insn(|a| a.fxsave(ptr(rbx))), None);
        assert_eq!(e.read, FPU_CC | XMM_ALL | XMM_NAN_ALL);
        let e = effect(&insn(|a| a.fxrstor64(ptr(rbx))), None);
        assert_eq!(
            (e.written, e.undefined),
            (FPU_CC | XMM_ALL | XMM_NAN_ALL, 0)
        );
        let e = effect(&insn(|a| a.rcpss(xmm3, xmm4)), None);
        assert_eq!(e.undefined, xmm_bit(3));
        assert_eq!(
            e.read,
            xmm_bit(3) | xmm_bit(4) | xmm_nan_bit(3) | xmm_nan_bit(4)
        );
        let e = effect(&insn(|a| a.movaps(xmm3, xmm12)), None);
        assert_eq!(
            (e.read, e.written),
            (xmm_bit(12) | xmm_nan_bit(12), xmm_bit(3) | xmm_nan_bit(3))
        );
        let e = effect(&insn(|a| a.blendvps(xmm1, xmm2)), None);
        assert_eq!(e.read & XMM_ALL, xmm_bit(0) | xmm_bit(1) | xmm_bit(2));
        let e = effect(&insn(|a| a.dpps(xmm5, xmm6, 0xff)), None);
        assert_eq!(e.undefined, xmm_nan_bit(5));
        assert_eq!(e.written & xmm_nan_bit(5), xmm_nan_bit(5));
        assert_eq!(
            canonical_nans(0x3f80_0000_7fc0_0001_ffff_fff0_0000_0001),
            0x3f80_0000_ffc0_0000_ffc0_0000_0000_0001
        );
        assert_eq!(fsw_bits(C0 | C3), 0x4100);
    }

    #[test]
    fn fxsave_images_are_masked_where_they_land() {
        let i = insn(|a| a.fxsave(ptr(rbx) + 0x10));
        let r = undefined_memory(&i, |r| (r == Register::RBX).then_some(0x50_0000));
        assert_eq!(r.first(), Some(&(0x50_0015..0x50_0028)));
        assert_eq!(r.last(), Some(&(0x50_01b0..0x50_01e0)));
        let i = insn(|a| a.fxrstor(ptr(rbx)));
        assert!(undefined_memory(&i, |_| Some(0)).is_empty());
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
