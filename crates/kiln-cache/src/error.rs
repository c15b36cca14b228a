//! Cache errors: each names the cache (registry repository or layout directory)
//! and the key it was working on.

use std::path::PathBuf;

/// A cache operation that failed. Lookups that fail are treated as misses by
/// the engine; stores that fail are warnings. Neither fails a build.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The registry refused or could not be reached.
    #[error("layer cache {repo}: {what} {key}: {source}")]
    Registry {
        /// `registry/repository`.
        repo: String,
        /// What was being done.
        what: &'static str,
        /// The step key.
        key: String,
        /// The registry error.
        #[source]
        source: Box<kiln_registry::Error>,
    },
    /// The OCI layout could not be read or written.
    #[error("layer cache oci:{}: {what} {key}: {reason}", dir.display())]
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The step key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A cache entry exists but is not one kiln wrote (or is damaged).
    #[error("layer cache {cache}: entry {key} is invalid: {reason}")]
    Invalid {
        /// The cache, as shown to users.
        cache: String,
        /// The step key.
        key: String,
        /// Why.
        reason: String,
    },
    /// Neither `--cache-repo` nor a `--destination` says where the cache lives.
    #[error("--cache needs --cache-repo when no --destination is given")]
    NoRepo,
    /// `--cache-repo` does not name a repository.
    #[error("--cache-repo {value:?}: {reason}")]
    BadRepo {
        /// The flag's value.
        value: String,
        /// Why.
        reason: String,
    },
}
