//! Errors of remote contexts: each names the scheme, host, repository and ref,
//! what failed, and what would fix it. None holds a credential.

/// A remote context could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The `--context` value or an `ADD` source is not a valid remote context.
    #[error("{input}: {reason}")]
    Invalid {
        /// What the user wrote (without user info).
        input: String,
        /// Why it is not valid.
        reason: String,
    },
    /// Talking to the git server failed.
    #[error("git context {url} (ref {reference}): {what}: {reason}{hint}")]
    Git {
        /// The repository URL, user info removed.
        url: String,
        /// The ref asked for (`HEAD` when none).
        reference: String,
        /// What was being done.
        what: &'static str,
        /// Why it failed (gitoxide's error chain, credentials removed).
        reason: String,
        /// What would fix it, starting with `; ` (or empty).
        hint: String,
    },
    /// Downloading an archive context failed.
    #[error("archive context {url}: {what}: {reason}{hint}")]
    Fetch {
        /// The URL.
        url: String,
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        reason: String,
        /// What would fix it, starting with `; ` (or empty).
        hint: String,
    },
    /// Reading an object-store context failed.
    #[error("object-store context {url}: {what}: {reason}{hint}")]
    Object {
        /// The object's URL (`s3://…`, `gs://…`, an Azure Blob URL without query).
        url: String,
        /// What was being done.
        what: &'static str,
        /// Why it failed (never a credential).
        reason: String,
        /// What would fix it, starting with `; ` (or empty).
        hint: String,
    },
    /// Writing the checkout failed.
    #[error("git context {url}: writing {path}: {source}")]
    Write {
        /// The repository URL.
        url: String,
        /// The path being written.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// An error and its sources on one line, each text once (a source often repeats
/// its cause's text).
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
