//! Boots the Linux guest fixture (Debian's cloud kernel and the busybox initramfs around
//! fixtures/init.sh, see fixtures/README.md) on the whole machine, as a user would with
//! `tandem -accel tcg -m 512 -nographic -no-reboot -kernel vmlinuz -initrd initramfs.cpio
//! -append console=ttyS0`, and checks what /init reports on the serial console (stdout), and
//! that the guest's power-off ends the process with status 0.
//!
//! A guest that has not finished after `HANG_GUARD`, or has printed nothing for
//! `SILENCE_GUARD`, is killed and the test fails saying so (guards against a hung run, not
//! speed requirements); a kernel that reports it has stopped for good (`DEAD_ENDS`) ends the
//! run at once. That machinery is tests/common/linux_guest.rs, shared with
//! tests/linux_disk.rs.
//! A failure names every marker that is missing or wrong and shows the console's last lines.
//! Without the fixtures (no network) the tests report themselves skipped.
//!
//! `TANDEM_BOOT_TEST_EMULATOR` replaces the `tandem` binary with another command taking the
//! same QEMU-spelled options, its words separated by spaces: for example
//! `TANDEM_BOOT_TEST_EMULATOR="qemu-system-x86_64 -cpu Nehalem" cargo test --test linux_boot`
//! checks these tests against the reference (QEMU's default CPU lacks SSSE3 and SSE4, which
//! the flags check wants).

mod common;

use std::path::Path;

use common::linux_guest::{fixtures_or_skip, marker, markers, Guest, Stop, PROMPT};
use common::skipped;

/// The x86-64-v2 features, as /proc/cpuinfo names them (SSE3 is "pni").
const X86_64_V2_FLAGS: &[&str] = &[
    "pni", "ssse3", "sse4_1", "sse4_2", "popcnt", "cx16", "lahf_lm",
];

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
    let mut g = Guest::boot(accel, &f, "console=ttyS0", &[]);
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
    let mut g = Guest::boot("tcg", &f, "console=ttyS0 tandem.shell=1", &[]);
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
