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
    /// A checkpoint of another kind of model than the one asked for.
    #[error("checkpoint {path}: holds a {found:?} model, not a {wanted} model")]
    WrongKind { path: PathBuf, found: String, wanted: &'static str },
    /// A sequence longer than the dense-attention limit: a window (truncated
    /// attention, linear cost) or a higher limit runs it.
    #[error("a sequence of {longest} items under dense attention costs {longest}^2 scores per head and layer (minutes on a CPU; memory stays linear with the fused kernel); set a window (64, say) for truncated attention with linear cost, or raise the dense limit ({limit}) to {longest} to run it anyway")]
    DenseTooLong { longest: usize, limit: usize },
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
