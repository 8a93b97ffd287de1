//! The serial console on a real terminal (issue 22): tandem runs on the slave side of a
//! pseudo-terminal, as its controlling terminal, and the test types on the master side as a
//! user would. Ctrl-C, Ctrl-Z and Ctrl-\ must reach the guest and leave the machine running;
//! the escape keys (Ctrl-A x, h, b, t, c, Ctrl-A Ctrl-A, `-echr`) are the emulator's; signals
//! sent from outside stop it cleanly; and the terminal's modes are back as they were after
//! every way of ending.
//!
//! The small guest prints `<xx>` (hex) for each byte it receives, and `BRK ` before a byte
//! that came with a break (LSR.BI). The Linux test boots the fixture to its shell, stops a
//! `sleep 30` with Ctrl-C and asks the kernel for SysRq help with a break; under this debug
//! build's JIT it reaches the prompt in about 20 s here, the whole test in about 25 s.

mod common;
mod guest_support;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::asm::{self, puts};
use common::*;
use guest_support::*;
use iced_x86::code_asm::*;

/// How long the small guest may take to answer one key (a debug build on a busy machine).
const ANSWER: Duration = Duration::from_secs(30);

/// How long the Linux fixture may take to reach its shell prompt under the debug build's JIT
/// before the boot is taken for hung: about 20 s here alone, several times that on a machine
/// busy with the rest of the test suite.
const LINUX_PROMPT_GUARD: Duration = Duration::from_secs(5 * 60);

/// The terminal modes that matter, comparable (libc's termios has no PartialEq here).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Modes {
    iflag: libc::tcflag_t,
    oflag: libc::tcflag_t,
    cflag: libc::tcflag_t,
    lflag: libc::tcflag_t,
    cc: Vec<libc::cc_t>,
    ispeed: libc::speed_t,
    ospeed: libc::speed_t,
}

fn modes(fd: &OwnedFd) -> Modes {
    // SAFETY: a zeroed termios is a valid value of this plain C struct; tcgetattr fills it from
    // an open terminal fd, and cfget*speed only read it.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(fd.as_raw_fd(), &mut t), 0, "tcgetattr");
        Modes {
            iflag: t.c_iflag,
            oflag: t.c_oflag,
            cflag: t.c_cflag,
            lflag: t.c_lflag,
            cc: t.c_cc.to_vec(),
            ispeed: libc::cfgetispeed(&t),
            ospeed: libc::cfgetospeed(&t),
        }
    }
}

/// tandem on a pseudo-terminal, and everything it wrote there.
struct Session {
    child: Child,
    master: File,
    slave: OwnedFd,
    output: Arc<Mutex<Vec<u8>>>,
    /// Output before this offset has been matched already.
    seen: usize,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// The modes the terminal had before tandem started.
    before: Modes,
}

impl Session {
    /// Starts tandem with `args` on a fresh pseudo-terminal that becomes its controlling
    /// terminal (so a Ctrl-C with ISIG set would signal it).
    fn start(args: &[&str]) -> Session {
        let (mut m, mut s) = (0, 0);
        // SAFETY: openpty writes two fds into the given ints; the name, termios and winsize
        // arguments may be null.
        let r = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: openpty returned two fresh fds that nothing else owns.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        let before = modes(&slave);
        assert_ne!(before.lflag & libc::ISIG, 0, "a fresh pty is cooked");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
        cmd.args(args)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        // SAFETY: setsid and ioctl are async-signal-safe, as a pre_exec hook must be; fd 0 is
        // the slave by then.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start tandem");
        let master = File::from(master);
        let output = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let mut master = master.try_clone().unwrap();
            let output = output.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let mut pfd = libc::pollfd {
                        fd: master.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd for the duration of the call.
                    if unsafe { libc::poll(&mut pfd, 1, 50) } <= 0 {
                        continue;
                    }
                    match master.read(&mut buf) {
                        Ok(n) if n > 0 => output.lock().unwrap().extend_from_slice(&buf[..n]),
                        _ => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Session {
            child,
            master,
            slave,
            output,
            seen: 0,
            stop,
            reader: Some(reader),
            before,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Types `bytes` on the terminal.
    fn type_keys(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
        self.master.flush().unwrap();
    }

    /// Waits until `needle` appears after what was matched so far; returns the text from the
    /// previous match to the end of this one.
    fn expect(&mut self, needle: &str, within: Duration) -> String {
        let start = Instant::now();
        loop {
            let out = self.output.lock().unwrap().clone();
            let fresh = &out[self.seen.min(out.len())..];
            if let Some(at) = find(fresh, needle.as_bytes()) {
                let end = at + needle.len();
                let got = String::from_utf8_lossy(&fresh[..end]).into_owned();
                self.seen += end;
                return got;
            }
            if start.elapsed() > within {
                panic!(
                    "no {needle:?} within {within:?}; the terminal after the last match:\n{}",
                    String::from_utf8_lossy(fresh)
                );
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(200));
                let out = self.text();
                panic!("tandem ended ({status}) before {needle:?}; the terminal:\n{out}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Panics if tandem has ended.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("tandem ended ({status}); the terminal:\n{}", self.text());
        }
    }

    /// Waits for tandem to end; the terminal's modes must be back as they were.
    fn ended(&mut self, within: Duration) -> ExitStatus {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > within {
                panic!(
                    "tandem still runs after {within:?}; the terminal:\n{}",
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            modes(&self.slave),
            self.before,
            "the terminal's modes after tandem ended ({status}); the terminal:\n{}",
            self.text()
        );
        status
    }

    /// Sends `sig` to tandem.
    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill with the pid of our own child, which has not been reaped yet.
        let r = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(r, 0, "kill: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Prints the low nibble of BL shifted right by `shift` as a hex digit. Clobbers AL, CL, DX.
fn put_nibble(a: &mut CodeAssembler, shift: u32) {
    let mut digit = a.create_label();
    a.mov(al, bl).unwrap();
    a.shr(al, shift).unwrap();
    a.and(al, 0x0f).unwrap();
    a.add(al, b'0' as u32).unwrap();
    a.cmp(al, b'9' as u32).unwrap();
    a.jbe(digit).unwrap();
    a.add(al, 7).unwrap();
    a.set_label(&mut digit).unwrap();
    a.mov(cl, al).unwrap();
    asm::wait_thre(a);
    a.mov(dx, asm::COM1 as u32).unwrap();
    a.mov(al, cl).unwrap();
    a.out(dx, al).unwrap();
}

/// A guest that prints `READY`, then `<xx>` and a newline for every byte it receives, with
/// `BRK ` first when the byte came with a break.
fn byte_printer() -> Vec<u8> {
    let code = assemble64(|a| {
        let mut poll = a.create_label();
        let mut data = a.create_label();
        puts(a, "READY\n");
        a.set_label(&mut poll).unwrap();
        a.mov(dx, (asm::COM1 + 5) as u32).unwrap();
        a.in_(al, dx).unwrap();
        a.test(al, 1).unwrap();
        a.jz(poll).unwrap();
        a.test(al, 0x10).unwrap();
        a.jz(data).unwrap();
        puts(a, "BRK ");
        a.set_label(&mut data).unwrap();
        a.mov(dx, asm::COM1 as u32).unwrap();
        a.in_(al, dx).unwrap();
        a.mov(bl, al).unwrap();
        asm::putc(a, b'<');
        put_nibble(a, 4);
        put_nibble(a, 0);
        puts(a, ">\n");
        a.jmp(poll).unwrap();
    });
    elf64(&code, LOAD64)
}

/// Starts the byte printer under the JIT with `extra` arguments, up to its READY.
fn byte_printer_session(test: &str, extra: &[&str]) -> Session {
    let dir = scratch(test);
    let kernel = write_file(&dir, "kernel", &byte_printer());
    let mut args = vec!["-accel", "tcg", "-m", "32", "-nographic"];
    args.extend_from_slice(&["-kernel", kernel.to_str().unwrap()]);
    args.extend_from_slice(extra);
    let mut s = Session::start(&args);
    s.expect("READY", ANSWER);
    s
}

#[test]
fn ctrl_c_and_ctrl_z_reach_the_guest_and_ctrl_a_x_quits() {
    let mut s = byte_printer_session("ctrl_c_reaches_the_guest", &[]);
    let raw = modes(&s.slave);
    assert_eq!(
        raw.lflag & (libc::ISIG | libc::ICANON | libc::ECHO),
        0,
        "raw mode"
    );
    for (key, shown) in [
        (b"\x03", "<03>"),
        (b"\x1a", "<1A>"),
        (b"\x1c", "<1C>"),
        (b"\x04", "<04>"),
    ] {
        s.type_keys(key);
        s.expect(shown, ANSWER);
        s.assert_running();
    }
    // The guest answers after the Ctrl-C; Ctrl-A Ctrl-A types one Ctrl-A.
    s.type_keys(b"ok\x01\x01");
    s.expect("<6F>", ANSWER);
    s.expect("<6B>", ANSWER);
    s.expect("<01>", ANSWER);
    s.type_keys(b"\x01x");
    let status = s.ended(ANSWER);
    assert_eq!(status.code(), Some(0), "{}", s.text());
    assert!(s.text().contains("terminated by the user"), "{}", s.text());
}

#[test]
fn escape_keys_help_monitor_break_and_timestamps() {
    let mut s = byte_printer_session("escape_keys", &[]);
    s.type_keys(b"\x01h");
    let help = s.expect("sends C-a", ANSWER);
    for line in [
        "C-a h    print this help",
        "C-a x    exit emulator",
        "C-a t    toggle console timestamps",
        "C-a b    send break (magic sysrq)",
        "C-a C-a  sends C-a",
    ] {
        assert!(
            help.contains(line),
            "{line:?} missing from the help:\n{help}"
        );
    }
    s.type_keys(b"\x01c");
    s.expect("monitor not available yet", ANSWER);
    // A break is a 0 byte with LSR.BI; the key typed after it is an ordinary byte.
    s.type_keys(b"\x01bh");
    s.expect("BRK <00>", ANSWER);
    let after = s.expect("<68>", ANSWER);
    assert!(!after.contains("BRK"), "{after:?}");
    // Timestamps: the line in progress at the toggle is not stamped, the next ones are.
    s.type_keys(b"\x01t");
    s.type_keys(b"q");
    s.expect("<71>", ANSWER);
    s.type_keys(b"r");
    let stamped = s.expect("<72>", ANSWER);
    assert!(
        stamped.starts_with("\r\n[00:00:") && stamped.ends_with("] <72>"),
        "{stamped:?}"
    );
    s.type_keys(b"\x01ts");
    let plain = s.expect("<73>", ANSWER);
    assert_eq!(plain, "\r\n<73>", "stamps off again");
    s.assert_running();
    s.type_keys(b"\x01x");
    assert_eq!(s.ended(ANSWER).code(), Some(0));
}

#[test]
fn echr_moves_the_escape_to_another_key() {
    let mut s = byte_printer_session("echr", &["-echr", "0x14"]);
    // Ctrl-A x is two bytes for the guest now; Ctrl-T is the escape.
    s.type_keys(b"\x01x");
    s.expect("<01>", ANSWER);
    s.expect("<78>", ANSWER);
    s.type_keys(b"\x14h");
    s.expect("C-t x    exit emulator", ANSWER);
    s.assert_running();
    s.type_keys(b"\x14x");
    assert_eq!(s.ended(ANSWER).code(), Some(0));
}

#[test]
fn signals_from_outside_stop_tandem_and_restore_the_terminal() {
    for (sig, name) in [
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGHUP, "SIGHUP"),
    ] {
        let mut s = byte_printer_session(&format!("signal_{name}"), &[]);
        // A typed Ctrl-C is the guest's; the same signal sent from outside is tandem's.
        s.type_keys(b"\x03");
        s.expect("<03>", ANSWER);
        s.signal(sig);
        let status = s.ended(ANSWER);
        assert_eq!(status.code(), Some(0), "{name}: {}", s.text());
        let said = format!("terminating on signal {sig}");
        assert!(s.text().contains(&said), "{name}: {}", s.text());
    }
}

#[test]
fn a_crash_still_restores_the_terminal() {
    use std::os::unix::process::ExitStatusExt;
    let mut s = byte_printer_session("crash", &[]);
    // As if tandem itself faulted: the handler restores the modes, then the signal kills it.
    s.signal(libc::SIGSEGV);
    let status = s.ended(ANSWER);
    assert_eq!(status.signal(), Some(libc::SIGSEGV), "{}", s.text());
}

#[test]
fn ctrl_c_stops_a_linux_guest_command_and_the_shell_answers() {
    const TEST: &str = "ctrl_c_stops_a_linux_guest_command_and_the_shell_answers";
    let f = match fixtures::fetch() {
        Ok(f) => f,
        Err(why) => return skipped(TEST, &why),
    };
    let mut s = Session::start(&[
        "-accel",
        "tcg",
        "-m",
        "512",
        "-nographic",
        "-kernel",
        f.vmlinuz.to_str().unwrap(),
        "-initrd",
        f.initramfs.to_str().unwrap(),
        "-append",
        "console=ttyS0 tandem.shell=1",
    ]);
    let booted = Instant::now();
    s.expect("tandem# ", LINUX_PROMPT_GUARD);
    eprintln!("{TEST}: shell prompt after {:.0?}", booted.elapsed());
    s.type_keys(b"sleep 30\r");
    s.expect("sleep 30", ANSWER);
    std::thread::sleep(Duration::from_secs(1));
    let stopped = Instant::now();
    s.type_keys(b"\x03");
    s.expect("tandem# ", ANSWER);
    assert!(
        stopped.elapsed() < Duration::from_secs(25),
        "the prompt came back only after the sleep ended"
    );
    s.type_keys(b"echo alive-$((6*7))\r");
    s.expect("alive-42", ANSWER);
    // The fixture kernel has CONFIG_MAGIC_SYSRQ_SERIAL: a break then `h` prints SysRq's help.
    s.type_keys(b"\x01b");
    std::thread::sleep(Duration::from_millis(500));
    s.type_keys(b"h");
    s.expect("sysrq: HELP", ANSWER);
    s.type_keys(b"\x01x");
    assert_eq!(s.ended(ANSWER).code(), Some(0));
}
