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
use tandem::difftest::compare::{hash, masked};
use tandem::difftest::{
    expectations, generate, run_plan, summary, undefined, Engine, Expectations, OracleKind, Plan,
    Runner, Stats,
};
use tandem::harness::{Harness, SnippetEnd, SnippetResult};
use tandem::AccelKind;
use tandem_accel::{TcgConfig, Tier};

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
    let recorded_on = recorded
        .as_ref()
        .and_then(|r| r.recorded_on.clone())
        .unwrap_or_else(|| "an unnamed host".into());
    assert!(
        stale.is_empty(),
        "KVM's results on this host ({}) differ from tests/data/difftest-expectations.txt \
         (recorded on {recorded_on}) for {} sequences: the generator changed (regenerate with \
         `tandem difftest --record tests/data/difftest-expectations.txt`), or a result that \
         differs between CPUs reaches a compared field (src/difftest/undefined.rs); the \
         first: {}",
        tandem::difftest::host::description(),
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

/// What a CPU of the other vendor may leave differently from this one in `r`, and nothing
/// else: every NaN lane of a register whose NaN choice is the implementation's becomes another
/// NaN (as AMD's DPPS broadcasts one NaN where Intel's picks one per lane), every bit of an
/// undefined XMM register (RCPPS and friends) flips, and so does every byte FXSAVE leaves
/// undefined in memory (its pointers, MXCSR_MASK, reserved bytes) and in the state's own image.
/// Returns the variant and how many of the three kinds it touched.
fn other_vendor(seq: &tandem::difftest::Sequence, r: &SnippetResult) -> (SnippetResult, [u32; 3]) {
    let mut v = r.clone();
    let mut touched = [0; 3];
    let mask = seq.mask_for(r.state.rip, r.end == SnippetEnd::Completed);
    for i in 0..16 {
        let x = u128::from_le_bytes(v.state.fx.xmm(i));
        if mask & undefined::xmm_bit(i) != 0 {
            v.state.fx.set_xmm(i, (!x).to_le_bytes());
            touched[1] += 1;
        } else if mask & undefined::xmm_nan_bit(i) != 0 {
            let mut y = x;
            for lane in 0..4 {
                let l = (x >> (32 * lane)) as u32;
                if f32::from_bits(l).is_nan() {
                    // Another NaN: the other sign, another payload, quiet.
                    let other = (l ^ 0x8000_0000 ^ 0x0003_0005) | 0x7fc0_0000;
                    y = (y & !(0xffff_ffffu128 << (32 * lane)))
                        | (u128::from(other) << (32 * lane));
                    touched[0] += 1;
                }
            }
            v.state.fx.set_xmm(i, y.to_le_bytes());
        }
    }
    for (addr, bytes) in &mut v.memory {
        for u in &seq.memory_undefined {
            for a in u.clone() {
                if let Some(b) = a.checked_sub(*addr).and_then(|o| bytes.get_mut(o as usize)) {
                    *b ^= 0xa5;
                    touched[2] += 1;
                }
            }
        }
    }
    for range in undefined::FXSAVE_UNDEFINED {
        for b in &mut v.state.fx.0[range] {
            *b ^= 0x5a;
        }
    }
    (v, touched)
}

/// The recorded hashes cover only what every CPU computes alike: perturbing what may differ
/// between vendors (in every floating-point sequence of the CI set where it occurs, run on the
/// interpreter) leaves the hash alone, while flipping one compared bit changes it.
#[test]
fn recorded_hashes_ignore_what_differs_between_vendors() {
    let mut h = Harness::with_tcg(
        AccelKind::Tcg,
        TcgConfig {
            tier: Tier::Interp,
            ..TcgConfig::default()
        },
    )
    .expect("interpreter harness");
    let mut totals = [0u32; 3];
    for (class, seed) in Plan::ci_fp().items() {
        let seq = generate(class, seed).expect("generate");
        let tracked = undefined::XMM_ALL | undefined::XMM_NAN_ALL;
        let any = seq.points.iter().any(|(_, u)| u & tracked != 0)
            || seq.undefined_at_end & tracked != 0
            || !seq.memory_undefined.is_empty();
        if !any {
            continue;
        }
        let r = h.run(&seq.snippet).expect("run");
        let want = hash(&masked(&seq, &r));
        let (v, touched) = other_vendor(&seq, &r);
        assert_eq!(
            hash(&masked(&seq, &v)),
            want,
            "{class} {seed}: a vendor-specific field reached the hash"
        );
        for (t, n) in totals.iter_mut().zip(touched) {
            *t += n;
        }
        let mut control = r.clone();
        control.state.gpr[0] ^= 1;
        assert_ne!(
            hash(&masked(&seq, &control)),
            want,
            "{class} {seed}: rax not hashed"
        );
        if let Some(i) = (0..16).find(|&i| {
            let m = seq.mask_for(r.state.rip, r.end == SnippetEnd::Completed);
            m & undefined::xmm_nan_bit(i) != 0 && m & undefined::xmm_bit(i) == 0
        }) {
            // The NaN-choice register's other lanes, and the sign of its non-NaN ones, count.
            let x = u128::from_le_bytes(r.state.fx.xmm(i));
            if let Some(lane) = (0..4).find(|l| !f32::from_bits((x >> (32 * l)) as u32).is_nan()) {
                let mut c = r.clone();
                c.state
                    .fx
                    .set_xmm(i, (x ^ (1u128 << (32 * lane + 31))).to_le_bytes());
                assert_ne!(
                    hash(&masked(&seq, &c)),
                    want,
                    "{class} {seed}: xmm{i} not hashed"
                );
            }
        }
    }
    eprintln!(
        "perturbed: {} NaN lanes of DPPS results, {} undefined XMM registers, {} FXSAVE bytes",
        totals[0], totals[1], totals[2]
    );
    assert!(
        totals.iter().all(|&t| t > 0),
        "the CI set no longer exercises every kind of vendor-specific result: {totals:?}"
    );
}
