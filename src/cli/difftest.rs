//! `tandem difftest`: run the differential suite — random instruction sequences on KVM and
//! both tcg tiers, compared — and print progress, the differences and a summary.
//!
//! Options may be written with one dash too, as for the run command line.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;

use super::{normalize_with, CliError, Command};
use crate::difftest::{
    expectations, run_plan, summary, Class, Engine, Expectations, OracleKind, Plan, Runner,
    CI_CLASSES, CI_PER_CLASS,
};

/// Run random instruction sequences on KVM and the JIT's tiers and compare the results.
#[derive(Debug, Parser)]
#[command(
    name = "tandem difftest",
    about,
    after_help = "With no options: the CI seed set (seeds 0..2500 of the `ci` classes).\n\
                  Without /dev/kvm the tcg tiers are compared with the recorded expectations."
)]
struct DiffArgs {
    /// The first seed.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// Sequences per class.
    #[arg(long, value_name = "N", default_value_t = CI_PER_CLASS)]
    count: u64,
    /// Classes, comma-separated (arith shift muldiv bits move stack string flags control
    /// mixed), `ci` (the CI seed set's) or `all`.
    #[arg(long, value_name = "NAME[,NAME...]", default_value = "ci")]
    class: String,
    /// Keep running batches with fresh seeds for this many seconds.
    #[arg(long, value_name = "SECONDS")]
    soak: Option<u64>,
    /// The engines, comma-separated: kvm, interp, jit.
    #[arg(long, value_name = "LIST", default_value = "kvm,interp,jit")]
    engines: String,
    /// Run on KVM only and write its results to FILE as expectations.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// The recorded expectations used without /dev/kvm.
    #[arg(long, value_name = "FILE")]
    expectations: Option<PathBuf>,
    /// Print at most this many difference reports.
    #[arg(long, value_name = "N", default_value_t = 10)]
    max_reports: usize,
}

const LONG: &[&str] = &[
    "seed",
    "count",
    "class",
    "soak",
    "engines",
    "record",
    "expectations",
    "max-reports",
    "help",
];
const VALUES: &[&str] = &[
    "seed",
    "count",
    "class",
    "soak",
    "engines",
    "record",
    "expectations",
    "max-reports",
];

/// A parsed `tandem difftest` command line.
#[derive(Debug)]
pub struct DiffRequest {
    /// The sequences (the first batch, with `--soak`).
    pub plan: Plan,
    /// Keep going with fresh seeds for this long.
    pub soak: Option<Duration>,
    /// The engines asked for.
    pub engines: Vec<Engine>,
    /// Record KVM's hashes to this file instead of comparing.
    pub record: Option<PathBuf>,
    /// The expectations file.
    pub expectations: PathBuf,
    /// How many difference reports to print.
    pub max_reports: usize,
}

/// Parses `tandem difftest ...` (`args[0]` the program, `args[1]` "difftest").
pub fn parse(args: Vec<String>) -> Result<Command, CliError> {
    let rest = std::iter::once("tandem difftest".to_string()).chain(args.into_iter().skip(2));
    let a = match DiffArgs::try_parse_from(normalize_with(rest, LONG, VALUES)?) {
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
    let classes = if a.class == "all" {
        Class::ALL.to_vec()
    } else if a.class == "ci" {
        CI_CLASSES.to_vec()
    } else {
        a.class
            .split(',')
            .map(|n| {
                Class::from_name(n).ok_or_else(|| {
                    CliError(format!(
                        "difftest --class: unknown class '{n}' (arith shift muldiv bits move \
                         stack string flags control mixed, ci or all)"
                    ))
                })
            })
            .collect::<Result<_, _>>()?
    };
    let engines = a
        .engines
        .split(',')
        .map(|n| {
            Engine::from_name(n).ok_or_else(|| {
                CliError(format!(
                    "difftest --engines: unknown engine '{n}' (kvm, interp, jit)"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if a.count == 0 {
        return Err(CliError("difftest --count: must be at least 1".into()));
    }
    if a.soak == Some(0) {
        return Err(CliError(
            "difftest --soak: must be at least 1 second".into(),
        ));
    }
    if a.record.is_some() && a.soak.is_some() {
        return Err(CliError(
            "difftest: --record and --soak exclude each other".into(),
        ));
    }
    Ok(Command::Difftest(Box::new(DiffRequest {
        plan: Plan {
            classes,
            first_seed: a.seed,
            count: a.count,
        },
        soak: a.soak.map(Duration::from_secs),
        engines,
        record: a.record,
        expectations: a
            .expectations
            .unwrap_or_else(|| PathBuf::from(expectations::DEFAULT_PATH)),
        max_reports: a.max_reports,
    })))
}

/// Runs the request, printing as it goes; Ok(true) when no difference was found.
pub fn run(req: &DiffRequest) -> Result<bool, CliError> {
    let fail = |e: crate::difftest::DiffError| CliError(format!("difftest: {e}"));
    if let Some(path) = &req.record {
        return record(req, path).map_err(fail);
    }
    // Missing or unreadable expectations only matter without KVM; the oracle line says so.
    let expectations = Expectations::load(&req.expectations).ok();
    let mut runner = Runner::new(&req.engines, expectations).map_err(fail)?;
    let engines: Vec<&str> = runner.engines().iter().map(|e| e.name()).collect();
    println!("difftest: engines {}", engines.join(","));
    if let Some(why) = &runner.kvm_missing {
        println!("difftest: KVM did not run ({why})");
    }
    match runner.oracle() {
        OracleKind::Live => println!("difftest: oracle: KVM (the host CPU), live"),
        OracleKind::Recorded => println!(
            "difftest: {}: compared against recorded expectations ({})",
            if req.engines.contains(&Engine::Kvm) {
                "no /dev/kvm"
            } else {
                "kvm not selected"
            },
            req.expectations.display()
        ),
        OracleKind::TiersOnly => println!(
            "difftest: no /dev/kvm and no recorded expectations: the tiers are compared with \
             each other only"
        ),
    }
    let start = Instant::now();
    let deadline = req.soak.map(|d| start + d);
    let mut plan = req.plan.clone();
    if deadline.is_some() && plan.first_seed == 0 {
        // Fresh seeds, away from the CI set.
        plan.first_seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() << 20)
            .unwrap_or(1 << 40);
    }
    let mut reports = 0usize;
    let mut done = 0u64;
    let total = plan.count * plan.classes.len() as u64;
    let mut last_progress = Instant::now();
    loop {
        run_plan(&mut runner, &plan, |c| {
            done += 1;
            if let Some(d) = &c.difference {
                if reports < req.max_reports {
                    println!("{d}");
                }
                reports += 1;
            }
            if last_progress.elapsed() >= Duration::from_secs(2) {
                last_progress = Instant::now();
                match deadline {
                    Some(_) => println!("progress: {done} sequences, {reports} differences"),
                    None => println!("progress: {done}/{total} sequences, {reports} differences"),
                }
                let _ = std::io::stdout().flush();
            }
            deadline.is_none_or(|d| Instant::now() < d)
        })
        .map_err(fail)?;
        match deadline {
            Some(d) if Instant::now() < d => {
                plan.first_seed = plan.first_seed.wrapping_add(plan.count)
            }
            _ => break,
        }
    }
    if reports > req.max_reports {
        println!(
            "({} more difference reports not printed)",
            reports - req.max_reports
        );
    }
    println!(
        "summary: {done} sequences in {:.1}s, {reports} with differences",
        start.elapsed().as_secs_f64()
    );
    print!("{}", summary(&runner.stats));
    Ok(reports == 0)
}

/// `--record FILE`: KVM's hashes for the plan.
fn record(req: &DiffRequest, path: &std::path::Path) -> Result<bool, crate::difftest::DiffError> {
    use crate::difftest::DiffError;
    let mut runner = Runner::new(&[Engine::Kvm], None)?;
    if let Some(why) = runner.kvm_missing.take() {
        return Err(DiffError::NoOracle(format!(
            "--record needs KVM, which did not open: {why}"
        )));
    }
    let mut lines = vec![
        "# tandem difftest expectations: SEED CLASS HASH of the masked final state, end and"
            .to_string(),
        "# memory on KVM (the host CPU at CPL3). Regenerate: tandem difftest --record FILE"
            .to_string(),
    ];
    let mut done = 0u64;
    run_plan(&mut runner, &req.plan, |c| {
        if let Some(h) = c.kvm_hash {
            lines.push(expectations::line(c.sequence.class, c.sequence.seed, h));
        }
        done += 1;
        true
    })?;
    lines.push(String::new());
    std::fs::write(path, lines.join("\n")).map_err(|source| DiffError::Io {
        path: path.display().to_string(),
        source,
    })?;
    println!("difftest: recorded {done} sequences to {}", path.display());
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(args: &[&str]) -> Result<DiffRequest, String> {
        let v = ["tandem", "difftest"]
            .iter()
            .chain(args.iter())
            .map(|s| s.to_string())
            .collect();
        match parse(v) {
            Ok(Command::Difftest(r)) => Ok(*r),
            Ok(_) => Err("not difftest".into()),
            Err(e) => Err(e.0),
        }
    }

    #[test]
    fn difftest_lines_parse() {
        let r = diff(&[]).unwrap();
        assert_eq!(r.plan.count, CI_PER_CLASS);
        assert_eq!(r.plan.classes, CI_CLASSES.to_vec());
        assert_eq!(diff(&["--class", "all"]).unwrap().plan.classes.len(), 10);
        assert_eq!(r.engines, vec![Engine::Kvm, Engine::Interp, Engine::Jit]);
        let r = diff(&[
            "--seed",
            "5",
            "-count",
            "3",
            "--class",
            "shift",
            "--engines",
            "jit",
        ])
        .unwrap();
        assert_eq!((r.plan.first_seed, r.plan.count), (5, 3));
        assert_eq!(r.plan.classes, vec![Class::Shift]);
        assert_eq!(r.engines, vec![Engine::Jit]);
        assert!(diff(&["--class", "nope"]).unwrap_err().contains("nope"));
        assert!(diff(&["--engines", "xen"]).unwrap_err().contains("xen"));
        assert!(diff(&["--count", "0"]).unwrap_err().contains("--count"));
        assert!(diff(&["--soak", "0"]).unwrap_err().contains("--soak"));
        assert!(diff(&["-bogus"]).unwrap_err().contains("-bogus"));
    }
}
