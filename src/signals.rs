//! Host signals. SIGINT, SIGTERM and SIGHUP stop the machine cleanly: the handler only sets a
//! flag, which the main loop polls every few milliseconds before shutting down (terminal
//! restored, vCPU threads joined). A crash (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, or
//! SIGQUIT from outside) puts the terminal back as the console found it, then dies as it
//! would have without the handler.
//!
//! With the serial console on a terminal, Ctrl-C is a byte for the guest (raw mode clears
//! ISIG, see [`crate::console`]): SIGINT then only comes from `kill` or a parent process.

use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};

static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The terminal modes to put back on fd 0 in a crash; null when there is nothing to restore.
static TERMINAL: AtomicPtr<libc::termios> = AtomicPtr::new(std::ptr::null_mut());

/// Signals that stop the machine cleanly.
const STOP: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Signals that end the process at once, whose default action is kept after the terminal is
/// restored.
const CRASH: [libc::c_int; 6] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
    libc::SIGQUIT,
];

extern "C" fn on_signal(sig: libc::c_int) {
    RECEIVED.store(sig, Ordering::SeqCst);
}

extern "C" fn on_crash(sig: libc::c_int) {
    let t = TERMINAL.load(Ordering::SeqCst);
    if !t.is_null() {
        // SAFETY: tcsetattr is async-signal-safe; `t` came from Box::into_raw in
        // restore_on_crash and is never freed.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
    }
    // SAFETY: SA_RESETHAND has put the default action back; raising again ends the process
    // as the signal would have (it is delivered when this handler returns).
    unsafe { libc::raise(sig) };
}

fn set_handler(sig: libc::c_int, handler: extern "C" fn(libc::c_int), flags: libc::c_int) {
    // SAFETY: installing an async-signal-safe handler with a zeroed sigaction and an empty
    // mask.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as usize;
        sa.sa_flags = flags;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
}

/// Installs the handlers (the binary does; a library user keeps its own).
pub fn install() {
    for sig in STOP {
        set_handler(sig, on_signal, 0);
    }
    for sig in CRASH {
        set_handler(sig, on_crash, libc::SA_RESETHAND);
    }
}

/// Records the terminal modes a crash must put back on fd 0; None once they are restored.
pub fn restore_on_crash(modes: Option<libc::termios>) {
    let new = modes.map_or(std::ptr::null_mut(), |t| Box::into_raw(Box::new(t)));
    // The previous copy is leaked, not freed: a crash handler on another thread may be
    // reading it. One small struct per console.
    TERMINAL.store(new, Ordering::SeqCst);
}

/// The signal received since start, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}
