//! How a run ended, the snippet's own final state, and rebuilding that state from the
//! exception frame a stub left on the handler stack.

use tandem_hw::loader::boot_setup::{
    code64_segment, data_segment, user_code64_segment, user_data_segment,
};
use tandem_target_x86_64::cpu_state::{reg, sreg};
use tandem_target_x86_64::{CpuState, Segment};

use super::error::HarnessError;
use super::layout::HANDLER_STACK_TOP;

/// RFLAGS.RF (resume flag).
const RFLAGS_RF: u64 = 1 << 16;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnippetEnd {
    /// Execution reached the byte after the code.
    Completed,
    /// The snippet raised an exception (or executed `int3`/`int n`); the state is the one the
    /// CPU saved: RIP at the faulting instruction for faults, after it for traps.
    Exception {
        /// The vector (0 #DE, 6 #UD, 13 #GP, 14 #PF, ...).
        vector: u8,
        /// The error code, for the vectors that push one.
        error_code: Option<u32>,
        /// CR2, for a page fault: the linear address that faulted.
        cr2: Option<u64>,
    },
    /// `hlt` at CPL0 (kernel64 only; at CPL3 it raises #GP).
    Halted,
    /// The time limit ran out; the state is wherever the snippet was.
    Timeout,
    /// A triple fault: exception delivery itself failed (a kernel64 snippet broke the
    /// harness's tables or stack).
    Shutdown,
}

impl SnippetEnd {
    /// The usual mnemonic of an exception vector.
    pub fn vector_name(vector: u8) -> &'static str {
        const NAMES: [&str; 32] = [
            "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS", "#NP",
            "#SS", "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23",
            "#24", "#25", "#26", "#27", "#HV", "#VC", "#SX", "#31",
        ];
        NAMES.get(usize::from(vector)).copied().unwrap_or("INT")
    }
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnippetResult {
    /// The snippet's own state at its end (never a handler's): RIP, RFLAGS, GPRs, XMM, ...
    pub state: CpuState,
    /// How it ended.
    pub end: SnippetEnd,
    /// The snippet's data regions read back, in the order it gave them.
    pub memory: Vec<(u64, Vec<u8>)>,
}

/// The segment register a selector from an exception frame stands for: the harness's segments
/// are the only ones a snippet can hold in CS and SS.
fn segment_for(selector: u16, fallback: Segment) -> Segment {
    [
        code64_segment(),
        data_segment(),
        user_code64_segment(),
        user_data_segment(),
    ]
    .into_iter()
    .find(|s| s.selector == selector)
    .unwrap_or(Segment {
        selector,
        ..fallback
    })
}

/// Rebuilds the snippet's state after a stub halted: `handler` is the vCPU's state in the stub,
/// `stack` the bytes from its RSP up to [`HANDLER_STACK_TOP`], `initial` the state the snippet
/// started from (for the hidden parts of CS and SS). Returns the state and the end.
pub fn from_frame(
    handler: &CpuState,
    stack: &[u8],
    initial: &CpuState,
) -> Result<(CpuState, SnippetEnd), HarnessError> {
    let q: Vec<u64> = stack
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect();
    // The stub's push, then the CPU's frame: [error code,] RIP, CS, RFLAGS, RSP, SS.
    let (vector, error_code, frame) = match q.as_slice() {
        [v, rest @ ..] if rest.len() == 5 => (*v as u8, None, rest),
        [v, e, rest @ ..] if rest.len() == 5 => (*v as u8, Some(*e as u32), rest),
        _ => {
            return Err(HarnessError::Inconsistent {
                reason: format!(
                    "exception handler stack holds {} bytes below {HANDLER_STACK_TOP:#x}, \
                     not a 48- or 56-byte frame",
                    stack.len()
                ),
                dump: handler.dump(),
            })
        }
    };
    let mut s = *handler;
    s.rip = frame[0];
    s.seg[sreg::CS] = segment_for(frame[1] as u16, initial.seg[sreg::CS]);
    // Delivering a fault sets RF in the saved RFLAGS; the snippet itself never had it.
    s.rflags = frame[2] & !RFLAGS_RF;
    s.gpr[reg::RSP] = frame[3];
    s.seg[sreg::SS] = segment_for(frame[4] as u16, initial.seg[sreg::SS]);
    s.halted = false;
    let end = SnippetEnd::Exception {
        vector,
        error_code,
        cr2: (vector == 14).then_some(handler.cr2),
    };
    Ok((s, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_hw::loader::boot_setup::user_mode_state;

    fn frame(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn frames_with_and_without_error_code() {
        let initial = user_mode_state(0x40_0000, 0x40_0000);
        let mut handler = initial;
        handler.seg[sreg::CS] = code64_segment();
        handler.cr2 = 0x0dea_d000;
        let (s, end) = from_frame(
            &handler,
            &frame(&[14, 6, 0x40_0010, 0x3b, 0x246, 0x3f_fff8, 0x33]),
            &initial,
        )
        .unwrap();
        assert_eq!(
            end,
            SnippetEnd::Exception {
                vector: 14,
                error_code: Some(6),
                cr2: Some(0x0dea_d000)
            }
        );
        assert_eq!(
            (s.rip, s.rflags, s.gpr[reg::RSP]),
            (0x40_0010, 0x246, 0x3f_fff8)
        );
        assert_eq!(s.seg[sreg::CS], user_code64_segment());
        assert_eq!(s.cpl(), 3);
        let (_, end) = from_frame(
            &handler,
            &frame(&[6, 0x40_0010, 0x3b, 0x246, 0x3f_fff8, 0x33]),
            &initial,
        )
        .unwrap();
        assert!(matches!(
            end,
            SnippetEnd::Exception {
                vector: 6,
                error_code: None,
                cr2: None
            }
        ));
        assert!(from_frame(&handler, &frame(&[1, 2, 3]), &initial).is_err());
    }
}
