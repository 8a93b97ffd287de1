//! `tandem img`: qemu-img's commands over the block layer (create, info, check, convert,
//! snapshot, map, resize, commit, rebase), with qemu-img's options, output formats and exit
//! statuses, so scripts written for qemu-img can call tandem instead.
//!
//! Each command is a module with a request type (filled in by `cli::img`) and a `run`. Output
//! goes to the writer given (stdout); errors come back as [`ImgError`] and print as one line,
//! `tandem img: FILE: reason`, exit status 1.
//!
//! Known wart, from what the block layer's [`BlockDriver`] does not offer yet: qcow2 header
//! fields are read from the file by [`meta`].

use std::io::Write;

use tandem_block::{BlockDriver, OpenOptions};

pub mod check;
pub mod commit;
pub mod convert;
pub mod create;
pub mod error;
pub mod info;
pub mod json;
pub mod map;
pub mod meta;
pub mod options;
pub mod progress;
pub mod rebase;
pub mod resize;
pub mod snapshot;
pub mod sparse;
pub mod units;

pub use error::ImgError;

/// How a command prints its result (`--output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// qemu-img's text.
    #[default]
    Human,
    /// qemu-img's JSON.
    Json,
}

/// One `tandem img` command.
#[derive(Debug)]
pub enum ImgCommand {
    /// `create`.
    Create(create::CreateRequest),
    /// `info`.
    Info(info::InfoRequest),
    /// `check`.
    Check(check::CheckRequest),
    /// `convert`.
    Convert(convert::ConvertRequest),
    /// `snapshot`.
    Snapshot(snapshot::SnapshotRequest),
    /// `map`.
    Map(map::MapRequest),
    /// `resize`.
    Resize(resize::ResizeRequest),
    /// `commit`.
    Commit(commit::CommitRequest),
    /// `rebase`.
    Rebase(rebase::RebaseRequest),
    /// A command line that could not be parsed: reported like any other error.
    Invalid(String),
}

/// Runs `cmd`, printing to stdout and errors to stderr; returns the exit status.
pub fn run(cmd: &ImgCommand) -> u8 {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = run_to(cmd, &mut out);
    let _ = out.flush();
    match result {
        Ok(status) => status,
        Err(e) => {
            eprintln!("tandem img: {e}");
            1
        }
    }
}

/// Runs `cmd` with its output to `out`; returns the exit status.
pub fn run_to(cmd: &ImgCommand, out: &mut dyn Write) -> Result<u8, ImgError> {
    match cmd {
        ImgCommand::Create(r) => create::run(r, out).map(|()| 0),
        ImgCommand::Info(r) => info::run(r, out).map(|()| 0),
        ImgCommand::Check(r) => check::run(r, out),
        ImgCommand::Convert(r) => convert::run(r, out).map(|()| 0),
        ImgCommand::Snapshot(r) => snapshot::run(r, out).map(|()| 0),
        ImgCommand::Map(r) => map::run(r, out).map(|()| 0),
        ImgCommand::Resize(r) => resize::run(r, out).map(|()| 0),
        ImgCommand::Commit(r) => commit::run(r, out).map(|()| 0),
        ImgCommand::Rebase(r) => rebase::run(r, out).map(|()| 0),
        ImgCommand::Invalid(msg) => Err(ImgError::usage(msg.clone())),
    }
}

/// Opens the image `file` (format `format`, or probed), with its backing chain.
pub fn open_image(
    file: &str,
    format: Option<&str>,
    read_only: bool,
) -> Result<Box<dyn BlockDriver>, ImgError> {
    let options = OpenOptions {
        format: format.map(str::to_string),
        read_only,
        ..Default::default()
    };
    tandem_block::open(file, options).map_err(|e| ImgError::file(file, e))
}
