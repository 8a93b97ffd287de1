//! The root crate's error: everything that stops a machine from being built or run.

use std::path::PathBuf;

use thiserror::Error;

/// Why a machine could not be built or run.
#[derive(Debug, Error)]
pub enum Error {
    /// A file named on the command line could not be read.
    #[error("cannot read {what} '{path}': {source}")]
    ReadFile {
        /// "kernel", "initrd".
        what: &'static str,
        /// The path given.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The serial output file could not be opened.
    #[error("cannot open serial output '{path}': {source}")]
    SerialFile {
        /// The path given.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The kernel image was rejected.
    #[error("kernel '{path}': {source}")]
    Loader {
        /// The path given.
        path: PathBuf,
        /// Why.
        source: tandem_hw::loader::LoaderError,
    },
    /// The board could not be built.
    #[error(transparent)]
    Board(#[from] tandem_hw::pc::PcError),
    /// The engine failed.
    #[error(transparent)]
    Accel(#[from] tandem_accel::AccelError),
    /// A configuration that cannot work.
    #[error("{0}")]
    Config(String),
    /// A host thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}
