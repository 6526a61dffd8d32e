//! The library's error type. Every variant renders as one line that names the field,
//! file or container concerned; the CLI prints it once.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// config.json is missing, unreadable, malformed, or a field is invalid.
    #[error("{file}: {message}")]
    Config { file: PathBuf, message: String },

    /// A field of config.json that is well-formed but can't be honoured.
    #[error("config.json: {field}: {message}")]
    Field { field: String, message: String },

    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },

    #[error("container {0:?} does not exist")]
    NotFound(String),

    #[error("container {0:?} already exists")]
    Exists(String),

    /// runc's ErrNotRunning: containerd's shim treats an error containing "container not
    /// running" from `kill` as "process already finished", so the words must stay.
    #[error("container not running: {id:?} is {status}")]
    NotRunning { id: String, status: String },

    /// The operation is not allowed in the container's current status.
    #[error("container {id:?} is {status}: cannot {op}")]
    WrongStatus { id: String, status: String, op: &'static str },

    /// An error reported by the container's init while it set itself up.
    #[error("{0}")]
    Init(String),

    /// A system call or file operation failed; `what` says what was being done.
    #[error("{what}: {source}")]
    Os { what: String, source: std::io::Error },

    /// Another command holds the container's lock for longer than strata waits.
    #[error("container {id:?} is busy: pid {holder} ({command}) has held its lock for over {secs} s")]
    Busy { id: String, holder: i32, command: String, secs: u64 },

    /// A request that is understood but refused (safety guards, unsupported options).
    #[error("{0}")]
    Refused(String),
}

impl Error {
    pub fn os(what: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Error::Os { what: what.into(), source: source.into() }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Field { field: field.into(), message: message.into() }
    }
}

/// Adds "what was being done" to nix and io errors: `mount(...).ctx(|| "mount /proc")?`.
pub trait Context<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, nix::Error> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::os(what(), std::io::Error::from(e)))
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::os(what(), e))
    }
}
