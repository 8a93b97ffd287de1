//! One thread per vCPU: runs it until the machine must stop, waiting in HLT for interrupts.
//!
//! The thread owns its vCPU while the machine runs and hands it back when it ends, so the run
//! loop can reset or inspect it between boots. A halted vCPU sleeps on its INTR pin; with a
//! local APIC, only until the APIC timer's deadline, when it runs the timer itself (which
//! raises the pin if it fired). It never polls faster than that.

use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tandem_accel::{AccelError, Vcpu, VcpuExit};
use tandem_softmmu::irq::LocalApic;
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

/// What wakes a halted vCPU: its INTR pin, and its local APIC's timer if it has one.
#[derive(Clone)]
pub struct HaltWake {
    /// The vCPU's INTR pin.
    pub pin: Arc<InterruptPin>,
    /// Its local APIC.
    pub lapic: Option<Arc<dyn LocalApic>>,
}

impl HaltWake {
    /// Sleeps until the pin is raised (true) or a stop is requested (false), running the
    /// APIC timer at its deadlines on the way.
    pub fn wait(&self, control: &RunControl) -> bool {
        loop {
            let mut timeout = HALT_RECHECK;
            if let Some(lapic) = &self.lapic {
                let now = lapic.now_ns();
                let mut next = lapic.next_deadline_ns();
                if next.is_some_and(|d| d <= now) {
                    // Due: an expiry raises the pin; a periodic timer re-arms.
                    next = lapic.tick();
                }
                if let Some(d) = next.filter(|&d| d > now) {
                    timeout = timeout.min(Duration::from_nanos(d - now));
                }
            }
            if self.pin.wait_raised(timeout) {
                return true;
            }
            if control.stop_requested() {
                return false;
            }
        }
    }
}

fn run_vcpu(vcpu: &mut dyn Vcpu, control: &RunControl, wake: Option<&HaltWake>) -> VcpuEnd {
    loop {
        match vcpu.run() {
            Ok(VcpuExit::Halted {
                interrupts_enabled: true,
            }) => {
                // Engines with their own irqchip halt in the engine; only the userspace
                // irqchip brings HLT here, and then the INTR pin wakes us.
                if let Some(wake) = wake {
                    if !wake.wait(control) {
                        return VcpuEnd::Stopped;
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
    wake: Option<HaltWake>,
    reports: Sender<VcpuReport>,
) -> Result<JoinHandle<Box<dyn Vcpu>>, Error> {
    std::thread::Builder::new()
        .name(format!("vcpu{index}"))
        .spawn(move || {
            let end = run_vcpu(vcpu.as_mut(), &control, wake.as_ref());
            // The run loop may already be gone if it is shutting down; nothing to tell then.
            let _ = reports.send(VcpuReport { index, end });
            vcpu
        })
        .map_err(Error::Thread)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    use tandem_softmmu::irq::{CpuEvents, LocalApicMsrError};
    use tandem_softmmu::InterruptAcknowledge;

    use super::*;

    /// A one-shot timer `delay` after creation that raises `pin` when ticked past it, counting
    /// how often the halted vCPU looks at it.
    struct OneShot {
        origin: Instant,
        deadline: u64,
        fired: std::sync::atomic::AtomicBool,
        pin: Arc<InterruptPin>,
        looks: AtomicU32,
        ticks: AtomicU32,
    }

    impl InterruptAcknowledge for OneShot {
        fn acknowledge(&self) -> Option<u8> {
            None
        }
    }

    impl LocalApic for OneShot {
        fn mmio_page(&self) -> Option<u64> {
            None
        }
        fn mmio_read(&self, _: u64, _: &mut [u8]) {}
        fn mmio_write(&self, _: u64, _: &[u8]) {}
        fn read_msr(&self, index: u32) -> Result<u64, LocalApicMsrError> {
            Err(LocalApicMsrError::NotApic(index))
        }
        fn write_msr(&self, index: u32, _: u64) -> Result<(), LocalApicMsrError> {
            Err(LocalApicMsrError::NotApic(index))
        }
        fn cr8(&self) -> u64 {
            0
        }
        fn set_cr8(&self, _: u64) {}
        fn take_events(&self) -> CpuEvents {
            CpuEvents::default()
        }
        fn now_ns(&self) -> u64 {
            self.origin.elapsed().as_nanos() as u64
        }
        fn next_deadline_ns(&self) -> Option<u64> {
            self.looks.fetch_add(1, Ordering::SeqCst);
            (!self.fired.load(Ordering::SeqCst)).then_some(self.deadline)
        }
        fn tick(&self) -> Option<u64> {
            self.ticks.fetch_add(1, Ordering::SeqCst);
            if self.now_ns() >= self.deadline {
                self.fired.store(true, Ordering::SeqCst);
                self.pin.set(true);
                return None;
            }
            Some(self.deadline)
        }
    }

    #[test]
    fn a_halted_vcpu_sleeps_until_its_apic_deadline_then_runs_the_timer() {
        let pin = InterruptPin::new();
        let timer = Arc::new(OneShot {
            origin: Instant::now(),
            deadline: 30_000_000,
            fired: Default::default(),
            pin: pin.clone(),
            looks: AtomicU32::new(0),
            ticks: AtomicU32::new(0),
        });
        let wake = HaltWake {
            pin,
            lapic: Some(timer.clone()),
        };
        assert!(wake.wait(&RunControl::new()));
        assert!(timer.now_ns() >= timer.deadline, "woke before the deadline");
        // One sleep to the deadline, one look that finds it due: no polling in between.
        assert_eq!(timer.ticks.load(Ordering::SeqCst), 1);
        assert_eq!(timer.looks.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_stop_request_ends_the_wait() {
        let pin = InterruptPin::new();
        let control = Arc::new(RunControl::new());
        let (p, c) = (pin.clone(), control.clone());
        control.on_request(move || p.wake());
        let waiter = std::thread::spawn(move || HaltWake { pin, lapic: None }.wait(&c));
        control.request(tandem_softmmu::MachineRequest::Quit);
        assert!(!waiter.join().unwrap());
    }
}
