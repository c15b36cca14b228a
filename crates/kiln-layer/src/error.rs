//! The crate's error type: every variant says what was being done, to what,
//! and why.

use std::io;
use std::path::PathBuf;

/// Errors from writing, reading or applying layers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The change set given to the writer is inconsistent.
    #[error("invalid change set at {path:?}: {reason}")]
    InvalidChangeSet {
        /// The entry path concerned.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An I/O error on a named file (reading a source file, creating an
    /// entry in a rootfs, ...).
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "reading source file".
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing the encoded layer to its sink failed.
    #[error("writing layer blob: {0}")]
    Sink(#[source] io::Error),
    /// A blob could not be read or decoded.
    #[error("reading layer blob {blob}: {source}")]
    Read {
        /// Which blob (digest or file name as given by the caller).
        blob: String,
        /// The underlying error (corrupt compression, truncated tar, ...).
        #[source]
        source: io::Error,
    },
    /// A blob's content does not match the digest it was announced with.
    #[error("layer blob {blob}: {what} mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Which blob.
        blob: String,
        /// "compressed digest", "diff_id" or "size".
        what: &'static str,
        /// Announced value.
        expected: String,
        /// Computed value.
        actual: String,
    },
    /// A layer entry that would escape the root or is otherwise refused.
    #[error("layer blob {blob}: refusing entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// Which blob.
        blob: String,
        /// The entry name as found in the tar (lossily decoded).
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// Applying an entry onto the rootfs failed.
    #[error("layer blob {blob}: applying entry {entry:?}: {action}: {source}")]
    Apply {
        /// Which blob.
        blob: String,
        /// The entry name.
        entry: String,
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An invalid option (e.g. compression level out of range).
    #[error("invalid layer option: {0}")]
    InvalidOption(String),
}

impl Error {
    /// Turns an I/O error met while reading the blob named `blob` into an
    /// [`Error::Read`]: `.map_err(Error::reading(name))`.
    pub(crate) fn reading(blob: &str) -> impl Fn(io::Error) -> Error + Copy + '_ {
        move |source| Error::Read {
            blob: blob.to_owned(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
