//! The host side of `-serial stdio`: the terminal in raw mode, stdin polled for guest input,
//! and QEMU's escape keys ([`escape`]: Ctrl-A x quits, Ctrl-A h lists the keys, ...).
//!
//! On a terminal every byte typed goes to the guest, Ctrl-C and Ctrl-Z included: raw mode
//! clears ISIG, as `qemu-system-x86_64 -nographic` does, so the guest's shell stops its own
//! commands. Only the escape character is the emulator's. SIGINT, SIGTERM and SIGHUP sent from
//! outside still stop the machine ([`crate::signals`]). The terminal is restored when the
//! console is dropped, on every return and unwinding path, and by the crash handlers of
//! [`crate::signals`] on a fatal signal. A stopped (SIGTSTP from outside) and resumed tandem
//! does not put raw mode back.
//!
//! With stdin not a terminal (a pipe, a file) bytes are passed through untouched: no escapes.

pub mod escape;

use std::collections::VecDeque;
use std::io::Write;
use std::time::Duration;

use tandem_hw::char::serial16550::Serial16550;

use crate::console_timestamps::TimestampSwitch;
pub use escape::{EscapeAction, EscapeFilter, Key, DEFAULT_ESCAPE};

/// Input polled from the console.
#[derive(Debug, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// Nothing arrived in time.
    Idle,
    /// Something arrived (guest input, if any, is queued: see [`Console::deliver`]).
    Input,
    /// The user typed the escape character and x.
    Quit,
}

/// The guest's end of the console: the UART's receiver.
pub trait SerialReceiver {
    /// Takes what fits of `bytes`; returns how many were taken.
    fn receive(&mut self, bytes: &[u8]) -> usize;
    /// Receives a break; false if the receiver cannot take it yet.
    fn receive_break(&mut self) -> bool;
}

impl SerialReceiver for Serial16550 {
    fn receive(&mut self, bytes: &[u8]) -> usize {
        self.enqueue_input(bytes)
    }

    fn receive_break(&mut self) -> bool {
        self.enqueue_break()
    }
}

/// Guest-bound input, in the order typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Byte(u8),
    Break,
}

/// What the console says when Ctrl-A c is typed.
pub const NO_MONITOR: &str = "tandem: QEMU-style monitor not available yet\r\n";

/// stdin/stdout as the guest's serial console.
pub struct Console {
    saved: Option<libc::termios>,
    eof: bool,
    escapes: bool,
    filter: EscapeFilter,
    timestamps: TimestampSwitch,
    /// Where the help and other messages for the user go (stdout: the console itself).
    messages: Box<dyn Write + Send>,
    pending: VecDeque<Input>,
}

/// Raw mode as QEMU's stdio backend sets it, with ISIG cleared too: no echo, no line editing,
/// no signal keys, no CR/NL translation or flow control on input; output post-processing kept,
/// so the guest's `\n` still returns the carriage.
fn raw_mode(mut t: libc::termios) -> libc::termios {
    t.c_iflag &= !(libc::IGNBRK
        | libc::BRKINT
        | libc::PARMRK
        | libc::ISTRIP
        | libc::INLCR
        | libc::IGNCR
        | libc::ICRNL
        | libc::IXON);
    t.c_oflag |= libc::OPOST;
    t.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::IEXTEN | libc::ISIG);
    t.c_cflag &= !(libc::CSIZE | libc::PARENB);
    t.c_cflag |= libc::CS8;
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
    t
}

impl Console {
    /// Takes over stdin: raw mode if it is a terminal, and then `escape` starts the escape
    /// keys; Ctrl-A t flips `timestamps`.
    pub fn stdio(escape: u8, timestamps: TimestampSwitch) -> Self {
        let mut saved = None;
        // SAFETY: isatty/tcgetattr/tcsetattr on fd 0 with a properly sized termios.
        unsafe {
            if libc::isatty(0) == 1 {
                let mut t: libc::termios = std::mem::zeroed();
                if libc::tcgetattr(0, &mut t) == 0 {
                    saved = Some(t);
                    crate::signals::restore_on_crash(Some(t));
                    libc::tcsetattr(0, libc::TCSANOW, &raw_mode(t));
                }
            }
        }
        let escapes = saved.is_some();
        Self {
            saved,
            eof: false,
            escapes,
            filter: EscapeFilter::new(escape),
            timestamps,
            messages: Box::new(std::io::stdout()),
            pending: VecDeque::new(),
        }
    }

    /// A console that never has input (`-serial file:` or `none`).
    pub fn none() -> Self {
        Self {
            saved: None,
            eof: true,
            escapes: false,
            filter: EscapeFilter::default(),
            timestamps: TimestampSwitch::new(),
            messages: Box::new(std::io::sink()),
            pending: VecDeque::new(),
        }
    }

    /// Waits up to `timeout` for input and queues what is for the guest.
    pub fn poll(&mut self, timeout: Duration) -> ConsoleEvent {
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
        self.typed(&buf[..got as usize])
    }

    /// Handles bytes read from the terminal (or a pipe, without escapes).
    fn typed(&mut self, data: &[u8]) -> ConsoleEvent {
        if !self.escapes {
            self.pending.extend(data.iter().map(|&b| Input::Byte(b)));
            return ConsoleEvent::Input;
        }
        for &b in data {
            match self.filter.key(b) {
                None => {}
                Some(Key::Guest(b)) => self.pending.push_back(Input::Byte(b)),
                Some(Key::Action(EscapeAction::Quit)) => return ConsoleEvent::Quit,
                Some(Key::Action(EscapeAction::Break)) => self.pending.push_back(Input::Break),
                Some(Key::Action(EscapeAction::ToggleTimestamps)) => {
                    self.timestamps.toggle();
                }
                Some(Key::Action(EscapeAction::Help)) => {
                    self.say(&escape::help_text(self.filter.escape()))
                }
                Some(Key::Action(EscapeAction::Monitor)) => self.say(NO_MONITOR),
            }
        }
        ConsoleEvent::Input
    }

    /// Writes a message for the user; a console that cannot be written to has no one to tell.
    fn say(&mut self, text: &str) {
        let _ = self
            .messages
            .write_all(text.as_bytes())
            .and_then(|()| self.messages.flush());
    }

    /// Whether typed input waits for room in the guest's receiver.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Hands queued input to the receiver, in order, as far as it takes it; the rest waits for
    /// the next call (nothing is dropped).
    pub fn deliver(&mut self, to: &mut dyn SerialReceiver) {
        loop {
            match self.pending.front() {
                None => return,
                Some(Input::Break) => {
                    if !to.receive_break() {
                        return;
                    }
                    self.pending.pop_front();
                }
                Some(Input::Byte(_)) => {
                    let bytes: Vec<u8> = self
                        .pending
                        .iter()
                        .map_while(|i| match i {
                            Input::Byte(b) => Some(*b),
                            Input::Break => None,
                        })
                        .collect();
                    let taken = to.receive(&bytes).min(bytes.len());
                    self.pending.drain(..taken);
                    if taken < bytes.len() {
                        return;
                    }
                }
            }
        }
    }

    /// Puts the terminal back as it was.
    pub fn restore(&mut self) {
        if let Some(t) = self.saved.take() {
            // SAFETY: restoring the attributes read by tcgetattr on the same fd.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
            crate::signals::restore_on_crash(None);
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
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A receiver with room for `room` bytes that records what it got ("BRK" for a break,
    /// taken only when it holds nothing, as the UART does).
    struct Receiver {
        room: usize,
        got: Vec<u8>,
    }
    impl SerialReceiver for Receiver {
        fn receive(&mut self, bytes: &[u8]) -> usize {
            let n = bytes.len().min(self.room);
            self.room -= n;
            self.got.extend_from_slice(&bytes[..n]);
            n
        }
        fn receive_break(&mut self) -> bool {
            if self.room < 4 {
                return false;
            }
            self.got.extend_from_slice(b"BRK");
            true
        }
    }

    fn terminal(escape: u8) -> (Console, Shared) {
        let messages = Shared::default();
        let console = Console {
            saved: None,
            eof: true,
            escapes: true,
            filter: EscapeFilter::new(escape),
            timestamps: TimestampSwitch::new(),
            messages: Box::new(messages.clone()),
            pending: VecDeque::new(),
        };
        (console, messages)
    }

    #[test]
    fn raw_mode_sends_signal_keys_to_the_guest() {
        // SAFETY: a zeroed termios is a valid value of this plain C struct.
        let mut cooked: libc::termios = unsafe { std::mem::zeroed() };
        cooked.c_lflag = libc::ISIG | libc::ICANON | libc::ECHO | libc::IEXTEN;
        cooked.c_iflag = libc::ICRNL | libc::IXON | libc::BRKINT;
        let raw = raw_mode(cooked);
        assert_eq!(raw.c_lflag & (libc::ISIG | libc::ICANON | libc::ECHO), 0);
        assert_eq!(raw.c_iflag & (libc::ICRNL | libc::IXON | libc::BRKINT), 0);
        assert_ne!(raw.c_oflag & libc::OPOST, 0);
    }

    #[test]
    fn typed_input_and_breaks_reach_the_receiver_in_order() {
        let (mut c, _) = terminal(DEFAULT_ESCAPE);
        assert_eq!(c.typed(b"ab\x03\x01bh"), ConsoleEvent::Input);
        let mut r = Receiver {
            room: 2,
            got: vec![],
        };
        c.deliver(&mut r);
        assert_eq!(r.got, b"ab", "the rest waits for room");
        r.room = 1;
        c.deliver(&mut r);
        assert_eq!(r.got, b"ab\x03", "the break waits for room too");
        r.room = 16;
        c.deliver(&mut r);
        assert_eq!(r.got, b"ab\x03BRKh");
        assert!(!c.has_pending());
    }

    #[test]
    fn help_monitor_and_timestamps_keys() {
        let (mut c, messages) = terminal(DEFAULT_ESCAPE);
        let switch = c.timestamps.clone();
        assert_eq!(c.typed(b"\x01h\x01c\x01t"), ConsoleEvent::Input);
        let said = String::from_utf8(messages.0.lock().unwrap().clone()).unwrap();
        assert!(said.contains("C-a x    exit emulator"), "{said}");
        assert!(said.ends_with(NO_MONITOR), "{said}");
        assert!(switch.is_on());
        assert!(!c.has_pending(), "escape sequences are not guest input");
        assert_eq!(c.typed(b"z\x01x"), ConsoleEvent::Quit);
    }

    #[test]
    fn without_a_terminal_bytes_pass_untouched() {
        let (mut c, _) = terminal(DEFAULT_ESCAPE);
        c.escapes = false;
        c.typed(b"\x01x\x03");
        let mut r = Receiver {
            room: 16,
            got: vec![],
        };
        c.deliver(&mut r);
        assert_eq!(r.got, b"\x01x\x03");
    }
}
