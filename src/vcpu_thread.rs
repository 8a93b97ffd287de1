//! One thread per vCPU: runs it until the machine must stop, waiting in HLT for interrupts.
//!
//! The thread owns its vCPU while the machine runs and hands it back when it ends, so the run
//! loop can reset or inspect it between boots.

use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tandem_accel::{AccelError, Vcpu, VcpuExit};
use tandem_softmmu::{InterruptPin, RunControl};

use crate::error::Error;

/// Why a vCPU thread ended.
#[derive(Debug)]
pub enum VcpuEnd {
    /// A stop was requested through the run control.
    Stopped,
    /// The vCPU hit a triple fault.
    TripleFault,
    /// HLT with interrupts disabled: nothing can wake it.
    HaltedForever,
    /// The engine failed.
    Failed(AccelError),
}

/// A report from a vCPU thread to the run loop.
#[derive(Debug)]
pub struct VcpuReport {
    /// Which vCPU.
    pub index: u32,
    /// Why it ended.
    pub end: VcpuEnd,
}

/// How long a halted vCPU sleeps before rechecking for a stop request it may have missed.
const HALT_RECHECK: Duration = Duration::from_millis(50);

fn run_vcpu(vcpu: &mut dyn Vcpu, control: &RunControl, pin: Option<&InterruptPin>) -> VcpuEnd {
    loop {
        match vcpu.run() {
            Ok(VcpuExit::Halted {
                interrupts_enabled: true,
            }) => {
                // Engines with their own irqchip halt in the engine; only the userspace
                // irqchip brings HLT here, and then the INTR pin wakes us.
                if let Some(pin) = pin {
                    while !pin.wait_raised(HALT_RECHECK) {
                        if control.stop_requested() {
                            return VcpuEnd::Stopped;
                        }
                    }
                }
            }
            Ok(VcpuExit::Halted {
                interrupts_enabled: false,
            }) => return VcpuEnd::HaltedForever,
            Ok(VcpuExit::Shutdown) => return VcpuEnd::TripleFault,
            Ok(VcpuExit::Stopped) => return VcpuEnd::Stopped,
            // No debugger is attached yet: a stray debug exit just resumes.
            Ok(VcpuExit::Debug) => {}
            Err(e) => return VcpuEnd::Failed(e),
        }
    }
}

/// Starts vCPU `index` on its own thread; the handle returns the vCPU when the thread ends.
pub fn spawn(
    index: u32,
    mut vcpu: Box<dyn Vcpu>,
    control: Arc<RunControl>,
    pin: Option<Arc<InterruptPin>>,
    reports: Sender<VcpuReport>,
) -> Result<JoinHandle<Box<dyn Vcpu>>, Error> {
    std::thread::Builder::new()
        .name(format!("vcpu{index}"))
        .spawn(move || {
            let end = run_vcpu(vcpu.as_mut(), &control, pin.as_deref());
            // The run loop may already be gone if it is shutting down; nothing to tell then.
            let _ = reports.send(VcpuReport { index, end });
            vcpu
        })
        .map_err(Error::Thread)
}
