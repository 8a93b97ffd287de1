//! Boots the Linux guest fixture (Debian's cloud kernel and the busybox initramfs around
//! fixtures/init.sh, see fixtures/README.md) on the whole machine, as a user would with
//! `tandem -accel tcg -m 512 -nographic -no-reboot -kernel vmlinuz -initrd initramfs.cpio
//! -append console=ttyS0`, and checks what /init reports on the serial console (stdout), and
//! that the guest's power-off ends the process with status 0.
//!
//! A guest that has not finished after [`HANG_GUARD`], or has printed nothing for
//! [`SILENCE_GUARD`], is killed and the test fails saying so (guards against a hung run, not
//! speed requirements); a kernel that reports it has stopped for good ([`DEAD_ENDS`]) ends the
//! run at once.
//! A failure names every marker that is missing or wrong and shows the console's last lines.
//! Without the fixtures (no network) the tests report themselves skipped.
//!
//! `TANDEM_BOOT_TEST_EMULATOR` replaces the `tandem` binary with another command taking the
//! same QEMU-spelled options, its words separated by spaces: for example
//! `TANDEM_BOOT_TEST_EMULATOR="qemu-system-x86_64 -cpu Nehalem" cargo test --test linux_boot`
//! checks these tests against the reference (QEMU's default CPU lacks SSSE3 and SSE4, which
//! the flags check wants).

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fixtures::{fetch, Fixtures};
use common::skipped;

/// How long a boot may run before it is taken for hung and killed. Measured on this project's
/// machines (2 cores): QEMU 7.2's tcg runs /init to the power-off in 4-7 s; tandem's release
/// build in about 30 s; its debug build, which `cargo test` runs, in about 160 s alone and
/// about 290 s with the two boots of this file in parallel on a busy machine. A hung boot
/// holds CI for at most this long.
const HANG_GUARD: Duration = Duration::from_secs(10 * 60);

/// How long a guest may print nothing before it is taken for hung, which frees CI early from a
/// guest stuck waiting for an interrupt that never comes. The longest silences of a boot are
/// before the kernel's first message (the decompressor and early setup) and while /init
/// builds its 64 KiB of data: under QEMU well under a second, under tandem's debug build about
/// 57 s and 40 s.
const SILENCE_GUARD: Duration = Duration::from_secs(5 * 60);

/// Console text after which the kernel does nothing more, and what it means.
const DEAD_ENDS: &[(&str, &str)] = &[
    // The last line of a panic report; after it the kernel spins forever (panic=0).
    ("---[ end Kernel panic", "the kernel panicked"),
    // fpu__init_system_early_generic: CPUID shows no x87 FPU, and the kernel halts for good.
    (
        "x86/fpu: Giving up, no FPU found",
        "the kernel found no x87 FPU in CPUID and stopped",
    ),
];

/// Console lines shown with a failure.
const TAIL_LINES: usize = 80;

/// The x86-64-v2 features, as /proc/cpuinfo names them (SSE3 is "pni").
const X86_64_V2_FLAGS: &[&str] = &[
    "pni", "ssse3", "sse4_1", "sse4_2", "popcnt", "cx16", "lahf_lm",
];

/// The shell prompt fixtures/init.sh sets with `tandem.shell=1`.
const PROMPT: &str = "tandem# ";

/// The fixtures, or None after reporting `test` skipped.
fn fixtures_or_skip(test: &str) -> Option<(Fixtures, String)> {
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
struct Streams {
    console: Vec<u8>,
    stderr: Vec<u8>,
    /// Readers that reached end of file: 2 once the process has closed both pipes.
    closed: usize,
}

/// Why a wait ended.
#[derive(Debug, PartialEq)]
enum Stop {
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
struct Guest {
    /// The command line, for messages.
    command: String,
    child: Child,
    stdin: ChildStdin,
    streams: Arc<Mutex<Streams>>,
    started: Instant,
}

impl Guest {
    /// Starts the emulator on the fixtures with `accel` and the kernel command line `append`.
    fn boot(accel: &str, f: &Fixtures, append: &str) -> Guest {
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
        ] {
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
        let words: Vec<String> = std::iter::once(&program).chain(&args).map(quote).collect();
        let command = words.join(" ");
        println!("running {command}");
        // stdin stays open and idle, as a terminal nobody types on, until the test types.
        let mut child = Command::new(&program)
            .args(&args)
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
    fn console_len(&self) -> usize {
        self.streams.lock().unwrap().console.len()
    }

    /// The console output from byte `from` on, as text without carriage returns.
    fn console_from(&self, from: usize) -> String {
        let s = self.streams.lock().unwrap();
        String::from_utf8_lossy(&s.console[from.min(s.console.len())..]).replace('\r', "")
    }

    fn console(&self) -> String {
        self.console_from(0)
    }

    /// Waits until `seen(console text)` holds, the process exits, the kernel reaches a dead
    /// end, or a guard runs out. Polls: an emulator may write the console a byte at a time,
    /// and looking at the whole text on every byte would cost more than the guest.
    fn wait_for(&self, seen: impl Fn(&str) -> bool) -> Stop {
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
    fn send(&mut self, text: &str) {
        self.stdin
            .write_all(text.as_bytes())
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("typing {text:?}: {e}"));
    }

    /// Waits for the process to end by itself; its exit status, or why it did not end.
    fn run_to_exit(&mut self) -> Result<ExitStatus, String> {
        match self.wait_for(|_| false) {
            Stop::Exited => Ok(self.child.wait().expect("wait for the emulator")),
            stop => Err(self.stop_reason(stop, "the power-off")),
        }
    }

    /// Words for a wait that ended by `stop` before `what`.
    fn stop_reason(&self, stop: Stop, what: &str) -> String {
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

    /// Ends the emulator if it still runs, and returns `problem` with the command, the
    /// emulator's stderr and the console's last lines.
    fn failure(&mut self, problem: &str) -> String {
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
fn emulator() -> (String, Vec<String>) {
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
fn markers(console: &str) -> Vec<&str> {
    console
        .lines()
        .filter_map(|l| l.find("TANDEM-").map(|at| l[at..].trim_end()))
        .collect()
}

/// The rest of the first marker `name`, when there is one.
fn marker<'a>(markers: &[&'a str], name: &str) -> Option<&'a str> {
    markers.iter().find_map(|m| {
        let rest = m.strip_prefix(name)?;
        if rest.is_empty() || rest.starts_with(' ') {
            Some(rest.trim_start())
        } else {
            None
        }
    })
}

/// The commands fixtures/init.sh reports on: the NAME of each `check NAME ...` and
/// `expect NAME ...` line, so a command that never reported (init died, hung or skipped it)
/// is noticed as well as one that failed.
fn init_commands() -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/init.sh");
    let text = std::fs::read_to_string(&script).unwrap();
    let names: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("check ").or(l.strip_prefix("expect ")))
        .filter_map(|rest| rest.split_whitespace().next().map(String::from))
        .collect();
    assert!(
        names.len() >= 30,
        "only {} commands found in {}: has its check/expect format changed?",
        names.len(),
        script.display()
    );
    names
}

/// Everything wrong with what /init reported on `console`, one line each (empty: all good).
fn init_report_problems(console: &str, release: &str) -> Vec<String> {
    let m = markers(console);
    if marker(&m, "TANDEM-INIT-START").is_none() {
        return vec!["no TANDEM-INIT-START: /init never ran".into()];
    }
    let mut problems = Vec::new();
    match marker(&m, "TANDEM-KERNEL") {
        Some(r) if r == release => {}
        got => problems.push(format!(
            "TANDEM-KERNEL {got:?}: want the fixture's release {release:?}"
        )),
    }
    match marker(&m, "TANDEM-CPU-FLAGS") {
        Some(flags) => {
            let have: Vec<&str> = flags.split_whitespace().collect();
            // The SSE levels run on the host CPU under the JIT: offered only where the host
            // has them (every x86-64-v2 host, Intel or AMD, does).
            let host = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
            let host: Vec<&str> = host
                .lines()
                .find_map(|l| l.strip_prefix("flags"))
                .map(|l| {
                    l.trim_start_matches([' ', '\t', ':'])
                        .split_whitespace()
                        .collect()
                })
                .unwrap_or_default();
            let on_host = ["pni", "ssse3", "sse4_1", "sse4_2"];
            let missing: Vec<&str> = X86_64_V2_FLAGS
                .iter()
                .copied()
                .filter(|f| !have.contains(f))
                .filter(|f| !on_host.contains(f) || host.contains(f))
                .collect();
            if !missing.is_empty() {
                problems.push(format!(
                    "/proc/cpuinfo lacks x86-64-v2 flags {missing:?} (flags: {flags})"
                ));
            }
        }
        None => problems.push("no TANDEM-CPU-FLAGS".into()),
    }
    if marker(&m, "TANDEM-SHA256-OK").is_none() {
        problems.push(format!(
            "no TANDEM-SHA256-OK: the generated data hashed to {:?}",
            marker(&m, "TANDEM-SHA256")
        ));
    }
    let (mut failed, mut silent) = (Vec::new(), Vec::new());
    for name in init_commands() {
        match marker(&m, &format!("TANDEM-CMD {name}")) {
            Some("ok") => {}
            Some(_) => failed.push(name),
            None => silent.push(name),
        }
    }
    if !failed.is_empty() {
        problems.push(format!(
            "commands that failed (their output follows each TANDEM-CMD line): {failed:?}"
        ));
    }
    if !silent.is_empty() {
        problems.push(format!("commands that never reported: {silent:?}"));
    }
    if marker(&m, "TANDEM-TMPFS-OK").is_none() {
        problems.push("no TANDEM-TMPFS-OK: the tmpfs file did not read back".into());
    }
    if uptime(&m, "TANDEM-UPTIME").is_none() {
        problems.push(format!(
            "TANDEM-UPTIME {:?}: want the seconds from /proc/uptime",
            marker(&m, "TANDEM-UPTIME")
        ));
    }
    match marker(&m, "TANDEM-INIT-DONE") {
        Some("0 failures") => {}
        got => problems.push(format!("TANDEM-INIT-DONE {got:?}: want \"0 failures\"")),
    }
    problems
}

/// The first number of the /proc/uptime copy in marker `name`.
fn uptime(markers: &[&str], name: &str) -> Option<f64> {
    let up: f64 = marker(markers, name)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    up.is_finite().then_some(up)
}

/// Boots to the end of /init on `accel` and checks every marker and the exit status.
fn boot_to_init(test: &str, accel: &str) {
    let Some((f, release)) = fixtures_or_skip(test) else {
        return;
    };
    let mut g = Guest::boot(accel, &f, "console=ttyS0");
    let status = g.run_to_exit();
    let wall = g.started.elapsed();
    let console = g.console();
    let mut problems = init_report_problems(&console, &release);
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => problems.push(format!("the emulator ended with {s}, want status 0")),
        Err(why) => problems.push(why),
    }
    if !problems.is_empty() {
        panic!("{test}:\n{}", g.failure(&problems.join("\n")));
    }
    // For the record (cargo test -- --nocapture), never asserted.
    let m = markers(&console);
    let seconds = |name| uptime(&m, name).map_or("?".into(), |s| format!("{s:.2}"));
    println!(
        "{test}: powered off after {:.2} s wall; guest uptime {} s at init, {} s at the end",
        wall.as_secs_f64(),
        seconds("TANDEM-UPTIME"),
        seconds("TANDEM-UPTIME-END"),
    );
}

#[test]
fn tcg_boots_to_init_and_powers_off() {
    boot_to_init("tcg_boots_to_init_and_powers_off", "tcg");
}

#[test]
fn kvm_boots_to_init() {
    const TEST: &str = "kvm_boots_to_init";
    if let Err(why) = common::kvm_hardware_virtualization() {
        return skipped(TEST, &why);
    }
    boot_to_init(TEST, "kvm");
}

#[test]
fn tcg_shell_takes_serial_input() {
    const TEST: &str = "tcg_shell_takes_serial_input";
    let Some((f, release)) = fixtures_or_skip(TEST) else {
        return;
    };
    let mut g = Guest::boot("tcg", &f, "console=ttyS0 tandem.shell=1");
    let prompts = |text: &str| text.matches(PROMPT).count();
    let stop = g.wait_for(|c| prompts(c) >= 1);
    if stop != Stop::Seen {
        let why = g.stop_reason(stop, "the shell prompt");
        panic!("{TEST}:\n{}", g.failure(&why));
    }
    let mut problems = Vec::new();
    for (command, want) in [
        ("echo $((6*7))", "42"),
        ("uname -r", release.as_str()),
        // One vCPU: neither engine runs SMP guests yet.
        ("cat /proc/cpuinfo | grep -c processor", "1"),
    ] {
        // One command at a time, each after its prompt, as a person types.
        let from = g.console_len();
        let before = prompts(&g.console());
        g.send(&format!("{command}\n"));
        let stop = g.wait_for(|c| prompts(c) > before);
        if stop != Stop::Seen {
            let why = g.stop_reason(stop, &format!("the prompt after `{command}`"));
            panic!("{TEST}:\n{}", g.failure(&why));
        }
        // The echo of the command, its output, and the next prompt; the output is whole lines.
        let answer = g.console_from(from);
        if !answer.lines().any(|l| l.trim() == want) {
            problems.push(format!(
                "`{command}` answered {answer:?}: want a line {want:?}"
            ));
        }
    }
    g.send("poweroff -f\n");
    match g.run_to_exit() {
        Ok(s) if s.success() => {}
        Ok(s) => problems.push(format!("the emulator ended with {s}, want status 0")),
        Err(why) => problems.push(why),
    }
    if !problems.is_empty() {
        panic!("{TEST}:\n{}", g.failure(&problems.join("\n")));
    }
}

/// The report check itself, on made-up consoles: it passes a complete report (with CRLF line
/// ends and a kernel message in front of a marker, as a serial console gives them) and names
/// each thing wrong with a broken one.
#[test]
fn init_report_check_names_what_is_wrong() {
    let commands = init_commands();
    let good = |cmd_line: &dyn Fn(&str) -> String| {
        let mut c = String::from("[    1.0] Run /init as init process\r\nTANDEM-INIT-START\r\n");
        c += "TANDEM-UPTIME 1.70 0.00\r\nTANDEM-KERNEL 6.1.0-48-cloud-amd64\r\n";
        c += "[    2.1] clocksource: Switched to clocksource tscTANDEM-CPU-FLAGS  fpu pni ssse3 \
              cx16 sse4_1 sse4_2 popcnt lahf_lm\r\n";
        c += "TANDEM-SHA256 7dac\r\nTANDEM-SHA256-OK\r\n";
        for name in &commands {
            c += &cmd_line(name);
        }
        c + "TANDEM-TMPFS-OK\r\nTANDEM-UPTIME-END 4.1 0.0\r\nTANDEM-INIT-DONE 0 failures\r\n"
    };
    let ok = good(&|n| format!("TANDEM-CMD {n} ok\r\n")).replace('\r', "");
    let release = "6.1.0-48-cloud-amd64";
    assert_eq!(init_report_problems(&ok, release), Vec::<String>::new());

    let (first, second) = (commands[0].as_str(), commands[1].as_str());
    let broken = good(&|n| match n {
        n if n == first => format!("TANDEM-CMD {n} FAIL\n  got: nothing\n"),
        n if n == second => String::new(),
        n => format!("TANDEM-CMD {n} ok\n"),
    })
    .replace("\r", "")
    .replace(" popcnt", "")
    .replace("TANDEM-SHA256-OK\n", "")
    .replace("TANDEM-TMPFS-OK\n", "")
    .replace("UPTIME 1.70", "UPTIME ?")
    .replace("0 failures", "1 failures");
    let problems = init_report_problems(&broken, release).join("\n");
    for want in [
        "[\"popcnt\"]",
        "no TANDEM-SHA256-OK",
        &format!("failed (their output follows each TANDEM-CMD line): [{first:?}]"),
        &format!("never reported: [{second:?}]"),
        "no TANDEM-TMPFS-OK",
        "TANDEM-UPTIME Some(\"? 0.00\")",
        "TANDEM-INIT-DONE Some(\"1 failures\")",
    ] {
        assert!(problems.contains(want), "{want:?} not in:\n{problems}");
    }
    assert_eq!(problems.lines().count(), 7, "{problems}");
    let other_kernel = init_report_problems(&ok, "6.1.0-49-cloud-amd64");
    assert_eq!(other_kernel.len(), 1, "{other_kernel:?}");
    assert_eq!(
        init_report_problems("[    9.9] Kernel panic\n", release),
        ["no TANDEM-INIT-START: /init never ran"]
    );
}
