//! Build errors. Each says what was being done, to what, and why.

use std::path::PathBuf;

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The options are inconsistent (e.g. no destination and no `--no-push`).
    #[error("invalid options: {0}")]
    Options(String),
    /// An I/O error on a named path.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "reading the build context".
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The build context could not be used.
    #[error("build context {}: {reason}", path.display())]
    Context {
        /// The context path (or `-` for stdin).
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A remote context (git repository, archive URL) could not be fetched.
    #[error(transparent)]
    RemoteContext(kiln_context::ContextError),
    /// A `.dockerignore` pattern is invalid.
    #[error("{}: line {line}: invalid pattern {pattern:?}: {reason}", path.display())]
    Dockerignore {
        /// The ignore file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// A step failed. `location` is `Dockerfile:LINE`.
    #[error("{step} ({location}) `{text}`: {reason}")]
    Step {
        /// `[stage 1/2] STEP 3/9`.
        step: String,
        /// `path:line`.
        location: String,
        /// The instruction as written.
        text: String,
        /// Why it failed.
        reason: String,
    },
    /// The Dockerfile is invalid (parse error, unknown stage, bad ARG use):
    /// every problem found, each as `file:line:column: message`.
    #[error("{0}")]
    Dockerfile(String),
    /// Talking to a registry failed (the message names registry, repository and object).
    #[error("{0}")]
    Registry(String),
    /// Writing an output (OCI layout, manifest) failed.
    #[error("{0}")]
    Output(String),
    /// A feature this version of kiln does not implement yet.
    #[error("not yet supported: {0}")]
    NotYetSupported(String),
}

impl BuildError {
    /// Builds an [`BuildError::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BuildError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
