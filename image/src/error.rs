//! The one error type of the library boundary. Every variant names the blob,
//! file or tar entry it is about, so the CLI can print it as a single line.

use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("blob {digest}: size mismatch: descriptor says {expected} bytes, read {actual}")]
    SizeMismatch { digest: String, expected: u64, actual: u64 },

    #[error("blob {digest}: digest mismatch: content hashes to {actual}")]
    DigestMismatch { digest: String, actual: String },

    #[error("layer {layer}: diff_id mismatch: config says {expected}, uncompressed content is {actual}")]
    DiffIdMismatch { layer: String, expected: String, actual: String },

    #[error("blob {digest}: missing from {}", path.display())]
    MissingBlob { digest: String, path: PathBuf },

    #[error("invalid digest {0:?} (only sha256:<64 lowercase hex> is supported)")]
    InvalidDigest(String),

    #[error("{what}: invalid JSON: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("{what}: {source}")]
    Spec {
        what: String,
        #[source]
        source: oci_spec::OciSpecError,
    },

    #[error("reference {reference}: {reason}")]
    Reference { reference: String, reason: String },

    #[error("{what}: unsupported media type {media_type}")]
    MediaType { what: String, media_type: String },

    #[error("layer {layer}: {source}")]
    Layer {
        layer: String,
        #[source]
        source: Box<Error>,
    },

    #[error("tar entry {entry:?}: {reason}")]
    Entry { entry: String, reason: String },

    #[error("{}: {op}: {errno}", path.display())]
    Sys { op: &'static str, path: PathBuf, errno: nix::Error },

    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        // A verification error that travelled through a Read impl as an
        // io::Error is unwrapped back into its own variant.
        match source.get_ref().map(|r| r.is::<Error>()) {
            Some(true) => *source.into_inner().unwrap().downcast::<Error>().unwrap(),
            _ => Error::Io { path: path.into(), source },
        }
    }

    pub fn sys(op: &'static str, path: impl Into<PathBuf>, errno: nix::Error) -> Self {
        Error::Sys { op, path: path.into(), errno }
    }

    pub fn entry(entry: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Entry { entry: entry.into(), reason: reason.to_string() }
    }

    pub fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        Error::Json { what: what.into(), source }
    }

    pub fn in_layer(self, layer: &str) -> Self {
        Error::Layer { layer: layer.to_string(), source: Box::new(self) }
    }

    /// Wraps this error into an io::Error so it can cross a `Read` impl.
    pub fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}
