//! Typed errors of the attend library.

use std::path::PathBuf;

/// Everything the library can fail with. Input errors name the file and line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}:{line}: {message}")]
    Parse { path: PathBuf, line: usize, message: String },
    /// The message includes the I/O error (not chained as a source, so it
    /// is printed once).
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Input(String),
    #[error("training diverged: {0}")]
    Diverged(String),
    #[error("interrupted: {0}")]
    Interrupted(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), err: source }
    }
}
