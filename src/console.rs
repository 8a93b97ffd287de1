//! The host side of `-serial stdio`: the terminal in raw mode, stdin polled for guest input,
//! and QEMU's Ctrl-A escapes (Ctrl-A x quits, Ctrl-A Ctrl-A sends one Ctrl-A).
//!
//! Raw mode keeps ISIG, so Ctrl-C stops the machine (the contract) instead of reaching
//! the guest; the terminal is restored when the console is dropped, on every exit path.

use std::time::Duration;

/// What the user asked for through the escape character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapeAction {
    /// Quit the emulator.
    Quit,
}

const CTRL_A: u8 = 0x01;

/// Strips QEMU-style Ctrl-A escape sequences from the input stream.
#[derive(Debug, Default)]
pub struct EscapeFilter {
    armed: bool,
}

impl EscapeFilter {
    /// Appends the guest-bound bytes of `input` to `out`; returns an action if one was typed.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<EscapeAction> {
        for &b in input {
            if self.armed {
                self.armed = false;
                match b {
                    b'x' | b'X' => return Some(EscapeAction::Quit),
                    CTRL_A => out.push(CTRL_A),
                    _ => {}
                }
            } else if b == CTRL_A {
                self.armed = true;
            } else {
                out.push(b);
            }
        }
        None
    }
}

/// Input polled from the console.
#[derive(Debug, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// Nothing arrived in time.
    Idle,
    /// Bytes for the guest were appended to the buffer.
    Input,
    /// The user typed Ctrl-A x.
    Quit,
}

/// stdin/stdout as the guest's serial console.
pub struct Console {
    saved: Option<libc::termios>,
    eof: bool,
    escapes: bool,
    filter: EscapeFilter,
}

impl Console {
    /// Takes over stdin: raw mode if it is a terminal (escape sequences then apply).
    pub fn stdio() -> Self {
        let mut saved = None;
        // SAFETY: isatty/tcgetattr/tcsetattr on fd 0 with a properly sized termios.
        unsafe {
            if libc::isatty(0) == 1 {
                let mut t: libc::termios = std::mem::zeroed();
                if libc::tcgetattr(0, &mut t) == 0 {
                    saved = Some(t);
                    let mut raw = t;
                    raw.c_lflag &= !(libc::ICANON | libc::ECHO | libc::IEXTEN);
                    raw.c_iflag &= !(libc::ICRNL | libc::IXON | libc::INLCR);
                    raw.c_cc[libc::VMIN] = 1;
                    raw.c_cc[libc::VTIME] = 0;
                    libc::tcsetattr(0, libc::TCSANOW, &raw);
                }
            }
        }
        let escapes = saved.is_some();
        Self {
            saved,
            eof: false,
            escapes,
            filter: EscapeFilter::default(),
        }
    }

    /// A console that never has input (`-serial file:` or `none`).
    pub fn none() -> Self {
        Self {
            saved: None,
            eof: true,
            escapes: false,
            filter: EscapeFilter::default(),
        }
    }

    /// Waits up to `timeout` for input and appends guest-bound bytes to `out`.
    pub fn poll(&mut self, timeout: Duration, out: &mut Vec<u8>) -> ConsoleEvent {
        if self.eof {
            std::thread::sleep(timeout);
            return ConsoleEvent::Idle;
        }
        let mut pfd = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        // ppoll, not poll: timer deadlines are finer than a millisecond, and rounding them down
        // to 0 ms would spin.
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: one valid pollfd and a valid timespec for the duration of the call; a null
        // signal mask keeps the current one.
        let n = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        if n <= 0 {
            return ConsoleEvent::Idle;
        }
        let mut buf = [0u8; 256];
        // SAFETY: reading into a stack buffer of the given length.
        let got = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if got <= 0 {
            // EOF (or a hang-up): stop polling, keep the machine running.
            self.eof = true;
            return ConsoleEvent::Idle;
        }
        let data = &buf[..got as usize];
        if !self.escapes {
            out.extend_from_slice(data);
            return ConsoleEvent::Input;
        }
        match self.filter.feed(data, out) {
            Some(EscapeAction::Quit) => ConsoleEvent::Quit,
            None => ConsoleEvent::Input,
        }
    }

    /// Puts the terminal back as it was.
    pub fn restore(&mut self) {
        if let Some(t) = self.saved.take() {
            // SAFETY: restoring the attributes read by tcgetattr on the same fd.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.restore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_a_x_quits_and_ctrl_a_ctrl_a_sends_one() {
        let mut f = EscapeFilter::default();
        let mut out = vec![];
        assert_eq!(f.feed(b"ls\r\x01\x01a", &mut out), None);
        assert_eq!(out, b"ls\r\x01a");
        out.clear();
        assert_eq!(f.feed(b"q\x01", &mut out), None);
        assert_eq!(f.feed(b"x", &mut out), Some(EscapeAction::Quit));
        assert_eq!(out, b"q");
    }
}
