//! The differential testing suite: random instruction sequences per instruction class, run on
//! KVM (on PVM hosts the host CPU itself, at CPL3), tcg's interpreter and tcg's JIT, with the
//! whole architectural state, the end and the touched memory compared.
//!
//! - [`generator`] draws a reproducible sequence for (class, seed): 1..=8 groups of
//!   instructions of one [`classes::Class`] (or mixed), random registers, flags and memory,
//!   memory operands kept inside a data region (its module doc has the map).
//! - [`undefined`] is the one place that says which flags are masked and why (the SDM's
//!   undefined flags, tracked per sequence; instructions that would read them are not
//!   generated).
//! - [`runner`] runs a sequence on every engine through the instruction harness and
//!   [`compare`]s; [`report`] prints a difference with the `tandem exec` line that reproduces
//!   it.
//! - [`expectations`] holds KVM's results for the CI seed set as hashes, so that hosts
//!   without /dev/kvm still check the JIT against the real CPU.
//!
//! The CI seed set is seeds `0..CI_PER_CLASS` of every general-purpose class
//! ([`Class::INTEGER`]) and seeds `0..CI_PER_FP_CLASS` of every floating-point and vector class
//! ([`Class::FP`]: x87, MMX, SSE-SSE4.2, FXSAVE); [`Plan::ci_sets`] gives both, and `tandem
//! difftest` with no options runs exactly that.

pub mod builders;
pub mod classes;
pub mod compare;
pub mod error;
pub mod expectations;
pub mod faults;
pub mod fp;
pub mod generator;
pub mod host;
pub mod operands;
pub mod report;
pub mod rng;
pub mod runner;
pub(crate) mod shapes;
pub mod undefined;

pub use classes::Class;
pub use error::DiffError;
pub use expectations::Expectations;
pub use generator::{generate, Sequence};
pub use runner::{Checked, Engine, OracleKind, Runner, Stats};

/// Sequences per general-purpose class in the CI seed set.
pub const CI_PER_CLASS: u64 = 2500;

/// Sequences per floating-point class in the CI seed set: fewer, so that the whole set stays
/// under a minute in a debug build on two cores.
pub const CI_PER_FP_CLASS: u64 = 1000;

/// The classes of the CI seed set: all of them (string and mixed joined once the JIT bug they
/// found, a compiled prefix ending in a REP string instruction, was fixed).
pub const CI_CLASSES: [Class; 19] = Class::ALL;

/// A batch of sequences: seeds `first_seed..first_seed + count` of each class.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The classes.
    pub classes: Vec<Class>,
    /// The first seed.
    pub first_seed: u64,
    /// Sequences per class.
    pub count: u64,
}

impl Plan {
    /// The CI seed set's general-purpose classes.
    pub fn ci() -> Self {
        Self {
            classes: Class::INTEGER.to_vec(),
            first_seed: 0,
            count: CI_PER_CLASS,
        }
    }

    /// The CI seed set's floating-point and vector classes.
    pub fn ci_fp() -> Self {
        Self {
            classes: Class::FP.to_vec(),
            first_seed: 0,
            count: CI_PER_FP_CLASS,
        }
    }

    /// The whole CI seed set: [`Plan::ci`] and [`Plan::ci_fp`].
    pub fn ci_sets() -> Vec<Self> {
        vec![Self::ci(), Self::ci_fp()]
    }

    /// Every (class, seed) of the plan, seed by seed so that progress covers every class.
    pub fn items(&self) -> impl Iterator<Item = (Class, u64)> + '_ {
        (0..self.count).flat_map(move |i| {
            self.classes
                .iter()
                .map(move |&c| (c, self.first_seed.wrapping_add(i)))
        })
    }
}

/// Runs every sequence of `plan`, calling `each` with every checked sequence (for progress,
/// recording and reports); stops early when `each` returns false.
pub fn run_plan(
    runner: &mut Runner,
    plan: &Plan,
    mut each: impl FnMut(&Checked) -> bool,
) -> Result<(), DiffError> {
    for (class, seed) in plan.items() {
        let c = runner.check(class, seed)?;
        if !each(&c) {
            break;
        }
    }
    Ok(())
}

/// The summary lines: sequences and differences per class, time per engine.
pub fn summary(stats: &Stats) -> String {
    let mut out = String::new();
    let (mut runs, mut diffs) = (0, 0);
    for (class, (n, d)) in &stats.per_class {
        let ends: Vec<String> = stats
            .ends
            .get(class)
            .map(|e| e.iter().map(|(k, v)| format!("{k} {v}")).collect())
            .unwrap_or_default();
        out.push_str(&format!(
            "  {:<11} {n:>7} sequences, {d} with differences; ended: {}\n",
            class.name(),
            ends.join(", ")
        ));
        runs += n;
        diffs += d;
    }
    out.push_str(&format!(
        "  total       {runs:>7} sequences, {diffs} with differences\n"
    ));
    for (e, (n, t)) in &stats.per_engine {
        let rate = if t.as_secs_f64() > 0.0 {
            *n as f64 / t.as_secs_f64()
        } else {
            0.0
        };
        out.push_str(&format!(
            "  engine {:<6} {n} runs in {:.1}s ({rate:.0} sequences/s)\n",
            e.name(),
            t.as_secs_f64()
        ));
    }
    if stats.unchecked > 0 {
        out.push_str(&format!(
            "  {} sequences had no recorded expectation (tiers compared with each other only)\n",
            stats.unchecked
        ));
    }
    out
}
