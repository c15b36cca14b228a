//! Errors of credential lookup. They name the file or variable and the registry, never
//! a secret (JSON errors are reduced to line:column and a category, since serde's
//! messages may quote values).

use std::path::PathBuf;

/// A credential lookup failure.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A config file exists but cannot be read.
    #[error("reading registry credentials from {path}: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A config file or `DOCKER_AUTH_CONFIG` is not valid JSON of the expected shape.
    #[error("parsing registry credentials in {origin} at line {line}, column {column}: {category}")]
    ParseConfig {
        /// A path or `$DOCKER_AUTH_CONFIG`.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// `syntax error`, `wrong type or shape`, `unexpected end of input`.
        category: &'static str,
    },
    /// An `auths` entry's `auth` field is not base64 of `user:password`.
    #[error("credentials for {key} in {origin}: the \"auth\" field {reason}")]
    InvalidAuthField {
        /// A path or `$DOCKER_AUTH_CONFIG`.
        origin: String,
        /// The `auths` key.
        key: String,
        /// What is wrong (without the value).
        reason: &'static str,
    },
    /// The configured credential helper is not on `PATH`.
    #[error(
        "credential helper docker-credential-{helper} for {registry} (configured in {origin}) was not found in PATH; install it or remove it from the config"
    )]
    HelperMissing {
        /// Helper suffix (`ecr-login`, `gcloud`, ...).
        helper: String,
        /// Registry host.
        registry: String,
        /// Where it was configured.
        origin: String,
    },
    /// The helper could not be run.
    #[error("running credential helper {program} for {registry}: {source}")]
    HelperSpawn {
        /// The program path.
        program: PathBuf,
        /// Registry host.
        registry: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The helper exited with an error.
    #[error(
        "credential helper docker-credential-{helper} failed for {registry} ({status}): {message}"
    )]
    HelperFailed {
        /// Helper suffix.
        helper: String,
        /// Registry host.
        registry: String,
        /// Exit status.
        status: String,
        /// What it printed (trimmed, shortened).
        message: String,
    },
    /// The helper did not answer in time and was killed.
    #[error(
        "credential helper docker-credential-{helper} for {registry} did not answer within {seconds} s and was killed"
    )]
    HelperTimeout {
        /// Helper suffix.
        helper: String,
        /// Registry host.
        registry: String,
        /// The timeout.
        seconds: u64,
    },
    /// The helper's answer is not `{"Username": ..., "Secret": ...}`.
    #[error(
        "credential helper docker-credential-{helper} for {registry} answered something that is not credentials JSON"
    )]
    HelperOutput {
        /// Helper suffix.
        helper: String,
        /// Registry host.
        registry: String,
    },
}

impl AuthError {
    pub(crate) fn parse(origin: &str, e: &serde_json::Error) -> AuthError {
        let category = match e.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "wrong type or shape",
            serde_json::error::Category::Eof => "unexpected end of input",
        };
        AuthError::ParseConfig {
            origin: origin.to_owned(),
            line: e.line(),
            column: e.column(),
            category,
        }
    }
}
