//! `tandem exec`: run an instruction snippet on one engine or on every engine built in, and
//! print its final registers, flags and end (see the `harness` module).
//!
//! Options may be written with one dash too (`-accel kvm`), as for the run command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::{normalize_with, CliError, Command};
use crate::config::AccelKind;
use crate::harness::{self, parse, report, Snippet, SnippetMode, SnippetResult};

/// Run an x86_64 instruction snippet and print its final state.
#[derive(Debug, Parser)]
#[command(
    name = "tandem exec",
    about,
    after_help = "Example: tandem exec --code \"48 01 d8\" --reg rax=0xffffffffffffffff --reg rbx=1\n\
                  The code is loaded at 0x400000 and entered there at CPL3 (user64) or CPL0 \
                  (kernel64); data regions go in 0x200000..0x4000000."
)]
struct ExecArgs {
    /// The code as hex bytes: "48 01 d8" or 4801d8.
    #[arg(long, value_name = "HEX", conflicts_with = "file")]
    code: Option<String>,
    /// Read the code (raw bytes) from this file.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// A starting register: rax..r15, rflags, mxcsr, xmm0..xmm15, fcw, fsw, ftw, st0..st7
    /// (x87 registers in FXSAVE slot order, 80 bits) (repeatable).
    #[arg(long = "reg", value_name = "NAME=VALUE")]
    regs: Vec<String>,
    /// Data to preload at a guest address, read back after the run (repeatable).
    #[arg(long = "mem", value_name = "ADDR=HEX")]
    mem: Vec<String>,
    /// Privilege: user64 (CPL3, the default) or kernel64 (CPL0; slow on PVM hosts).
    #[arg(long, value_name = "MODE", default_value = "user64")]
    mode: String,
    /// Engine: kvm, tcg, or both (every engine built in, with the differences printed).
    #[arg(long, value_name = "NAME", default_value = "kvm")]
    accel: String,
    /// Stop the snippet after this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    timeout: u64,
}

const LONG: &[&str] = &[
    "code", "file", "reg", "mem", "mode", "accel", "timeout", "help",
];
const VALUES: &[&str] = &["code", "file", "reg", "mem", "mode", "accel", "timeout"];

/// Which engines `--accel` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineChoice {
    /// One engine.
    One(AccelKind),
    /// Every engine built in, compared.
    Both,
}

/// A parsed `tandem exec` command line.
#[derive(Debug)]
pub struct ExecRequest {
    /// What to run.
    pub snippet: Snippet,
    /// Where.
    pub engines: EngineChoice,
}

/// Parses `tandem exec ...` (`args[0]` the program, `args[1]` "exec").
pub fn parse(args: Vec<String>) -> Result<Command, CliError> {
    let rest = std::iter::once("tandem exec".to_string()).chain(args.into_iter().skip(2));
    let a = match ExecArgs::try_parse_from(normalize_with(rest, LONG, VALUES)?) {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    Ok(Command::Print(e.render().to_string()))
                }
                _ => Err(CliError(e.render().to_string().trim_end().to_string())),
            };
        }
    };
    let err = |opt: &str, e: parse::ParseError| CliError(format!("exec {opt}: {e}"));
    let code = match (&a.code, &a.file) {
        (Some(hex), _) => parse::hex_bytes(hex).map_err(|e| err("--code", e))?,
        (None, Some(path)) => std::fs::read(path).map_err(|e| {
            CliError(format!(
                "exec --file: cannot read '{}': {e}",
                path.display()
            ))
        })?,
        (None, None) => {
            return Err(CliError(
                "exec: no code given: use --code HEX or --file PATH".into(),
            ))
        }
    };
    let mut snippet = Snippet::new(code);
    for r in &a.regs {
        parse::assign(&mut snippet.initial, r).map_err(|e| err("--reg", e))?;
    }
    for m in &a.mem {
        snippet
            .memory
            .push(parse::memory(m).map_err(|e| err("--mem", e))?);
    }
    snippet.mode = match a.mode.as_str() {
        "user64" => SnippetMode::User64,
        "kernel64" => SnippetMode::Kernel64,
        m => {
            return Err(CliError(format!(
                "exec --mode: unknown mode '{m}' (user64 or kernel64)"
            )))
        }
    };
    let engines = match a.accel.as_str() {
        "kvm" => EngineChoice::One(AccelKind::Kvm),
        "tcg" => EngineChoice::One(AccelKind::Tcg),
        "both" => EngineChoice::Both,
        e => {
            return Err(CliError(format!(
                "exec --accel: unknown engine '{e}' (kvm, tcg or both)"
            )))
        }
    };
    if a.timeout == 0 {
        return Err(CliError("exec --timeout: must be at least 1 ms".into()));
    }
    snippet.limits.timeout = Duration::from_millis(a.timeout);
    // A bad snippet (a region out of RAM, a bad rflags) is a command-line error too.
    snippet
        .validate()
        .map_err(|e| CliError(format!("exec: {e}")))?;
    Ok(Command::Exec(Box::new(ExecRequest { snippet, engines })))
}

fn kind_of(name: &str) -> Option<AccelKind> {
    match name {
        "kvm" => Some(AccelKind::Kvm),
        "tcg" => Some(AccelKind::Tcg),
        _ => None,
    }
}

fn run_on(kind: AccelKind, snippet: &Snippet) -> Result<SnippetResult, CliError> {
    harness::run_snippet(kind, snippet).map_err(|e| match e {
        harness::HarnessError::Machine(crate::Error::Accel(
            tandem_accel::AccelError::NotBuilt(name),
        )) => CliError(format!(
            "exec --accel {name}: the {name} engine is not built into this binary"
        )),
        e => CliError(format!("exec --accel {}: {e}", kind.name())),
    })
}

/// Runs the request and returns what to print; Err when an engine could not run it.
pub fn run(req: &ExecRequest) -> Result<String, CliError> {
    let mode = req.snippet.mode.name();
    match req.engines {
        EngineChoice::One(kind) => {
            let r = run_on(kind, &req.snippet)?;
            Ok(format!(
                "engine: {} ({mode})\n{}",
                kind.name(),
                report::format_result(&r)
            ))
        }
        EngineChoice::Both => {
            let mut out = String::new();
            let mut results: Vec<(&str, SnippetResult)> = Vec::new();
            for (name, built, _) in tandem_accel::available_accelerators() {
                let Some(kind) = kind_of(name) else { continue };
                if !built {
                    out.push_str(&format!(
                        "engine: {name}: not built into this binary, skipped\n"
                    ));
                    continue;
                }
                let r = run_on(kind, &req.snippet)?;
                out.push_str(&format!(
                    "engine: {name} ({mode})\n{}",
                    report::format_result(&r)
                ));
                results.push((name, r));
            }
            match results.split_first() {
                Some(((first, a), rest)) if !rest.is_empty() => {
                    for (name, b) in rest {
                        let d = report::diff(a, b);
                        if d.is_empty() {
                            out.push_str(&format!("differences {first} vs {name}: none\n"));
                        } else {
                            out.push_str(&format!("differences {first} vs {name}:\n"));
                            for line in d {
                                out.push_str(&format!("  {line}\n"));
                            }
                        }
                    }
                }
                Some(((first, _), _)) => out.push_str(&format!(
                    "differences: nothing to compare (only {first} is built)\n"
                )),
                None => return Err(CliError("exec --accel both: no engine is built".into())),
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(args: &[&str]) -> Result<ExecRequest, String> {
        let v = ["tandem", "exec"]
            .iter()
            .chain(args.iter())
            .map(|s| s.to_string())
            .collect();
        match parse(v) {
            Ok(Command::Exec(r)) => Ok(*r),
            Ok(_) => Err("not exec".into()),
            Err(e) => Err(e.0),
        }
    }

    #[test]
    fn exec_lines_parse() {
        let r = exec(&[
            "--code",
            "48 01 d8",
            "--reg",
            "rax=0x10",
            "-reg",
            "rbx=2",
            "--mem",
            "0x500000=0102",
            "-accel",
            "both",
        ])
        .unwrap();
        assert_eq!(r.snippet.code, vec![0x48, 0x01, 0xd8]);
        assert_eq!(r.snippet.initial.gpr[0], 0x10);
        assert_eq!(r.snippet.initial.gpr[3], 2);
        assert_eq!(r.snippet.memory, vec![(0x50_0000, vec![1, 2])]);
        assert_eq!(r.engines, EngineChoice::Both);
        assert_eq!(r.snippet.mode, SnippetMode::User64);
    }

    #[test]
    fn exec_errors_name_the_culprit() {
        assert!(exec(&["--code", "4801d"]).unwrap_err().contains("--code"));
        assert!(exec(&["--code", "90", "--reg", "foo=1"])
            .unwrap_err()
            .contains("foo"));
        assert!(exec(&["--code", "90", "--mode", "real"])
            .unwrap_err()
            .contains("real"));
        assert!(exec(&["--code", "90", "--accel", "xen"])
            .unwrap_err()
            .contains("xen"));
        assert!(exec(&["--code", "90", "--mem", "0x1000=00"])
            .unwrap_err()
            .contains("0x1000"));
        assert!(exec(&[]).unwrap_err().contains("--code"));
        assert!(exec(&["--code", "90", "-bogus"])
            .unwrap_err()
            .contains("-bogus"));
    }
}
