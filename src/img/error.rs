//! `tandem img`'s errors: each prints as one line, `FILE: reason` when a file is involved.

use std::fmt::Display;

use thiserror::Error;

/// What stops a `tandem img` command (exit status 1).
#[derive(Debug, Error)]
pub enum ImgError {
    /// Something is wrong with one image or file.
    #[error("{file}: {reason}")]
    File {
        /// The file as the user named it.
        file: String,
        /// What went wrong.
        reason: String,
    },
    /// A bad command line or option value.
    #[error("{0}")]
    Usage(String),
    /// Writing the command's output failed (a closed pipe, a full disk).
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

impl ImgError {
    /// An error about `file`; a cause whose text already starts with the file's name (the
    /// block layer's errors do) is not prefixed twice.
    pub fn file(file: &str, cause: impl Display) -> Self {
        let text = cause.to_string();
        let reason = text
            .strip_prefix(file)
            .and_then(|r| r.strip_prefix(": "))
            .map(str::to_string)
            .unwrap_or(text);
        Self::File {
            file: file.to_string(),
            reason,
        }
    }

    /// A usage error.
    pub fn usage(text: impl Into<String>) -> Self {
        Self::Usage(text.into())
    }
}
