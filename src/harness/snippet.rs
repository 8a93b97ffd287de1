//! What to run: the code, its mode, its starting registers, its data, and how long it may take.

use std::time::Duration;

use tandem_target_x86_64::cpu_state::reg;
use tandem_target_x86_64::FxsaveArea;

use super::error::HarnessError;
use super::layout::STACK_TOP;

/// The privilege the snippet runs at (both in 64-bit mode on the identity map).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SnippetMode {
    /// CPL3: native speed on PVM; privileged instructions raise #GP.
    #[default]
    User64,
    /// CPL0 on the harness's GDT: correct, but emulated instruction by instruction on PVM.
    Kernel64,
}

impl SnippetMode {
    /// The name `--mode` takes.
    pub fn name(self) -> &'static str {
        match self {
            SnippetMode::User64 => "user64",
            SnippetMode::Kernel64 => "kernel64",
        }
    }
}

/// RFLAGS bits a snippet may start with: CF PF AF ZF SF TF IF DF OF AC ID (bit 1 is always
/// set). IOPL, NT, RF and the virtual-8086 bits would change what the harness itself relies on.
pub const SETTABLE_RFLAGS: u64 = 0x0001
    | 0x0004
    | 0x0010
    | 0x0040
    | 0x0080
    | 0x0100
    | 0x0200
    | 0x0400
    | 0x0800
    | (1 << 18)
    | (1 << 21);

/// The [`CpuState`](tandem_target_x86_64::CpuState) fields a snippet starts with; RIP is
/// always the code's address and the system state (segments, control registers) the
/// harness's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnippetRegs {
    /// General registers in encoding order ([`reg`]); RSP defaults to the harness stack's top.
    pub gpr: [u64; 16],
    /// RFLAGS: only [`SETTABLE_RFLAGS`] bits may be set (bit 1 is implied).
    pub rflags: u64,
    /// x87/SSE state: XMM registers and MXCSR (FXSAVE layout).
    pub fx: FxsaveArea,
}

impl Default for SnippetRegs {
    /// Zero registers, RSP at the stack top, RFLAGS = 0x202 (IF, as a user program has it).
    fn default() -> Self {
        let mut gpr = [0; 16];
        gpr[reg::RSP] = STACK_TOP;
        Self {
            gpr,
            rflags: 0x202,
            fx: FxsaveArea::default(),
        }
    }
}

/// How long a snippet may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time before the run is stopped ([`SnippetEnd::Timeout`](super::SnippetEnd)).
    pub timeout: Duration,
}

impl Default for Limits {
    /// One second.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(1),
        }
    }
}

/// A piece of x86_64 code to run from a known state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snippet {
    /// The instructions, loaded at [`CODE_ADDR`](super::CODE_ADDR) and entered at its first
    /// byte; running past the last byte ends the run ([`SnippetEnd::Completed`](super::SnippetEnd)).
    pub code: Vec<u8>,
    /// The privilege it runs at.
    pub mode: SnippetMode,
    /// Its starting registers.
    pub initial: SnippetRegs,
    /// Data regions `(guest address, bytes)` written before the run and read back after it;
    /// they must lie in [`USER_RAM`](super::USER_RAM), clear of the code and of each other.
    pub memory: Vec<(u64, Vec<u8>)>,
    /// Its limits.
    pub limits: Limits,
}

impl Snippet {
    /// `code` in user mode with the default registers, no data and the default limits.
    pub fn new(code: impl Into<Vec<u8>>) -> Self {
        Self {
            code: code.into(),
            ..Self::default()
        }
    }

    /// Sets general register `index` ([`reg`] order).
    pub fn with_gpr(mut self, index: usize, value: u64) -> Self {
        if let Some(r) = self.initial.gpr.get_mut(index) {
            *r = value;
        }
        self
    }

    /// Adds a data region.
    pub fn with_memory(mut self, addr: u64, bytes: impl Into<Vec<u8>>) -> Self {
        self.memory.push((addr, bytes.into()));
        self
    }

    /// Checks everything the harness must refuse, before anything runs.
    pub fn validate(&self) -> Result<(), HarnessError> {
        super::layout::check(self.code.len(), &self.memory)?;
        let extra = self.initial.rflags & !(SETTABLE_RFLAGS | 2);
        if extra != 0 {
            return Err(HarnessError::BadSnippet(format!(
                "rflags {:#x}: bits {extra:#x} cannot be set (only CF PF AF ZF SF TF IF DF OF AC ID)",
                self.initial.rflags
            )));
        }
        let mxcsr = self.initial.fx.mxcsr();
        if mxcsr > 0xffff {
            return Err(HarnessError::BadSnippet(format!(
                "mxcsr {mxcsr:#x}: bits 16-31 are reserved"
            )));
        }
        if self.limits.timeout.is_zero() {
            return Err(HarnessError::BadSnippet("the timeout is zero".into()));
        }
        Ok(())
    }
}
