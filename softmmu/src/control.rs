//! Machine-wide run requests: power-off, reset, debug exit, a host quit.
//!
//! Devices (the debug-exit port, the i8042 reset line, ACPI later) and the host side (Ctrl-C)
//! post a request here; every vCPU is kicked out of guest mode and the run loop acts on it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// What the machine was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineRequest {
    /// The guest powered the machine off.
    PowerOff,
    /// A system reset (keyboard controller, triple fault without `-no-reboot`).
    Reset,
    /// A write of `value` to isa-debug-exit: the process exits with `(value << 1) | 1`.
    DebugExit(u32),
    /// The host asked to stop (Ctrl-C, a signal).
    Quit,
}

type Kick = Box<dyn Fn() + Send + Sync>;

/// Shared between devices, vCPU threads and the run loop.
#[derive(Default)]
pub struct RunControl {
    stop: AtomicBool,
    request: Mutex<Option<MachineRequest>>,
    kicks: Mutex<Vec<Kick>>,
}

impl RunControl {
    /// No request pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Posts `req` (the first one posted wins until [`RunControl::clear`]) and kicks every vCPU.
    pub fn request(&self, req: MachineRequest) {
        {
            let mut cur = self.request.lock().unwrap_or_else(|e| e.into_inner());
            if cur.is_none() {
                *cur = Some(req);
            }
        }
        self.stop.store(true, Ordering::SeqCst);
        for kick in self.kicks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            kick();
        }
    }

    /// True once any request is pending: vCPUs leave guest mode.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The pending request.
    pub fn pending(&self) -> Option<MachineRequest> {
        *self.request.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets the pending request (after a reset has been carried out).
    pub fn clear(&self) {
        *self.request.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.stop.store(false, Ordering::SeqCst);
    }

    /// Registers a callback that forces a vCPU out of guest mode.
    pub fn on_request(&self, kick: impl Fn() + Send + Sync + 'static) {
        self.kicks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(kick));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_request_wins_until_cleared() {
        let rc = RunControl::new();
        assert!(!rc.stop_requested());
        rc.request(MachineRequest::DebugExit(3));
        rc.request(MachineRequest::Reset);
        assert_eq!(rc.pending(), Some(MachineRequest::DebugExit(3)));
        assert!(rc.stop_requested());
        rc.clear();
        assert_eq!(rc.pending(), None);
        rc.request(MachineRequest::Reset);
        assert_eq!(rc.pending(), Some(MachineRequest::Reset));
    }
}
