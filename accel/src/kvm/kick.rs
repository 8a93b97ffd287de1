//! Forcing a vCPU thread out of KVM_RUN from another thread.
//!
//! The classic scheme (QEMU's, Firecracker's): set `kvm_run.immediate_exit` so a KVM_RUN about to
//! start returns at once, then send the thread a signal whose handler does nothing, so a KVM_RUN
//! already running returns with EINTR. Setting the flag before signalling closes the race where
//! the signal lands just before the thread enters the kernel.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, Once};

/// The signal used for kicks.
fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Installs the no-op handler once per process. SA_RESTART is deliberately not set: KVM_RUN
/// must return EINTR.
fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigaction with a zeroed struct, a valid handler address and an empty mask is
        // the documented way to install a handler; the handler itself does nothing.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = ignore_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(kick_signal(), &sa, std::ptr::null_mut());
        }
    });
}

struct Target {
    thread: Option<libc::pthread_t>,
    /// `&kvm_run.immediate_exit`, valid while the vCPU exists.
    immediate_exit: *const AtomicU8,
}

// SAFETY: the pointer targets the vCPU's kvm_run mapping and is only dereferenced under the mutex
// while the vCPU is alive (it is cleared in `detach` before the mapping goes away).
unsafe impl Send for Target {}

/// The calling thread is the vCPU's for as long as this lives.
pub struct BoundThread<'a>(&'a Kicker);

impl Drop for BoundThread<'_> {
    fn drop(&mut self) {
        let mut t = self.0.target.lock().unwrap_or_else(|e| e.into_inner());
        t.thread = None;
    }
}

/// A handle other threads use to kick one vCPU.
pub struct Kicker {
    target: Mutex<Target>,
}

impl Kicker {
    /// A kicker for the vCPU whose `kvm_run.immediate_exit` byte is at `immediate_exit`.
    pub fn new(immediate_exit: *mut u8) -> Self {
        install_handler();
        Self {
            target: Mutex::new(Target {
                thread: None,
                immediate_exit: immediate_exit as *const AtomicU8,
            }),
        }
    }

    /// Records the calling thread as the one running the vCPU, until the guard it returns
    /// goes: a vCPU runs on a new thread after every machine reset, and a kick must never
    /// signal a thread that has ended (its id may name another thread by then).
    pub fn bind_current_thread(&self) -> BoundThread<'_> {
        let mut t = self.target.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: pthread_self has no preconditions.
        t.thread = Some(unsafe { libc::pthread_self() });
        BoundThread(self)
    }

    /// Makes the vCPU leave (or not enter) KVM_RUN.
    pub fn kick(&self) {
        let t = self.target.lock().unwrap_or_else(|e| e.into_inner());
        if t.immediate_exit.is_null() {
            return;
        }
        // SAFETY: non-null means the vCPU (and its kvm_run mapping) is alive; see `detach`.
        unsafe { (*t.immediate_exit).store(1, Ordering::SeqCst) };
        if let Some(thread) = t.thread {
            // SAFETY: the thread id was recorded by the vCPU thread itself, which clears it (under
            // this lock) before it leaves Vcpu::run, so the id is of a live thread.
            unsafe { libc::pthread_kill(thread, kick_signal()) };
        }
    }

    /// Clears the immediate-exit request after KVM_RUN returned because of it.
    pub fn acknowledge(&self) {
        let t = self.target.lock().unwrap_or_else(|e| e.into_inner());
        if !t.immediate_exit.is_null() {
            // SAFETY: as in `kick`.
            unsafe { (*t.immediate_exit).store(0, Ordering::SeqCst) };
        }
    }

    /// Forgets the vCPU: later kicks do nothing.
    pub fn detach(&self) {
        let mut t = self.target.lock().unwrap_or_else(|e| e.into_inner());
        t.immediate_exit = std::ptr::null();
        t.thread = None;
    }
}
