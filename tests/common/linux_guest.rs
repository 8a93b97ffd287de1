//! Running the Linux guest fixture (fixtures/README.md) under the emulator, for the tests that
//! boot it (tests/linux_boot.rs, tests/linux_disk.rs): the command line a user would type
//! (`tandem -accel tcg -m 512 -nographic -no-reboot -kernel vmlinuz -initrd initramfs.cpio
//! -append ...`, plus a test's own arguments), the console (stdout) and stderr collected by
//! reader threads, waits for console text that give up at a dead end or when a guard runs out,
//! typing on the serial console, and failure messages with the console's last lines.
//!
//! A guest that has not finished after [`HANG_GUARD`], or has printed nothing for
//! [`SILENCE_GUARD`], is taken for hung (guards against a hung run, not speed requirements); a
//! kernel that reports it has stopped for good ([`DEAD_ENDS`]) ends a wait at once.
//!
//! `TANDEM_BOOT_TEST_EMULATOR` replaces the `tandem` binary with another command taking the
//! same QEMU-spelled options, its words separated by spaces (see tests/linux_boot.rs).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::fixtures::{fetch, Fixtures};
use super::skipped;

/// How long a boot may run before it is taken for hung and killed. Measured on this project's
/// machines (2 cores): QEMU 7.2's tcg runs /init to the power-off in 4-7 s; tandem's release
/// build in about 30 s; its debug build, which `cargo test` runs, in about 160 s alone and
/// about 290 s with the two boots of tests/linux_boot.rs in parallel on a busy machine. A hung
/// boot holds CI for at most this long.
pub const HANG_GUARD: Duration = Duration::from_secs(10 * 60);

/// How long a guest may print nothing before it is taken for hung, which frees CI early from a
/// guest stuck waiting for an interrupt that never comes. The longest silences of a boot are
/// before the kernel's first message (the decompressor and early setup) and while /init
/// builds its 64 KiB of data: under QEMU well under a second, under tandem's debug build about
/// 57 s and 40 s.
pub const SILENCE_GUARD: Duration = Duration::from_secs(5 * 60);

/// Console text after which the kernel does nothing more, and what it means.
pub const DEAD_ENDS: &[(&str, &str)] = &[
    // The last line of a panic report; after it the kernel spins forever (panic=0).
    ("---[ end Kernel panic", "the kernel panicked"),
    // fpu__init_system_early_generic: CPUID shows no x87 FPU, and the kernel halts for good.
    (
        "x86/fpu: Giving up, no FPU found",
        "the kernel found no x87 FPU in CPUID and stopped",
    ),
];

/// Console lines shown with a failure.
pub const TAIL_LINES: usize = 80;

/// The shell prompt fixtures/init.sh sets with `tandem.shell=1`.
pub const PROMPT: &str = "tandem# ";

/// The fixtures, or None after reporting `test` skipped.
pub fn fixtures_or_skip(test: &str) -> Option<(Fixtures, String)> {
    let f = match fetch() {
        Ok(f) => f,
        Err(why) => {
            skipped(test, &why);
            return None;
        }
    };
    let release = f.kernel_release().expect("the fixture kernel's release");
    Some((f, release))
}

/// What the reader threads collect from the emulator.
#[derive(Default)]
pub struct Streams {
    pub console: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Readers that reached end of file: 2 once the process has closed both pipes.
    pub closed: usize,
}

/// Why a wait ended.
#[derive(Debug, PartialEq)]
pub enum Stop {
    /// What was waited for is on the console.
    Seen,
    /// The process closed its output (it exited) first.
    Exited,
    /// The kernel reached one of the [`DEAD_ENDS`] first: what it means.
    DeadEnd(&'static str),
    /// The hang guard ran out first.
    Hung,
    /// The silence guard ran out first.
    Silent,
}

/// A running emulator with the guest on its serial console.
pub struct Guest {
    /// The command line, for messages.
    pub command: String,
    pub child: Child,
    pub stdin: ChildStdin,
    pub streams: Arc<Mutex<Streams>>,
    pub started: Instant,
}

impl Guest {
    /// Starts the emulator on the fixtures with `accel`, the kernel command line `append` and
    /// the `extra` arguments after the common ones (disks, for example).
    pub fn boot(accel: &str, f: &Fixtures, append: &str, extra: &[&str]) -> Guest {
        Guest::boot_with_env(accel, f, append, extra, &[])
    }

    /// As [`Guest::boot`], with the variables `env` added to the emulator's environment.
    pub fn boot_with_env(
        accel: &str,
        f: &Fixtures,
        append: &str,
        extra: &[&str],
        env: &[(&str, &Path)],
    ) -> Guest {
        let (program, mut args) = emulator();
        let path = |p: &Path| p.to_str().expect("UTF-8 fixture path").to_string();
        for a in [
            "-accel",
            accel,
            "-m",
            "512",
            "-nographic",
            "-no-reboot",
            "-kernel",
            &path(&f.vmlinuz),
            "-initrd",
            &path(&f.initramfs),
            "-append",
            append,
        ]
        .into_iter()
        .chain(extra.iter().copied())
        {
            args.push(a.to_string());
        }
        // Quoted where needed, so the line can be pasted into a shell to reproduce the run.
        let quote = |w: &String| {
            if w.contains(' ') {
                format!("\"{w}\"")
            } else {
                w.clone()
            }
        };
        let vars = env.iter().map(|(k, v)| format!("{k}={}", path(v)));
        let words: Vec<String> = vars
            .chain(std::iter::once(&program).chain(&args).map(quote))
            .collect();
        let command = words.join(" ");
        println!("running {command}");
        // stdin stays open and idle, as a terminal nobody types on, until the test types.
        let mut child = Command::new(&program)
            .args(&args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let streams = Arc::new(Mutex::new(Streams::default()));
        pump(child.stdout.take().unwrap(), &streams, |s| &mut s.console);
        pump(child.stderr.take().unwrap(), &streams, |s| &mut s.stderr);
        Guest {
            command,
            stdin: child.stdin.take().unwrap(),
            child,
            streams,
            started: Instant::now(),
        }
    }

    /// Bytes of console output so far.
    pub fn console_len(&self) -> usize {
        self.streams.lock().unwrap().console.len()
    }

    /// The console output from byte `from` on, as text without carriage returns.
    pub fn console_from(&self, from: usize) -> String {
        let s = self.streams.lock().unwrap();
        String::from_utf8_lossy(&s.console[from.min(s.console.len())..]).replace('\r', "")
    }

    pub fn console(&self) -> String {
        self.console_from(0)
    }

    /// Waits until `seen(console text)` holds, the process exits, the kernel reaches a dead
    /// end, or a guard runs out. Polls: an emulator may write the console a byte at a time,
    /// and looking at the whole text on every byte would cost more than the guest.
    pub fn wait_for(&self, seen: impl Fn(&str) -> bool) -> Stop {
        let deadline = self.started + HANG_GUARD;
        let (mut heard, mut heard_at) = (usize::MAX, Instant::now());
        loop {
            // Read before looking, so that nothing written before the end is missed.
            let closed = self.streams.lock().unwrap().closed == 2;
            let text = self.console();
            if seen(&text) {
                return Stop::Seen;
            }
            if let Some((_, why)) = DEAD_ENDS.iter().find(|(t, _)| text.contains(t)) {
                return Stop::DeadEnd(why);
            }
            if closed {
                return Stop::Exited;
            }
            let now = Instant::now();
            if text.len() != heard {
                (heard, heard_at) = (text.len(), now);
            }
            if now >= deadline {
                return Stop::Hung;
            }
            if now >= heard_at + SILENCE_GUARD {
                return Stop::Silent;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types `text` on the serial console.
    pub fn send(&mut self, text: &str) {
        self.stdin
            .write_all(text.as_bytes())
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("typing {text:?}: {e}"));
    }

    /// Waits for the process to end by itself; its exit status, or why it did not end.
    pub fn run_to_exit(&mut self) -> Result<ExitStatus, String> {
        match self.wait_for(|_| false) {
            Stop::Exited => Ok(self.child.wait().expect("wait for the emulator")),
            stop => Err(self.stop_reason(stop, "the power-off")),
        }
    }

    /// Words for a wait that ended by `stop` before `what`.
    pub fn stop_reason(&self, stop: Stop, what: &str) -> String {
        match stop {
            Stop::Seen => format!("{what}: seen"),
            Stop::Exited => format!("the emulator exited before {what}"),
            Stop::DeadEnd(why) => format!("{why} before {what}"),
            Stop::Hung => format!(
                "{what} did not come within {} minutes: killed as hung",
                HANG_GUARD.as_secs() / 60
            ),
            Stop::Silent => format!(
                "the console was silent for {} minutes before {what}: killed as hung",
                SILENCE_GUARD.as_secs() / 60
            ),
        }
    }

    /// Kills the emulator with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Ends the emulator if it still runs, and returns `problem` with the command, the
    /// emulator's stderr and the console's last lines.
    pub fn failure(&mut self, problem: &str) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let console = self.console();
        let lines: Vec<&str> = console.lines().collect();
        let tail = if lines.is_empty() {
            "(nothing was written to the console)".to_string()
        } else {
            lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
        };
        let stderr = String::from_utf8_lossy(&self.streams.lock().unwrap().stderr)
            .trim_end()
            .to_string();
        format!(
            "{problem}\ncommand: {}\nafter {:.1} s; stderr: {}\n\
             ---- last {} lines of the console ----\n{tail}\n---- end of the console ----",
            self.command,
            self.started.elapsed().as_secs_f64(),
            if stderr.is_empty() {
                "(empty)"
            } else {
                &stderr
            },
            TAIL_LINES.min(lines.len()),
        )
    }
}

impl Drop for Guest {
    /// A failing test must not leave an emulator running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies `from` into the stream `field` picks, counting its end in `closed`.
fn pump(
    mut from: impl Read + Send + 'static,
    streams: &Arc<Mutex<Streams>>,
    field: fn(&mut Streams) -> &mut Vec<u8>,
) {
    let streams = streams.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let n = from.read(&mut buf).unwrap_or(0);
            let mut s = streams.lock().unwrap();
            if n == 0 {
                s.closed += 1;
                return;
            }
            field(&mut s).extend_from_slice(&buf[..n]);
        }
    });
}

/// The program to run and its first arguments: the built `tandem`, or the command in
/// TANDEM_BOOT_TEST_EMULATOR.
pub fn emulator() -> (String, Vec<String>) {
    if let Ok(command) = std::env::var("TANDEM_BOOT_TEST_EMULATOR") {
        let mut words = command.split_whitespace().map(String::from);
        if let Some(program) = words.next() {
            return (program, words.collect());
        }
    }
    (env!("CARGO_BIN_EXE_tandem").to_string(), Vec::new())
}

/// The markers on the console: each line's text from `TANDEM-` on (a kernel message may
/// have been written in front of a marker on the same line).
pub fn markers(console: &str) -> Vec<&str> {
    console
        .lines()
        .filter_map(|l| l.find("TANDEM-").map(|at| l[at..].trim_end()))
        .collect()
}

/// The rest of the first marker `name`, when there is one.
pub fn marker<'a>(markers: &[&'a str], name: &str) -> Option<&'a str> {
    markers.iter().find_map(|m| {
        let rest = m.strip_prefix(name)?;
        if rest.is_empty() || rest.starts_with(' ') {
            Some(rest.trim_start())
        } else {
            None
        }
    })
}
