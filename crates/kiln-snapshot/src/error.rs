//! The crate's error type: every variant names the path and what was being done.

use std::io;
use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while snapshotting, with the path it happened to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem call failed on `path` while doing `action`.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("reading directory", "stat of", ...).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
    /// The overlay backend cannot be used here (mount refused, unsupported path, ...).
    #[error("overlay snapshots unavailable for {}: {reason}", path.display())]
    OverlayUnavailable {
        /// The rootfs (or scratch dir) the overlay was meant for.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// A path in the tree cannot be represented (not relative to the root, `..`, ...).
    #[error("invalid path {}: {reason}", path.display())]
    InvalidPath {
        /// The offending path.
        path: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
}

impl Error {
    /// Wraps an I/O error with the action and the path.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Adds `action` and `path` to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}
