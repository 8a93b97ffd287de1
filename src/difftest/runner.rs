//! Driving the engines: one [`Harness`] per engine (the harness resets code, stack and data
//! for every run), each sequence run on all of them, and the results compared with the
//! oracle — KVM when it runs here, the recorded expectations otherwise.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::config::AccelKind;
use crate::harness::{Harness, HarnessError, SnippetEnd, SnippetResult, CODE_ADDR};
use tandem_accel::{TcgConfig, Tier};

use super::classes::Class;
use super::compare::{differing, hash, masked, Masked};
use super::error::DiffError;
use super::expectations::Expectations;
use super::generator::{generate, Sequence};
use super::report;

/// An engine the suite runs sequences on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Engine {
    /// KVM: on PVM hosts the host CPU itself at CPL3 — the oracle.
    Kvm,
    /// tcg's interpreter (tier 0).
    Interp,
    /// tcg's Cranelift tier, compiling every block at its first run.
    Jit,
}

impl Engine {
    /// Every engine.
    pub const ALL: [Engine; 3] = [Engine::Kvm, Engine::Interp, Engine::Jit];

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Kvm => "kvm",
            Engine::Interp => "interp",
            Engine::Jit => "jit",
        }
    }

    /// The engine called `name`.
    pub fn from_name(name: &str) -> Option<Engine> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    fn harness(self) -> Result<Harness, DiffError> {
        let r = match self {
            Engine::Kvm => Harness::new(AccelKind::Kvm),
            Engine::Interp => Harness::with_tcg(
                AccelKind::Tcg,
                TcgConfig {
                    tier: Tier::Interp,
                    ..TcgConfig::default()
                },
            ),
            Engine::Jit => Harness::with_tcg(
                AccelKind::Tcg,
                TcgConfig {
                    tier: Tier::Jit,
                    ..TcgConfig::default()
                },
            ),
        };
        r.map_err(|source| DiffError::Harness {
            engine: self.name(),
            source,
        })
    }
}

/// What the tcg tiers are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OracleKind {
    /// KVM ran every sequence live.
    Live,
    /// No KVM here: the recorded hashes (and the tiers against each other).
    Recorded,
    /// No KVM and nothing recorded: only the tiers against each other.
    TiersOnly,
}

/// Per-engine and per-class counters.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// (sequences run, sequences with a difference) per class.
    pub per_class: BTreeMap<Class, (u64, u64)>,
    /// (runs, time spent running) per engine.
    pub per_engine: BTreeMap<Engine, (u64, Duration)>,
    /// Sequences no oracle checked (no KVM and no recorded hash for them).
    pub unchecked: u64,
    /// Time spent generating sequences.
    pub generating: Duration,
    /// How the sequences ended on the first engine (the oracle when KVM runs), per class:
    /// end text (`completed`, `#GP`, ...) to count.
    pub ends: BTreeMap<Class, BTreeMap<&'static str, u64>>,
}

/// KVM's result for a sequence whose instruction at `at` raises #GP(0) on purpose: the code
/// up to it runs on the CPU, and the #GP is the SDM's (see [`faults`](super::faults) for why
/// the CPU cannot be asked on PVM hosts).
fn run_to_fault(h: &mut Harness, seq: &Sequence, at: u64) -> Result<SnippetResult, HarnessError> {
    let mut s = seq.snippet.clone();
    s.code.truncate(at.saturating_sub(CODE_ADDR) as usize);
    let mut r = h.run(&s)?;
    if r.end == SnippetEnd::Completed && r.state.rip == at {
        r.end = SnippetEnd::Exception {
            vector: 13,
            error_code: Some(0),
            cr2: None,
        };
    }
    Ok(r)
}

/// A short name for how a run ended.
fn end_name(end: SnippetEnd) -> &'static str {
    match end {
        SnippetEnd::Completed => "completed",
        SnippetEnd::Exception { vector, .. } => SnippetEnd::vector_name(vector),
        SnippetEnd::Halted => "halted",
        SnippetEnd::Timeout => "timeout",
        SnippetEnd::Shutdown => "shutdown",
    }
}

/// The engines, the oracle, and the counters.
pub struct Runner {
    harnesses: Vec<(Engine, Harness)>,
    expectations: Option<Expectations>,
    /// What has been run so far.
    pub stats: Stats,
    /// Why KVM is not among the engines, when it was asked for but could not be opened.
    pub kvm_missing: Option<String>,
}

/// The result of checking one sequence.
pub struct Checked {
    /// The sequence.
    pub sequence: Sequence,
    /// KVM's hash, when KVM ran it (what `--record` writes).
    pub kvm_hash: Option<u64>,
    /// The difference report, if the engines (or the record) disagree.
    pub difference: Option<String>,
}

impl Runner {
    /// Opens `engines`; KVM is left out (and [`Runner::kvm_missing`] says why) when it
    /// cannot be opened here. `expectations` back the comparison without KVM.
    pub fn new(engines: &[Engine], expectations: Option<Expectations>) -> Result<Self, DiffError> {
        let mut harnesses = Vec::new();
        let mut kvm_missing = None;
        for &e in engines {
            if harnesses.iter().any(|(x, _)| *x == e) {
                continue;
            }
            match e.harness() {
                Ok(h) => harnesses.push((e, h)),
                Err(err) if e == Engine::Kvm => kvm_missing = Some(err.to_string()),
                Err(err) => return Err(err),
            }
        }
        if harnesses.is_empty() {
            return Err(DiffError::NoOracle("no engine could be opened".into()));
        }
        Ok(Self {
            harnesses,
            expectations,
            stats: Stats::default(),
            kvm_missing,
        })
    }

    /// The engines that run.
    pub fn engines(&self) -> Vec<Engine> {
        self.harnesses.iter().map(|(e, _)| *e).collect()
    }

    /// What the results are checked against.
    pub fn oracle(&self) -> OracleKind {
        if self.engines().contains(&Engine::Kvm) {
            OracleKind::Live
        } else if self.expectations.as_ref().is_some_and(|e| !e.is_empty()) {
            OracleKind::Recorded
        } else {
            OracleKind::TiersOnly
        }
    }

    /// Generates (class, seed), runs it on every engine and compares.
    pub fn check(&mut self, class: Class, seed: u64) -> Result<Checked, DiffError> {
        let t = Instant::now();
        let sequence = generate(class, seed)?;
        self.stats.generating += t.elapsed();
        let mut results: Vec<(Engine, Masked)> = Vec::with_capacity(self.harnesses.len());
        for (e, h) in &mut self.harnesses {
            let t = Instant::now();
            let r = match (*e, sequence.expected_gp) {
                (Engine::Kvm, Some(at)) => run_to_fault(h, &sequence, at),
                _ => h.run(&sequence.snippet),
            }
            .map_err(|source| DiffError::Harness {
                engine: e.name(),
                source,
            })?;
            let slot = self.stats.per_engine.entry(*e).or_default();
            slot.0 += 1;
            slot.1 += t.elapsed();
            results.push((*e, masked(&sequence, &r)));
        }
        if let Some((_, first)) = results.first() {
            *self
                .stats
                .ends
                .entry(class)
                .or_default()
                .entry(end_name(first.end))
                .or_default() += 1;
        }
        let kvm_hash = results
            .iter()
            .find(|(e, _)| *e == Engine::Kvm)
            .map(|(_, m)| hash(m));
        let mut notes = String::new();
        if kvm_hash.is_none() {
            match self.expectations.as_ref().and_then(|x| x.get(class, seed)) {
                Some(want) => {
                    for (e, m) in &results {
                        let got = hash(m);
                        if got != want {
                            notes.push_str(&format!(
                                "\n{} differs from the recorded KVM result (hash {got:016x}, \
                                 recorded {want:016x})",
                                e.name()
                            ));
                        }
                    }
                }
                None => self.stats.unchecked += 1,
            }
        }
        let all_same = results.windows(2).all(|w| w[0].1 == w[1].1);
        let difference = if all_same && notes.is_empty() {
            None
        } else {
            let named: Vec<(&str, &Masked)> = results.iter().map(|(e, m)| (e.name(), m)).collect();
            Some(report::difference(&sequence, &differing(&named), &notes))
        };
        let slot = self.stats.per_class.entry(class).or_default();
        slot.0 += 1;
        slot.1 += u64::from(difference.is_some());
        Ok(Checked {
            sequence,
            kvm_hash,
            difference,
        })
    }
}
