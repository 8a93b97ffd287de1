//! Errors of the engines.

use thiserror::Error;

/// An engine failed (as opposed to the guest faulting, which is guest-visible state).
#[derive(Debug, Error)]
pub enum AccelError {
    /// The engine was not compiled into this binary.
    #[error("accelerator '{0}' is not built into this binary (see -accel help)")]
    NotBuilt(String),
    /// No engine of that name exists.
    #[error("unknown accelerator '{0}' (see -accel help)")]
    Unknown(String),
    /// The engine cannot run on this host.
    #[error("accelerator '{name}' is unavailable: {reason}")]
    Unavailable {
        /// Engine name.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// A host call failed.
    #[error("{op} failed: {source}")]
    Host {
        /// What was attempted.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The engine could not continue running the guest; carries a register dump.
    #[error("{reason}\n{dump}")]
    GuestStuck {
        /// What happened.
        reason: String,
        /// The vCPU's registers at that point.
        dump: String,
    },
    /// A configuration the engine does not support.
    #[error("{0}")]
    Unsupported(String),
}
