//! The local APIC timers of running vCPUs: a thread that sleeps until the earliest deadline of
//! all local APICs, runs the timers that are due (an expiry raises the vCPU's pin, which kicks
//! it out of compiled code), and sleeps again. A guest write that re-arms a timer wakes the
//! thread through the APIC's timer hook, so a new, earlier deadline is not missed. Halted vCPUs
//! also run their own timer (see `vcpu_thread`); either running it first is harmless.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tandem_hw::intc::lapic::UserspaceLapic;

use crate::error::Error;

/// What the hooks and the owner tell the thread.
#[derive(Default)]
struct Shared {
    /// Bumped by every re-arm, so the thread never sleeps on a stale deadline.
    generation: u64,
    stop: bool,
}

#[derive(Default)]
struct Signal {
    shared: Mutex<Shared>,
    changed: Condvar,
}

impl Signal {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The timer thread; stopped and joined on drop.
pub struct ApicTimers {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
}

impl ApicTimers {
    /// Starts serving `lapics` (none: no thread).
    pub fn start(lapics: Vec<Arc<UserspaceLapic>>) -> Result<Self, Error> {
        let signal = Arc::new(Signal::default());
        if lapics.is_empty() {
            return Ok(Self {
                signal,
                thread: None,
            });
        }
        for lapic in &lapics {
            let s = signal.clone();
            lapic.set_timer_hook(move || {
                s.lock().generation += 1;
                s.changed.notify_all();
            });
        }
        let s = signal.clone();
        let thread = std::thread::Builder::new()
            .name("apic-timers".into())
            .spawn(move || serve(&lapics, &s))
            .map_err(Error::Thread)?;
        Ok(Self {
            signal,
            thread: Some(thread),
        })
    }
}

impl Drop for ApicTimers {
    fn drop(&mut self) {
        self.signal.lock().stop = true;
        self.signal.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(lapics: &[Arc<UserspaceLapic>], signal: &Signal) {
    loop {
        let seen = {
            let s = signal.lock();
            if s.stop {
                return;
            }
            s.generation
        };
        // Timers run without our lock held: a tick can re-arm and so call the hook.
        let mut sleep: Option<Duration> = None;
        for lapic in lapics {
            let now = lapic.now_ns();
            let mut next = lapic.next_deadline_ns();
            if next.is_some_and(|d| d <= now) {
                next = lapic.tick();
            }
            if let Some(d) = next.filter(|&d| d > now) {
                let left = Duration::from_nanos(d - now);
                sleep = Some(sleep.map_or(left, |s| s.min(left)));
            }
        }
        let s = signal.lock();
        if s.stop {
            return;
        }
        if s.generation != seen {
            continue;
        }
        // Poisoning cannot leave the state inconsistent (two plain fields): carry on.
        drop(match sleep {
            Some(left) => signal
                .changed
                .wait_timeout(s, left)
                .map_or_else(|e| e.into_inner().0, |r| r.0),
            None => signal.changed.wait(s).unwrap_or_else(|e| e.into_inner()),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tandem_hw::intc::lapic::{Lapic, UserspaceLapic};
    use tandem_hw::timer::clock::{Clock, HostClock};
    use tandem_softmmu::{InterruptAcknowledge, InterruptPin};

    use super::*;

    #[test]
    fn a_timer_armed_while_the_thread_sleeps_fires_on_time() {
        let pin = InterruptPin::new();
        let clock: Arc<dyn Clock> = Arc::new(HostClock::new());
        let lapic = UserspaceLapic::new(Lapic::new(0, true), pin.clone(), clock.clone());
        let timers = ApicTimers::start(vec![lapic.clone()]).unwrap();
        // The thread is asleep with no deadline; a one-shot timer of 20 ms, vector 0x40.
        for (reg, v) in [(0xf0u64, 0x1ffu32), (0x320, 0x40), (0x3e0, 0xb)] {
            lapic.mmio_write(reg, &v.to_le_bytes());
        }
        let armed = clock.now_ns();
        lapic.mmio_write(0x380, &20_000_000u32.to_le_bytes());
        // Nobody but the thread runs the timer here.
        while !pin.wait_raised(Duration::from_secs(60)) {}
        assert!(clock.now_ns() >= armed + 20_000_000, "fired early");
        assert_eq!(lapic.acknowledge(), Some(0x40));
        drop(timers);
    }
}
