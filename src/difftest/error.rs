//! Why the differential suite could not do its work (differences are results, not errors).

use thiserror::Error;

use crate::harness::HarnessError;

/// A differential-suite failure.
#[derive(Debug, Error)]
pub enum DiffError {
    /// A generated sequence could not be assembled (a generator bug; names the seed).
    #[error("cannot assemble a generated sequence: {0}")]
    Encode(String),
    /// An engine could not run a snippet.
    #[error("{engine}: {source}")]
    Harness {
        /// The engine.
        engine: &'static str,
        /// What went wrong.
        source: HarnessError,
    },
    /// The expectations file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A line of the expectations file is malformed.
    #[error("{path}:{line}: {reason}")]
    BadExpectation {
        /// The file.
        path: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing to compare: no engine, or no oracle and one engine.
    #[error("{0}")]
    NoOracle(String),
}

impl DiffError {
    /// An iced-x86 assembly error.
    pub fn encode(e: iced_x86::IcedError) -> Self {
        DiffError::Encode(e.to_string())
    }
}
