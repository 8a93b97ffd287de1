//! The harness machine: guest RAM, the harness's tables, one engine and one vCPU, reused from
//! snippet to snippet.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use tandem_accel::{Accelerator, AcceleratorConfig, IrqchipConnection, MachineBus, Vcpu, VcpuExit};
use tandem_hw::loader::boot_setup::{
    code64_segment, data_segment, user_mode_state, write_system_tables, TableOptions,
};
use tandem_softmmu::{
    AddressSpace, AddressSpaceBuilder, GuestRam, MachineRequest, PortBus, RunControl,
};
use tandem_target_x86_64::cpu_state::reg;
use tandem_target_x86_64::CpuState;

use super::error::HarnessError;
use super::idt;
use super::layout::*;
use super::result::{from_frame, SnippetEnd, SnippetResult};
use super::snippet::{Snippet, SnippetMode};
use crate::config::AccelKind;
use crate::machine::create_accelerator;

/// How the end of a completed run was caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndDetection {
    /// An engine instruction breakpoint on the byte after the code.
    Breakpoint,
    /// The `int3` padding after the code (engines without breakpoints).
    Int3Padding,
}

/// A small machine that runs snippets on one engine. Reusing it saves creating the engine
/// each time; memory outside the stack, the code and a snippet's data regions keeps what
/// earlier snippets wrote there. Runs happen on the calling thread; keep one `Harness` on one
/// thread (a timeout kicks the thread that first ran it).
pub struct Harness {
    // Field order is drop order: the vCPU and the engine go before the memory they map.
    vcpu: Box<dyn Vcpu>,
    _accel: Box<dyn Accelerator>,
    memory: Arc<AddressSpace>,
    control: Arc<RunControl>,
    _ram: GuestRam,
    kind: AccelKind,
    has_breakpoints: bool,
    armed_end: Option<u64>,
    last_detection: Option<EndDetection>,
}

impl Harness {
    /// Builds the machine on engine `kind`.
    pub fn new(kind: AccelKind) -> Result<Self, HarnessError> {
        Self::with_tcg(kind, tandem_accel::TcgConfig::default())
    }

    /// Builds the machine on engine `kind`, with JIT options (a forced tier) for `tcg`.
    pub fn with_tcg(kind: AccelKind, tcg: tandem_accel::TcgConfig) -> Result<Self, HarnessError> {
        let ram = GuestRam::anonymous(RAM_SIZE)?;
        let mut map = AddressSpaceBuilder::new();
        map.ram(0, ram.host().clone(), 0, RAM_SIZE)?;
        let memory = Arc::new(map.build());
        write_system_tables(
            &memory,
            &TableOptions {
                user_segments: true,
                rsp0: HANDLER_STACK_TOP,
                ist1: HANDLER_STACK_TOP,
                supervisor_below: HARNESS_END,
                mapped_end: RAM_SIZE,
            },
        )?;
        memory.load(IDT_ADDR, &idt::idt())?;
        memory.load(STUBS_ADDR, &idt::stubs())?;
        let control = Arc::new(RunControl::new());
        // No devices and no interrupt controller: the snippet's world is its CPU and RAM. HLT
        // then always reaches the harness (there is no irqchip to wait in).
        let bus = MachineBus {
            memory: memory.clone(),
            ports: Arc::new(PortBus::new()),
            control: control.clone(),
            irqchip: IrqchipConnection::InEngine,
            cpus: 1,
        };
        let mut accel = create_accelerator(
            kind,
            AcceleratorConfig {
                kernel_irqchip: false,
                tcg,
            },
        )?;
        accel.attach(&bus)?;
        let vcpu = accel.create_vcpu(0, &bus)?;
        Ok(Self {
            vcpu,
            _accel: accel,
            memory,
            control,
            _ram: ram,
            kind,
            has_breakpoints: true,
            armed_end: None,
            last_detection: None,
        })
    }

    /// The engine it runs on.
    pub fn engine(&self) -> AccelKind {
        self.kind
    }

    /// How the end of the code was caught in the last run, if it completed.
    pub fn end_detection(&self) -> Option<EndDetection> {
        self.last_detection
    }

    /// The state a snippet starts from.
    fn initial_state(snippet: &Snippet) -> CpuState {
        let mut s = user_mode_state(CODE_ADDR, STACK_TOP);
        s.idt.base = IDT_ADDR;
        s.idt.limit = (idt::IDT_SIZE - 1) as u16;
        if snippet.mode == SnippetMode::Kernel64 {
            let data = data_segment();
            s.seg = [data, code64_segment(), data, data, data, data];
        }
        s.gpr = snippet.initial.gpr;
        s.rflags = snippet.initial.rflags | 2;
        s.fx = snippet.initial.fx;
        s
    }

    /// Puts the snippet's stack, code and data in memory.
    fn load(&self, snippet: &Snippet) -> Result<(), HarnessError> {
        self.memory.zero(STACK.start, STACK.end - STACK.start)?;
        self.memory.load(CODE_ADDR, &snippet.code)?;
        let end = CODE_ADDR + snippet.code.len() as u64;
        self.memory.load(end, &[0xcc; TRAP_PAD as usize])?;
        for (addr, bytes) in &snippet.memory {
            self.memory.load(*addr, bytes)?;
        }
        Ok(())
    }

    /// Places the end breakpoint where the engine has them; the `int3` padding is always
    /// there as well (PVM accepts the breakpoint but never fires it for CPL3 code).
    fn arm_end(&mut self, end: u64) -> Result<(), HarnessError> {
        if !self.has_breakpoints || self.armed_end == Some(end) {
            return Ok(());
        }
        match self.vcpu.set_breakpoints(&[end]) {
            Ok(()) => self.armed_end = Some(end),
            Err(tandem_accel::AccelError::Unsupported(_)) => self.has_breakpoints = false,
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Runs the vCPU with the snippet's time limit.
    fn run_limited(&mut self, timeout: Duration) -> Result<(VcpuExit, bool), HarnessError> {
        let (tx, rx) = mpsc::channel::<()>();
        let control = self.control.clone();
        let watchdog = std::thread::Builder::new()
            .name("harness-timeout".into())
            .spawn(move || {
                if rx.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout) {
                    control.request(MachineRequest::Quit);
                }
            })
            .map_err(HarnessError::Thread)?;
        let exit = self.vcpu.run();
        drop(tx);
        let _ = watchdog.join();
        let timed_out = self.control.stop_requested();
        self.control.clear();
        Ok((exit?, timed_out))
    }

    /// Runs `snippet` from its initial state to its end.
    pub fn run(&mut self, snippet: &Snippet) -> Result<SnippetResult, HarnessError> {
        snippet.validate()?;
        self.load(snippet)?;
        let initial = Self::initial_state(snippet);
        let code_end = CODE_ADDR + snippet.code.len() as u64;
        self.arm_end(code_end)?;
        self.vcpu.set_state(&initial)?;
        self.last_detection = None;
        let (exit, timed_out) = self.run_limited(snippet.limits.timeout)?;
        let now = self.vcpu.state()?;
        let (state, end) = match exit {
            VcpuExit::Stopped if timed_out => (now, SnippetEnd::Timeout),
            VcpuExit::Halted { .. } if idt::stub_vector(now.rip).is_some() => {
                let rsp = now.gpr[reg::RSP];
                let len = HANDLER_STACK_TOP.checked_sub(rsp).filter(|&l| l <= 64);
                let Some(len) = len else {
                    return Err(HarnessError::Inconsistent {
                        reason: format!("exception handler halted with RSP {rsp:#x}"),
                        dump: now.dump(),
                    });
                };
                let mut stack = vec![0u8; len as usize];
                self.memory.read(rsp, &mut stack)?;
                let (state, end) = from_frame(&now, &stack, &initial)?;
                if end
                    == (SnippetEnd::Exception {
                        vector: 3,
                        error_code: None,
                        cr2: None,
                    })
                    && state.rip == code_end + 1
                {
                    // The padding's int3 is a trap: the CPU saved the address after it.
                    let mut state = state;
                    state.rip = code_end;
                    self.last_detection = Some(EndDetection::Int3Padding);
                    (state, SnippetEnd::Completed)
                } else {
                    (state, end)
                }
            }
            VcpuExit::Halted { .. } => (now, SnippetEnd::Halted),
            VcpuExit::Debug if now.rip == code_end => {
                self.last_detection = Some(EndDetection::Breakpoint);
                (now, SnippetEnd::Completed)
            }
            // The snippet's own #DB (TF, icebp): with engine breakpoints on, it stops the
            // engine instead of reaching the guest's handler.
            VcpuExit::Debug => (
                now,
                SnippetEnd::Exception {
                    vector: 1,
                    error_code: None,
                    cr2: None,
                },
            ),
            VcpuExit::Shutdown => (now, SnippetEnd::Shutdown),
            VcpuExit::Stopped => {
                return Err(HarnessError::Inconsistent {
                    reason: "the engine stopped without a request".into(),
                    dump: now.dump(),
                })
            }
        };
        let mut memory = Vec::with_capacity(snippet.memory.len());
        for (addr, bytes) in &snippet.memory {
            let mut back = vec![0u8; bytes.len()];
            self.memory.read(*addr, &mut back)?;
            memory.push((*addr, back));
        }
        Ok(SnippetResult { state, end, memory })
    }
}
