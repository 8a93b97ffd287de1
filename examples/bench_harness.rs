//! Instruction-harness throughput for `bench/micro.py` (issue 5: "`tandem exec` snippets per
//! second (library API), vs starting a process per snippet"): the library side. micro.py times
//! the process-per-snippet side itself.
//!
//! `cargo run --release --example bench_harness -- [--count N] [--fresh-count N] [--runs R]
//! [--engines LIST]` prints one JSON object with, per engine and run, snippets per second for:
//! - `reuse_same`: one [`Harness`] running the same snippet (`add rax, rbx`) N times: the
//!   steady state of a fuzzer or a differential test;
//! - `reuse_distinct`: one [`Harness`], a different snippet each time (`mov eax, imm32;
//!   add rax, rbx` with a new immediate), so the JIT cannot reuse a translation;
//! - `fresh`: [`run_snippet`], a new machine per snippet (what `tandem exec` does inside its
//!   process), `--fresh-count` times;
//!
//! and `new_seconds`, the time [`Harness::new`] takes. Engines alternate (kvm, tcg, kvm, ...)
//! within each run so a change in the machine's load hits them alike.

use std::process::ExitCode;
use std::time::Instant;

use tandem::harness::{run_snippet, Harness, Snippet, SnippetEnd};
use tandem::AccelKind;

struct Args {
    count: usize,
    fresh_count: usize,
    runs: usize,
    engines: Vec<AccelKind>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        count: 5000,
        fresh_count: 200,
        runs: 5,
        engines: vec![AccelKind::Kvm, AccelKind::Tcg],
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let number = |name: &str, v: String| -> Result<usize, String> {
            match v.parse() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{name}: a positive integer, not {v:?}")),
            }
        };
        match a.as_str() {
            "--count" => args.count = number("--count", value("--count")?)?,
            "--fresh-count" => args.fresh_count = number("--fresh-count", value("--fresh-count")?)?,
            "--runs" => args.runs = number("--runs", value("--runs")?)?,
            "--engines" => {
                args.engines = value("--engines")?
                    .split(',')
                    .map(|e| match e {
                        "kvm" => Ok(AccelKind::Kvm),
                        "tcg" => Ok(AccelKind::Tcg),
                        other => Err(format!("unknown engine {other}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// `add rax, rbx` with rax = 1, rbx = 2.
fn same_snippet() -> Snippet {
    Snippet::new(vec![0x48, 0x01, 0xd8])
        .with_gpr(0, 1)
        .with_gpr(3, 2)
}

/// `mov eax, imm; add rax, rbx`, a different immediate for each `i`.
fn distinct_snippet(i: usize) -> Snippet {
    let mut code = vec![0xb8];
    code.extend_from_slice(&(i as u32).to_le_bytes());
    code.extend_from_slice(&[0x48, 0x01, 0xd8]);
    Snippet::new(code).with_gpr(3, 2)
}

/// Checks that a run completed with rax = `want` (a throughput of wrong answers is no figure).
fn check(r: &tandem::harness::SnippetResult, want: u64) -> Result<(), String> {
    if r.end != SnippetEnd::Completed || r.state.gpr[0] != want {
        return Err(format!(
            "a snippet ended with {:?}, rax {:#x} (expected completed, {want:#x})",
            r.end, r.state.gpr[0]
        ));
    }
    Ok(())
}

/// Snippets per second over `count` runs of `make(i)` through `run`.
fn rate(
    count: usize,
    make: impl Fn(usize) -> (Snippet, u64),
    mut run: impl FnMut(&Snippet) -> Result<tandem::harness::SnippetResult, String>,
) -> Result<f64, String> {
    let snippets: Vec<(Snippet, u64)> = (0..count).map(make).collect();
    let t = Instant::now();
    for (s, want) in &snippets {
        check(&run(s)?, *want)?;
    }
    Ok(count as f64 / t.elapsed().as_secs_f64())
}

#[derive(Default)]
struct Series {
    new_seconds: Vec<f64>,
    reuse_same: Vec<f64>,
    reuse_distinct: Vec<f64>,
    fresh: Vec<f64>,
}

fn json_list(v: &[f64]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("{x:.6}")).collect();
    format!("[{}]", items.join(", "))
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_harness: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let mut series: Vec<Series> = args.engines.iter().map(|_| Series::default()).collect();
    // Warm-up, untimed: the first machine of each engine pays for loading libraries and
    // opening /dev/kvm.
    for &kind in &args.engines {
        run_snippet(kind, &same_snippet()).map_err(|e| format!("{}: {e}", kind.name()))?;
    }
    for _ in 0..args.runs {
        for (&kind, s) in args.engines.iter().zip(series.iter_mut()) {
            let name = kind.name();
            let err = |e: tandem::harness::HarnessError| format!("{name}: {e}");
            let t = Instant::now();
            let mut h = Harness::new(kind).map_err(err)?;
            s.new_seconds.push(t.elapsed().as_secs_f64());
            s.reuse_same.push(rate(
                args.count,
                |_| (same_snippet(), 3),
                |sn| h.run(sn).map_err(err),
            )?);
            s.reuse_distinct.push(rate(
                args.count,
                |i| (distinct_snippet(i), i as u64 + 2),
                |sn| h.run(sn).map_err(err),
            )?);
            s.fresh.push(rate(
                args.fresh_count,
                |_| (same_snippet(), 3),
                |sn| run_snippet(kind, sn).map_err(err),
            )?);
            eprintln!(
                "bench_harness: {name}: {:.0} snippets/s reused, {:.0} distinct, {:.0} fresh",
                s.reuse_same.last().unwrap_or(&0.0),
                s.reuse_distinct.last().unwrap_or(&0.0),
                s.fresh.last().unwrap_or(&0.0)
            );
        }
    }
    let engines: Vec<String> = args
        .engines
        .iter()
        .zip(&series)
        .map(|(kind, s)| {
            format!(
                "\"{}\": {{\"new_seconds\": {}, \"reuse_same\": {}, \"reuse_distinct\": {}, \"fresh\": {}}}",
                kind.name(),
                json_list(&s.new_seconds),
                json_list(&s.reuse_same),
                json_list(&s.reuse_distinct),
                json_list(&s.fresh)
            )
        })
        .collect();
    println!(
        "{{\"count\": {}, \"fresh_count\": {}, \"engines\": {{{}}}}}",
        args.count,
        args.fresh_count,
        engines.join(", ")
    );
    Ok(())
}
