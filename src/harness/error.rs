//! Why a snippet could not be run: a bad snippet (caught before anything runs) or an engine or
//! host failure. What the snippet itself does (faults, hangs) is a result, never an error.

use thiserror::Error;

/// An instruction-harness failure.
#[derive(Debug, Error)]
pub enum HarnessError {
    /// The snippet asks for something the harness cannot give; the message names the culprit.
    #[error("bad snippet: {0}")]
    BadSnippet(String),
    /// The engine could not be created or failed while running.
    #[error(transparent)]
    Engine(#[from] tandem_accel::AccelError),
    /// The engine could not be created (not built into this binary, /dev/kvm missing, ...).
    #[error(transparent)]
    Machine(#[from] crate::Error),
    /// The harness's guest memory could not be set up.
    #[error("harness memory: {0}")]
    Map(#[from] tandem_softmmu::MapError),
    /// Guest memory could not be written or read back.
    #[error("harness memory: {0}")]
    Memory(#[from] tandem_softmmu::MemoryError),
    /// The engine stopped in a way the harness cannot explain (a handler frame that does not
    /// look like one); carries a register dump.
    #[error("{reason}\n{dump}")]
    Inconsistent {
        /// What was wrong.
        reason: String,
        /// The vCPU's registers.
        dump: String,
    },
    /// The timeout thread could not be started.
    #[error("cannot start the timeout thread: {0}")]
    Thread(std::io::Error),
}
