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
    CI_CLASSES, CI_PER_CLASS, CI_PER_FP_CLASS,
};

/// Run random instruction sequences on KVM and the JIT's tiers and compare the results.
#[derive(Debug, Parser)]
#[command(
    name = "tandem difftest",
    about,
    after_help = "With no options: the CI seed set (seeds 0..2500 of each general-purpose class, \
                  0..1000 of each floating-point one).\n\
                  Without /dev/kvm the tcg tiers are compared with the recorded expectations."
)]
struct DiffArgs {
    /// The first seed.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// Sequences per class (default: the CI set's, 2500 per general-purpose class and 1000
    /// per floating-point one).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Classes, comma-separated (arith shift muldiv bits move stack string flags control
    /// mixed sse_float sse_convert sse_int sse_move sse42 mmx x87 fxsave fp_mixed), `ci` (the CI seed
    /// set's), `fp` (the floating-point ones) or `all`.
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
    pub plans: Vec<Plan>,
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
    } else if a.class == "fp" {
        Class::FP.to_vec()
    } else {
        a.class
            .split(',')
            .map(|n| {
                Class::from_name(n).ok_or_else(|| {
                    let names: Vec<&str> = Class::ALL.iter().map(|c| c.name()).collect();
                    CliError(format!(
                        "difftest --class: unknown class '{n}' ({}, ci, fp or all)",
                        names.join(" ")
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
    if a.count == Some(0) {
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
        plans: plans_for(&classes, a.seed, a.count),
        soak: a.soak.map(Duration::from_secs),
        engines,
        record: a.record,
        expectations: a
            .expectations
            .unwrap_or_else(|| PathBuf::from(expectations::DEFAULT_PATH)),
        max_reports: a.max_reports,
    })))
}

/// The plans for `classes` from `first_seed`: one with `count` sequences per class, or without
/// a count the CI set's numbers (general-purpose and floating-point classes apart).
fn plans_for(classes: &[Class], first_seed: u64, count: Option<u64>) -> Vec<Plan> {
    let plan = |classes: Vec<Class>, count| Plan {
        classes,
        first_seed,
        count,
    };
    if let Some(n) = count {
        return vec![plan(classes.to_vec(), n)];
    }
    let (fp, int): (Vec<Class>, Vec<Class>) = classes.iter().partition(|c| c.is_fp());
    [plan(int, CI_PER_CLASS), plan(fp, CI_PER_FP_CLASS)]
        .into_iter()
        .filter(|p| !p.classes.is_empty())
        .collect()
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
    let mut plans = req.plans.clone();
    if deadline.is_some() {
        // Fresh seeds, away from the CI set.
        let fresh = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() << 20)
            .unwrap_or(1 << 40);
        for p in plans.iter_mut().filter(|p| p.first_seed == 0) {
            p.first_seed = fresh;
        }
    }
    let mut reports = 0usize;
    let mut done = 0u64;
    let total: u64 = plans.iter().map(|p| p.count * p.classes.len() as u64).sum();
    let mut last_progress = Instant::now();
    let mut out_of_time = false;
    loop {
        for plan in &plans {
            if out_of_time {
                break;
            }
            run_plan(&mut runner, plan, |c| {
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
                        None => {
                            println!("progress: {done}/{total} sequences, {reports} differences")
                        }
                    }
                    let _ = std::io::stdout().flush();
                }
                out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
                !out_of_time
            })
            .map_err(fail)?;
        }
        match deadline {
            Some(d) if Instant::now() < d => {
                for p in &mut plans {
                    p.first_seed = p.first_seed.wrapping_add(p.count);
                }
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
        "# Only what every x86-64 CPU computes alike is hashed (src/difftest/undefined.rs), so"
            .to_string(),
        "# the file holds on Intel and AMD hosts whichever it was recorded on.".to_string(),
        expectations::recorded_on_line(&crate::difftest::host::description()),
    ];
    let mut done = 0u64;
    for plan in &req.plans {
        run_plan(&mut runner, plan, |c| {
            if let Some(h) = c.kvm_hash {
                lines.push(expectations::line(c.sequence.class, c.sequence.seed, h));
            }
            done += 1;
            true
        })?;
    }
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
        assert_eq!(r.plans.len(), 2);
        assert_eq!(r.plans[0].count, CI_PER_CLASS);
        assert_eq!(r.plans[0].classes, Class::INTEGER.to_vec());
        assert_eq!(r.plans[1].count, CI_PER_FP_CLASS);
        assert_eq!(r.plans[1].classes, Class::FP.to_vec());
        let all = diff(&["--class", "all", "--count", "7"]).unwrap().plans;
        assert_eq!((all.len(), all[0].classes.len(), all[0].count), (1, 19, 7));
        let fp = diff(&["--class", "fp"]).unwrap().plans;
        assert_eq!((fp.len(), fp[0].count), (1, CI_PER_FP_CLASS));
        let x87 = diff(&["--class", "x87,arith"]).unwrap().plans;
        assert_eq!(x87[0].classes, vec![Class::Arith]);
        assert_eq!(x87[1].classes, vec![Class::X87]);
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
        assert_eq!((r.plans[0].first_seed, r.plans[0].count), (5, 3));
        assert_eq!(r.plans[0].classes, vec![Class::Shift]);
        assert_eq!(r.engines, vec![Engine::Jit]);
        assert!(diff(&["--class", "nope"]).unwrap_err().contains("nope"));
        assert!(diff(&["--engines", "xen"]).unwrap_err().contains("xen"));
        assert!(diff(&["--count", "0"]).unwrap_err().contains("--count"));
        assert!(diff(&["--soak", "0"]).unwrap_err().contains("--soak"));
        assert!(diff(&["-bogus"]).unwrap_err().contains("-bogus"));
    }
}
