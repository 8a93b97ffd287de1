//! Instructions that compute nothing on this CPU model: SSE-era fences, prefetches, CLFLUSH
//! and the non-temporal general-register store MOVNTI; and the hint-NOP space (0F 18-1F) with
//! what CET later gave meaning to (ENDBR32/64, RDSSP, INCSSP): the model offers no CET, and on
//! such CPUs those encodings are NOPs that software relies on (glibc's RDSSP probe expects its
//! register untouched).
//!
//! The emulated memory is the host's, kept coherent by the host, and every guest access is
//! performed in program order by one host thread per vCPU, so the fences order nothing that is
//! not already ordered; prefetches and cache flushes have no architectural effect (CLFLUSH's
//! page-fault check on an unmapped line is not made: a wart).

use iced_x86::{Instruction, Mnemonic};
use tandem_tcg::Builder;

use crate::semantics::operand::{read_op, write_op};
use crate::semantics::translate::{Dc, Flow, Untranslated};

/// True for the mnemonics [`translate`] takes.
pub fn handles(m: Mnemonic) -> bool {
    use Mnemonic as M;
    matches!(
        m,
        M::Lfence
            | M::Mfence
            | M::Sfence
            | M::Prefetchnta
            | M::Prefetcht0
            | M::Prefetcht1
            | M::Prefetcht2
            | M::Clflush
            | M::Movnti
            | M::Reservednop
            | M::Endbr32
            | M::Endbr64
            | M::Rdsspd
            | M::Rdsspq
            | M::Incsspd
            | M::Incsspq
    )
}

/// Runs or emits hint instruction `i`.
pub fn translate<B: Builder>(
    b: &mut B,
    dc: &Dc,
    i: &Instruction,
) -> Result<Result<Flow, Untranslated>, B::Trap> {
    if i.mnemonic() == Mnemonic::Movnti {
        let Some(v) = read_op(b, dc, i, 1)? else {
            return Ok(Err(Untranslated));
        };
        if write_op(b, dc, i, 0, v)?.is_none() {
            return Ok(Err(Untranslated));
        }
    }
    Ok(Ok(Flow::Next))
}
