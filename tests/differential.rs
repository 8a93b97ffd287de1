//! The differential suite's CI seed set on KVM, tcg's interpreter and tcg's JIT: at least
//! 20,000 random instruction sequences across the general-purpose classes, and 9,000 across
//! the floating-point and vector ones (x87, MMX, SSE-SSE4.2, FXSAVE), one test each. Every
//! difference fails the test, listing the first ones with the command lines that reproduce
//! them. Without /dev/kvm the tiers are compared with the recorded KVM results
//! (tests/data/difftest-expectations.txt) and the test says that the live oracle did not run.

mod common;

use std::path::Path;
use std::time::Instant;

use common::skipped;
use tandem::difftest::{
    expectations, run_plan, summary, Engine, Expectations, OracleKind, Plan, Runner, Stats,
};

/// How many difference reports the failure message shows.
const SHOWN: usize = 5;

/// Runs `plan` on every engine; returns the reports, the stats and the KVM hashes that do not
/// match the recorded ones.
fn run(
    plan: &Plan,
    recorded: Option<Expectations>,
) -> (Vec<String>, Stats, Vec<String>, OracleKind) {
    let mut runner = Runner::new(&Engine::ALL, recorded.clone()).expect("open the engines");
    let oracle = runner.oracle();
    let mut reports = Vec::new();
    let mut stale = Vec::new();
    run_plan(&mut runner, plan, |c| {
        if let Some(d) = &c.difference {
            reports.push(d.clone());
        }
        let (class, seed) = (c.sequence.class, c.sequence.seed);
        if let (Some(h), Some(want)) = (
            c.kvm_hash,
            recorded.as_ref().and_then(|r| r.get(class, seed)),
        ) {
            if h != want {
                stale.push(format!(
                    "{class} {seed}: KVM {h:016x}, recorded {want:016x}"
                ));
            }
        }
        true
    })
    .expect("run the sequences");
    (reports, runner.stats, stale, oracle)
}

#[test]
fn differential_ci_seed_set() {
    check("differential_ci_seed_set", &Plan::ci(), 20_000);
}

#[test]
fn differential_fp_seed_set() {
    check("differential_fp_seed_set", &Plan::ci_fp(), 9_000);
}

/// Runs `plan` (at least `at_least` sequences) on every engine, in two halves on two threads
/// (this machine has two cores), and fails on any difference or stale expectation.
fn check(test: &str, plan: &Plan, at_least: u64) {
    let recorded = Expectations::load(Path::new(expectations::DEFAULT_PATH)).ok();
    let total = plan.count * plan.classes.len() as u64;
    assert!(
        total >= at_least,
        "{test}: the seed set has only {total} sequences"
    );
    // One harness per engine and thread.
    let half = plan.count / 2;
    let plans = [
        Plan {
            count: half,
            ..plan.clone()
        },
        Plan {
            first_seed: plan.first_seed + half,
            count: plan.count - half,
            ..plan.clone()
        },
    ];
    let start = Instant::now();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .iter()
            .map(|p| {
                let r = recorded.clone();
                s.spawn(move || run(p, r))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect()
    });
    let mut reports = Vec::new();
    let mut stale = Vec::new();
    let mut stats = Stats::default();
    let mut oracle = OracleKind::Live;
    for (r, s, st, o) in results {
        reports.extend(r);
        stale.extend(st);
        oracle = o;
        for (c, (n, d)) in s.per_class {
            let e = stats.per_class.entry(c).or_default();
            e.0 += n;
            e.1 += d;
        }
        for (e, (n, t)) in s.per_engine {
            let x = stats.per_engine.entry(e).or_default();
            x.0 += n;
            x.1 += t;
        }
        stats.unchecked += s.unchecked;
        for (c, ends) in s.ends {
            let x = stats.ends.entry(c).or_default();
            for (k, v) in ends {
                *x.entry(k).or_default() += v;
            }
        }
    }
    eprintln!(
        "{test}: {total} sequences in {:.1}s\n{}",
        start.elapsed().as_secs_f64(),
        summary(&stats)
    );
    match oracle {
        OracleKind::Live => {}
        OracleKind::Recorded => skipped(
            &format!("{test} [kvm live oracle]"),
            "no /dev/kvm: compared against recorded expectations",
        ),
        OracleKind::TiersOnly => skipped(
            &format!("{test} [kvm oracle]"),
            "no /dev/kvm and no recorded expectations: the tcg tiers were compared with each \
             other only",
        ),
    }
    assert!(
        reports.is_empty(),
        "{} of {total} sequences differ; the first {}:\n\n{}",
        reports.len(),
        SHOWN.min(reports.len()),
        reports
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        stale.is_empty(),
        "KVM's results differ from tests/data/difftest-expectations.txt for {} sequences (the \
         generator changed? regenerate with `tandem difftest --record \
         tests/data/difftest-expectations.txt`); the first: {}",
        stale.len(),
        stale
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    );
    if oracle == OracleKind::Recorded {
        assert_eq!(
            stats.unchecked, 0,
            "sequences of the CI set missing from the recorded expectations"
        );
    }
}
