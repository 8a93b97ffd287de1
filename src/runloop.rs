//! The main loop: vCPU threads run the guest while this thread feeds serial input, ticks the
//! userspace PIT, watches host signals, and acts on machine requests (reset, power-off,
//! debug exit) once every vCPU has stopped. The local APIC timers have a thread of their own
//! ([`apic_timers`]).

mod apic_timers;

use std::sync::mpsc;
use std::time::Duration;

use tandem_softmmu::MachineRequest;

use crate::console::{Console, ConsoleEvent};
use crate::error::Error;
use crate::machine::Machine;
use crate::vcpu_thread::{self, VcpuEnd, VcpuReport};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The guest powered off.
    PowerOff,
    /// The guest wrote `value` to isa-debug-exit.
    DebugExit(u32),
    /// A triple fault, with `-no-reboot`.
    TripleFault,
    /// The guest asked for a reset (keyboard controller, port 0x92), with `-no-reboot`.
    ResetRequested,
    /// The only vCPU halted with interrupts disabled.
    HaltedForever,
    /// The host asked to stop (signal number, or None for Ctrl-A x).
    Quit(Option<i32>),
}

impl RunOutcome {
    /// The process exit status, as QEMU's: `(value << 1) | 1` for a debug exit, 0 otherwise.
    pub fn exit_status(self) -> i32 {
        match self {
            RunOutcome::DebugExit(v) => ((v << 1) | 1) as i32 & 0xff,
            _ => 0,
        }
    }

    /// A line for stderr, or None when the end is unremarkable.
    pub fn message(self) -> Option<String> {
        match self {
            RunOutcome::PowerOff | RunOutcome::DebugExit(_) => None,
            RunOutcome::TripleFault => {
                Some("guest triple fault: machine stopped (-no-reboot)".into())
            }
            RunOutcome::ResetRequested => {
                Some("guest requested a reset: machine stopped (-no-reboot)".into())
            }
            RunOutcome::HaltedForever => {
                Some("guest halted with interrupts disabled: machine stopped".into())
            }
            RunOutcome::Quit(Some(sig)) => Some(format!("terminating on signal {sig}")),
            RunOutcome::Quit(None) => Some("terminated by the user (Ctrl-A x)".into()),
        }
    }
}

/// The longest the main loop sleeps between looks at its duties.
const MAX_POLL: Duration = Duration::from_millis(10);

/// Options of the main loop that the library user chooses.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// React to SIGINT/SIGTERM/SIGHUP (the binary installs the handlers).
    pub watch_signals: bool,
}

/// Runs `machine` until it powers off, exits, or fails.
pub fn run(machine: &mut Machine, options: RunOptions) -> Result<RunOutcome, Error> {
    let mut console = match machine.config.serial {
        crate::SerialConfig::Stdio => Console::stdio(
            machine.config.escape_char,
            machine.console_timestamps.clone(),
        ),
        _ => Console::none(),
    };
    let result = run_with_console(machine, &mut console, options);
    console.restore();
    result
}

fn run_with_console(
    machine: &mut Machine,
    console: &mut Console,
    options: RunOptions,
) -> Result<RunOutcome, Error> {
    let control = machine.pc.control.clone();
    let wakes = machine.halt_wakes();
    let lapics = machine
        .pc
        .userspace_irqchip
        .as_ref()
        .map(|u| u.lapics())
        .unwrap_or_default();
    let _timers = apic_timers::ApicTimers::start(lapics)?;
    loop {
        let (tx, rx) = mpsc::channel::<VcpuReport>();
        let mut threads = Vec::new();
        for (i, vcpu) in std::mem::take(&mut machine.vcpus).into_iter().enumerate() {
            threads.push(vcpu_thread::spawn(
                i as u32,
                vcpu,
                control.clone(),
                wakes.get(i).cloned().flatten(),
                tx.clone(),
            )?);
        }
        drop(tx);
        let mut end: Option<Result<RunOutcome, Error>> = None;
        while control.pending().is_none() {
            let mut timeout = if console.has_pending() {
                Duration::from_millis(1)
            } else {
                MAX_POLL
            };
            if let Some(u) = &machine.pc.userspace_irqchip {
                let mut pit = u.pit.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(deadline) = pit.tick() {
                    let now = pit.now_ns();
                    timeout = timeout.min(Duration::from_nanos(deadline.saturating_sub(now)));
                }
            }
            match console.poll(timeout) {
                ConsoleEvent::Quit => {
                    end = Some(Ok(RunOutcome::Quit(None)));
                    control.request(MachineRequest::Quit);
                }
                ConsoleEvent::Input | ConsoleEvent::Idle => {}
            }
            if console.has_pending() {
                let mut serial = machine.pc.serial.lock().unwrap_or_else(|e| e.into_inner());
                console.deliver(&mut *serial);
            }
            if options.watch_signals {
                if let Some(sig) = crate::signals::received() {
                    end = Some(Ok(RunOutcome::Quit(Some(sig))));
                    control.request(MachineRequest::Quit);
                }
            }
            while let Ok(report) = rx.try_recv() {
                match report.end {
                    VcpuEnd::Stopped => {}
                    VcpuEnd::TripleFault if machine.config.no_reboot => {
                        end = Some(Ok(RunOutcome::TripleFault));
                        control.request(MachineRequest::PowerOff);
                    }
                    VcpuEnd::TripleFault => control.request(MachineRequest::Reset),
                    VcpuEnd::HaltedForever => {
                        end = Some(Ok(RunOutcome::HaltedForever));
                        control.request(MachineRequest::PowerOff);
                    }
                    VcpuEnd::Failed(e) => {
                        end = Some(Err(e.into()));
                        control.request(MachineRequest::Quit);
                    }
                }
            }
        }
        for t in threads {
            match t.join() {
                Ok(vcpu) => machine.vcpus.push(vcpu),
                Err(_) => return Err(Error::Config("a vCPU thread panicked".into())),
            }
        }
        // Reports sent after the loop saw the request still decide the outcome.
        while let Ok(report) = rx.try_recv() {
            if let VcpuEnd::Failed(e) = report.end {
                end.get_or_insert(Err(e.into()));
            }
        }
        if let Some(end) = end {
            return end;
        }
        match control.pending() {
            Some(MachineRequest::Reset) if !machine.config.no_reboot => {
                machine.reset()?;
                control.clear();
            }
            Some(MachineRequest::Reset) => return Ok(RunOutcome::ResetRequested),
            Some(MachineRequest::DebugExit(v)) => return Ok(RunOutcome::DebugExit(v)),
            Some(MachineRequest::PowerOff) | None => return Ok(RunOutcome::PowerOff),
            Some(MachineRequest::Quit) => return Ok(RunOutcome::Quit(None)),
        }
    }
}

impl Machine {
    /// Runs the machine until it ends; see [`run`].
    pub fn run(&mut self, options: RunOptions) -> Result<RunOutcome, Error> {
        let r = run(self, options);
        if self.config.tcg.print_stats {
            for v in &self.vcpus {
                if let Some(report) = v.stats_report() {
                    eprint!("{report}");
                }
            }
        }
        r
    }
}
