//! The translator's context block: the CPU state plus what the JIT keeps beside it.
//!
//! Generated code and the interpreter address fields of [`X86Context`] by byte offset (tcg's
//! ABI); the constants below are those offsets. Lazy condition codes live here: after a
//! flag-setting instruction the arithmetic flags in `cpu.rflags` are stale and `cc_*` say how
//! to compute them (see [`crate::flags`]); [`X86Context::sync_flags`] folds them back before the
//! state leaves the engine.

use std::mem::offset_of;

use crate::cpu_state::CpuState;
use crate::flags::{eflags_from_cc, CC_EFLAGS};

/// The context block of one vCPU under the JIT.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct X86Context {
    /// Architectural state.
    pub cpu: CpuState,
    /// How the arithmetic flags are to be computed ([`crate::flags`]); CC_EFLAGS means
    /// `cpu.rflags` holds them.
    pub cc_op: u64,
    /// The result of the last flag-setting operation.
    pub cc_dst: u64,
    /// Its first operand.
    pub cc_src: u64,
    /// Its second operand (or the carry-in / shifted-out value, per `cc_op`).
    pub cc_src2: u64,
    /// Exception a helper raised: 0 none, else vector + 1.
    pub helper_vector: u64,
    /// Its error code, or u64::MAX for none.
    pub helper_error: u64,
    /// The engine's per-vCPU data, for helpers that reach beyond the context (guest memory):
    /// an address the engine sets before running compiled code; 0 otherwise.
    pub engine: u64,
    /// The address of the fast TLB compiled code probes for the current privilege (tcg's
    /// `jit::fast_tlb`), set by the engine before running compiled code; 0 otherwise.
    pub fast_tlb: u64,
    /// Set by compiled code leaving a chain: the address of the last block's chain slots.
    pub chain_last: u64,
    /// Direct hops between compiled blocks so far (statistics).
    pub chain_hops: u64,
    /// IA32_MTRR_DEF_TYPE (MSR 0x2ff); kept here, not in `CpuState`, because only the JIT's
    /// RDMSR/WRMSR model needs it (KVM keeps its own). Memory types have no effect on emulation.
    pub mtrr_def_type: u64,
    /// The 11 fixed-range MTRRs, in MSR order: 0x250, 0x258, 0x259, 0x268..=0x26f.
    pub mtrr_fixed: [u64; 11],
    /// The variable-range MTRRs: PHYSBASEn at 2n, PHYSMASKn at 2n + 1 (MSRs 0x200..=0x20f).
    pub mtrr_var: [u64; 16],
    /// IA32_TSC_ADJUST (MSR 0x3b), JIT only like the MTRRs: stored, not applied to the clock
    /// (the same wart as IA32_TSC writes).
    pub tsc_adjust: u64,
    /// Guest memory operands of x87/MMX/SSE instructions, staged here by generated code for
    /// the host-executed instruction to read or write (see [`crate::fpu`]); 16-aligned
    /// because SSE memory operands must be.
    pub fp_scratch: FpScratch,
    /// Arithmetic flags going into and coming out of a host-executed instruction.
    pub fp_flags: u64,
}

/// The staging area for one x87/MMX/SSE memory operand (at most 16 bytes; 10 for m80).
#[repr(C, align(16))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FpScratch(pub [u8; 32]);

/// Byte offset of general register `i` (encoding order).
pub const fn gpr_offset(i: usize) -> usize {
    offset_of!(X86Context, cpu.gpr) + 8 * i
}

/// Byte offset of RIP.
pub const RIP: usize = offset_of!(X86Context, cpu.rip);
/// Byte offset of RFLAGS.
pub const RFLAGS: usize = offset_of!(X86Context, cpu.rflags);
/// Byte offset of `cc_op`.
pub const CC_OP: usize = offset_of!(X86Context, cc_op);
/// Byte offset of `cc_dst`.
pub const CC_DST: usize = offset_of!(X86Context, cc_dst);
/// Byte offset of `cc_src`.
pub const CC_SRC: usize = offset_of!(X86Context, cc_src);
/// Byte offset of `cc_src2`.
pub const CC_SRC2: usize = offset_of!(X86Context, cc_src2);
/// Byte offset of the helper trap record's vector.
pub const HELPER_VECTOR: usize = offset_of!(X86Context, helper_vector);
/// Context ranges compiled code may keep in registers within a block: the general registers,
/// RIP and RFLAGS, and the lazy-flag record.
pub const JIT_CACHEABLE: [(usize, usize); 2] = [
    (
        offset_of!(X86Context, cpu.gpr),
        offset_of!(X86Context, cpu.rflags) + 8,
    ),
    (CC_OP, CC_SRC2 + 8),
];

/// Byte offset of `chain_hops`.
pub const CHAIN_HOPS: usize = offset_of!(X86Context, chain_hops);
/// Byte offset of `chain_last`.
pub const CHAIN_LAST: usize = offset_of!(X86Context, chain_last);
/// Byte offset of the fast-TLB pointer.
pub const FAST_TLB: usize = offset_of!(X86Context, fast_tlb);
/// Byte offset of the helper trap record's error code.
pub const HELPER_ERROR: usize = offset_of!(X86Context, helper_error);

/// Byte offset of CR0.
pub const CR0: usize = offset_of!(X86Context, cpu.cr0);
/// Byte offset of CR4.
pub const CR4: usize = offset_of!(X86Context, cpu.cr4);
/// Byte offset of the x87/MMX/SSE memory-operand staging area.
pub const FP_SCRATCH: usize = offset_of!(X86Context, fp_scratch);
/// Byte offset of the host-executed instruction's flags word.
pub const FP_FLAGS: usize = offset_of!(X86Context, fp_flags);
/// Byte offset of the FXSAVE image (x87, MMX, SSE registers and MXCSR).
pub const FX: usize = offset_of!(X86Context, cpu.fx);

/// Byte offset of segment `i`'s base (encoding order: es, cs, ss, ds, fs, gs).
pub const fn seg_base_offset(i: usize) -> usize {
    offset_of!(X86Context, cpu.seg)
        + i * std::mem::size_of::<crate::Segment>()
        + offset_of!(crate::Segment, base)
}

impl X86Context {
    /// A context holding `cpu`, flags in RFLAGS.
    pub fn new(cpu: CpuState) -> Self {
        Self {
            cpu,
            cc_op: CC_EFLAGS,
            cc_dst: 0,
            cc_src: 0,
            cc_src2: 0,
            helper_vector: 0,
            helper_error: u64::MAX,
            engine: 0,
            fast_tlb: 0,
            chain_last: 0,
            chain_hops: 0,
            mtrr_def_type: 0,
            mtrr_fixed: [0; 11],
            mtrr_var: [0; 16],
            tsc_adjust: 0,
            fp_scratch: FpScratch::default(),
            fp_flags: 0,
        }
    }

    /// Folds lazily kept flags into `cpu.rflags`.
    pub fn sync_flags(&mut self) {
        self.cpu.rflags = eflags_from_cc(
            self.cc_op,
            self.cc_dst,
            self.cc_src,
            self.cc_src2,
            self.cpu.rflags,
        );
        self.cc_op = CC_EFLAGS;
    }

    /// The context as bytes, for the interpreter's `load_state`/`store_state`.
    ///
    /// Generated code only names integer fields (the offsets above), never the `bool` fields
    /// of `CpuState`, so no write through this view can make them invalid.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: X86Context is repr(C) and lives as long as the borrow; the slice covers
        // exactly its bytes. Writers only store integers into integer fields (see above).
        unsafe {
            std::slice::from_raw_parts_mut(
                (self as *mut Self).cast::<u8>(),
                std::mem::size_of::<Self>(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_address_the_named_fields() {
        let mut c = X86Context::new(CpuState::default());
        c.cpu.gpr[3] = 0x1122_3344_5566_7788;
        c.cpu.seg[4].base = 0xabcd;
        c.cpu.rip = 0x42;
        let b = c.as_bytes_mut();
        let at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        assert_eq!(at(b, gpr_offset(3)), 0x1122_3344_5566_7788);
        assert_eq!(at(b, seg_base_offset(4)), 0xabcd);
        assert_eq!(at(b, RIP), 0x42);
        assert_eq!(at(b, CC_OP), CC_EFLAGS);
    }
}
