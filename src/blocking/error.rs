//! Errors returned by the blocking pool.

use std::{error::Error, fmt};

/// Why a job could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// The bounded queue is full; retry later or use an awaiting submit.
    Full,
    /// The pool has been shut down and accepts no more jobs.
    ShutDown,
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::Full => f.write_str("blocking pool queue is full"),
            SubmitError::ShutDown => f.write_str("blocking pool is shut down"),
        }
    }
}

impl Error for SubmitError {}

/// Why a [`Blocking`](super::Blocking) future did not produce a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockingError {
    /// The job panicked; the payload's message (or a placeholder when the
    /// payload was not a string). The pool thread survives.
    Panicked(String),
    /// The pool was shut down before the job could be queued, or the job was
    /// dropped unrun.
    ShutDown,
}

impl fmt::Display for BlockingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockingError::Panicked(msg) => write!(f, "blocking task panicked: {msg}"),
            BlockingError::ShutDown => f.write_str("blocking pool is shut down"),
        }
    }
}

impl Error for BlockingError {}

impl From<SubmitError> for BlockingError {
    /// Only `ShutDown` reaches a `Blocking` future: a full queue makes it wait.
    fn from(_: SubmitError) -> Self {
        BlockingError::ShutDown
    }
}
