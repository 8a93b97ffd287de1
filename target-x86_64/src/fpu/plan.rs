//! What the translator must know about one x87/MMX/SSE instruction before it runs it on the
//! host: which register file it touches, its memory operand, the flags it reads or writes, and
//! the checks that come first (SDM Vol. 1 §11.6 / §12.? exception tables, Vol. 3A §2.5 for the
//! CR0.EM/TS and CR4.OSFXSR rules).

use iced_x86::{
    CpuidFeature, EncodingKind, Instruction, InstructionInfoFactory, Mnemonic, OpAccess, OpKind,
    Register, RflagsBits,
};

/// The register file an instruction belongs to, for the CR0/CR4 checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// x87: #NM when CR0.EM or CR0.TS.
    X87,
    /// MMX: #UD when CR0.EM, #NM when CR0.TS.
    Mmx,
    /// SSE..SSE4.2 (XMM registers or MXCSR): #UD when CR0.EM or !CR4.OSFXSR, #NM when CR0.TS.
    Sse,
    /// General registers only (CRC32): no FPU checks.
    Integer,
}

/// The instruction's memory operand, staged through the context's scratch area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemOperand {
    /// Bytes accessed: 1, 2, 4, 8, 10 or 16.
    pub size: usize,
    /// The instruction reads it (staged in before the host runs the instruction).
    pub read: bool,
    /// The instruction writes it (copied out after).
    pub write: bool,
    /// A 16-byte operand that must be 16-aligned (#GP(0) otherwise): legacy SSE m128 forms
    /// (CVTPD2PI's too, though it writes an MMX register) other than the unaligned moves and
    /// the SSE4.2 string compares.
    pub aligned: bool,
    /// The operand is the implicit `[rDI]` of MASKMOVQ/MASKMOVDQU, not a ModRM operand.
    pub implicit_rdi: bool,
}

/// Everything the translator and the stub builder need about one instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Which CR0/CR4 checks apply.
    pub family: Family,
    /// The instruction touches x87 or MMX registers (or the x87 status): the stub restores and
    /// saves the whole FXSAVE image around it instead of just the XMM registers it names.
    pub whole_image: bool,
    /// The memory operand, if any.
    pub mem: Option<MemOperand>,
    /// It reads arithmetic flags (FCMOVcc).
    pub reads_flags: bool,
    /// It writes arithmetic flags (COMISS, PTEST, PCMPxSTRx, FCOMI, ...).
    pub writes_flags: bool,
    /// XMM registers it uses: bit n = XMMn.
    pub xmm_used: u16,
    /// XMM registers it writes.
    pub xmm_written: u16,
}

/// iced's OF, SF, ZF, AF, CF, PF (its other "flags" are the x87 condition codes).
const ARITH: u32 = RflagsBits::OF
    | RflagsBits::SF
    | RflagsBits::ZF
    | RflagsBits::AF
    | RflagsBits::CF
    | RflagsBits::PF;

/// The floating-point and vector features whose instructions run on the host this way.
fn floating_point(f: CpuidFeature) -> bool {
    use CpuidFeature as F;
    matches!(
        f,
        F::FPU
            | F::FPU287
            | F::FPU387
            | F::MMX
            | F::SSE
            | F::SSE2
            | F::SSE3
            | F::SSSE3
            | F::SSE4_1
            | F::SSE4_2
    )
}

/// Features an instruction may need besides those: FCMOVcc/FCOMI's CMOV, and the baseline.
fn also_offered(f: CpuidFeature) -> bool {
    matches!(
        f,
        CpuidFeature::CMOV | CpuidFeature::INTEL8086 | CpuidFeature::INTEL386
    )
}

/// Instructions of those features that are not executed on the host: state save/restore and
/// control (run by [`crate::system`]), cache/ordering hints and non-temporal GPR stores (plain
/// semantics in [`super::hints`]), and the ones the CPU model does not offer.
fn excluded(m: Mnemonic) -> bool {
    super::state_instruction(m) || super::hints::handles(m) || matches!(m, Mnemonic::Popcnt)
}

/// The SSE levels above x86-64's baseline (x87, CMOV, MMX, FXSR, SSE, SSE2 are in every
/// x86-64 CPU) that the host CPU has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLevels {
    /// SSE3.
    pub sse3: bool,
    /// SSSE3.
    pub ssse3: bool,
    /// SSE4.1.
    pub sse4_1: bool,
    /// SSE4.2.
    pub sse4_2: bool,
}

impl HostLevels {
    /// This host's.
    pub fn detect() -> Self {
        Self {
            sse3: std::arch::is_x86_feature_detected!("sse3"),
            ssse3: std::arch::is_x86_feature_detected!("ssse3"),
            sse4_1: std::arch::is_x86_feature_detected!("sse4.1"),
            sse4_2: std::arch::is_x86_feature_detected!("sse4.2"),
        }
    }

    /// Whether the host can execute instructions of feature `f`.
    fn has(self, f: CpuidFeature) -> bool {
        match f {
            CpuidFeature::SSE3 => self.sse3,
            CpuidFeature::SSSE3 => self.ssse3,
            CpuidFeature::SSE4_1 => self.sse4_1,
            CpuidFeature::SSE4_2 => self.sse4_2,
            _ => true,
        }
    }
}

/// Whether `i` has a plan at all: a legacy-encoded x87/MMX/SSE instruction the host can run.
/// One the host lacks has none, so it raises #UD in the guest (CPUID does not offer it
/// either) rather than SIGILL in tandem.
pub fn is_host_executed(i: &Instruction) -> bool {
    is_executable_on(i, HostLevels::detect())
}

/// [`is_host_executed`] on a host with `host`'s SSE levels.
fn is_executable_on(i: &Instruction, host: HostLevels) -> bool {
    if i.encoding() != EncodingKind::Legacy || excluded(i.mnemonic()) {
        return false;
    }
    let features = i.cpuid_features();
    features.iter().any(|f| floating_point(*f))
        && features
            .iter()
            .all(|f| (floating_point(*f) || also_offered(*f)) && host.has(*f))
}

/// True for SSE m128 forms that take unaligned operands.
fn unaligned_ok(m: Mnemonic) -> bool {
    use Mnemonic as M;
    matches!(
        m,
        M::Movups
            | M::Movupd
            | M::Movdqu
            | M::Lddqu
            | M::Pcmpestri
            | M::Pcmpestrm
            | M::Pcmpistri
            | M::Pcmpistrm
            | M::Pcmpestri64
            | M::Pcmpestrm64
            | M::Maskmovdqu
    )
}

fn is_read(a: OpAccess) -> bool {
    matches!(
        a,
        OpAccess::Read | OpAccess::CondRead | OpAccess::ReadWrite | OpAccess::ReadCondWrite
    )
}

fn is_write(a: OpAccess) -> bool {
    matches!(
        a,
        OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
    )
}

/// The plan for `i`, or `None` if it is not host-executed or its memory operand is of a size
/// the staging area does not take.
pub fn plan(i: &Instruction) -> Option<Plan> {
    if !is_host_executed(i) {
        return None;
    }
    let mut factory = InstructionInfoFactory::new();
    let info = factory.info(i);
    let mut xmm_used = 0u16;
    let mut xmm_written = 0u16;
    let mut x87_or_mmx = false;
    let mut mmx = false;
    for r in info.used_registers() {
        let reg = r.register();
        if reg.is_xmm() {
            let bit = 1u16 << (reg.number() & 15);
            xmm_used |= bit;
            if is_write(r.access()) {
                xmm_written |= bit;
            }
        } else if reg.is_mm() {
            x87_or_mmx = true;
            mmx = true;
        } else if reg.is_st() {
            x87_or_mmx = true;
        }
    }
    let features = i.cpuid_features();
    let is_x87 = features.iter().any(|f| {
        matches!(
            f,
            CpuidFeature::FPU | CpuidFeature::FPU287 | CpuidFeature::FPU387
        )
    });
    let family = if xmm_used != 0 || i.mnemonic() == Mnemonic::Ldmxcsr {
        Family::Sse
    } else if mmx {
        Family::Mmx
    } else if is_x87 {
        Family::X87
    } else if features.contains(&CpuidFeature::MMX) {
        Family::Mmx
    } else {
        Family::Integer
    };
    let mut mem = None;
    for n in 0..i.op_count() {
        if i.op_kind(n) == OpKind::Memory {
            let access = info.op_access(n);
            let size = i.memory_size().size();
            mem = Some(MemOperand {
                size,
                read: is_read(access),
                write: is_write(access),
                aligned: size == 16 && !unaligned_ok(i.mnemonic()),
                implicit_rdi: false,
            });
        }
    }
    if matches!(i.mnemonic(), Mnemonic::Maskmovq | Mnemonic::Maskmovdqu) {
        let size = if i.mnemonic() == Mnemonic::Maskmovq {
            8
        } else {
            16
        };
        mem = Some(MemOperand {
            size,
            read: true,
            write: true,
            aligned: false,
            implicit_rdi: true,
        });
    }
    if let Some(m) = mem {
        if !matches!(m.size, 1 | 2 | 4 | 8 | 10 | 16) {
            return None;
        }
    }
    Some(Plan {
        family,
        whole_image: x87_or_mmx || is_x87 || family == Family::Mmx,
        mem,
        reads_flags: i.rflags_read() & ARITH != 0,
        writes_flags: i.rflags_modified() & ARITH != 0,
        xmm_used,
        xmm_written,
    })
}

/// General registers the host instruction itself uses (not the memory operand's address
/// registers, which the translator resolves): full 64-bit registers, with whether each is
/// written.
pub fn gprs_used(i: &Instruction) -> Vec<(Register, bool)> {
    let mut factory = InstructionInfoFactory::new();
    let info = factory.info(i);
    let mut out: Vec<(Register, bool)> = Vec::new();
    for r in info.used_registers() {
        let reg = r.register();
        if !reg.is_gpr() {
            continue;
        }
        let full = reg.full_register();
        let w = is_write(r.access());
        match out.iter_mut().find(|(g, _)| *g == full) {
            Some(e) => e.1 |= w,
            None => out.push((full, w)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Instruction {
        iced_x86::Decoder::new(64, bytes, 0).decode()
    }

    #[test]
    fn forms_the_host_lacks_are_not_run_on_it() {
        let all = HostLevels {
            sse3: true,
            ssse3: true,
            sse4_1: true,
            sse4_2: true,
        };
        let no_sse4_2 = HostLevels {
            sse4_2: false,
            ..all
        };
        let pcmpistri = decode(&[0x66, 0x0f, 0x3a, 0x63, 0xca, 0x00]);
        let pshufb = decode(&[0x66, 0x0f, 0x38, 0x00, 0xc1]);
        let addps = decode(&[0x0f, 0x58, 0xc1]);
        assert!(is_executable_on(&pcmpistri, all));
        assert!(!is_executable_on(&pcmpistri, no_sse4_2));
        assert!(is_executable_on(&pshufb, no_sse4_2));
        assert!(!is_executable_on(
            &pshufb,
            HostLevels {
                ssse3: false,
                ..all
            }
        ));
        assert!(is_executable_on(
            &addps,
            HostLevels {
                sse3: false,
                ssse3: false,
                sse4_1: false,
                sse4_2: false
            }
        ));
    }
}
