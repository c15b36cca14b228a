//! Errors: every error says the operation, the registry, the repository (and the tag or
//! digest), and why; HTTP failures carry the status and the registry's error envelope
//! (`{"errors":[{"code","message","detail"}]}`). URLs are shown without their query (upload
//! state), and no header value ever enters an error, so credentials and tokens cannot leak.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What kiln was doing when the error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Ping,
    Authenticate,
    PullManifest,
    PushManifest,
    CheckBlob,
    PullBlob,
    MountBlob,
    PushBlob,
    PushImage,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Ping => "contacting registry",
            Operation::Authenticate => "authenticating to",
            Operation::PullManifest => "pulling manifest",
            Operation::PushManifest => "pushing manifest",
            Operation::CheckBlob => "checking blob",
            Operation::PullBlob => "pulling blob",
            Operation::MountBlob => "mounting blob",
            Operation::PushBlob => "pushing blob",
            Operation::PushImage => "pushing image",
        })
    }
}

/// One entry of the registry's error envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryErrorEntry {
    /// `UNAUTHORIZED`, `DENIED`, `NAME_UNKNOWN`, `MANIFEST_INVALID`, `BLOB_UNKNOWN`, …
    pub code: String,
    pub message: String,
    /// The `detail` value as compact JSON (truncated), if any.
    pub detail: Option<String>,
}

impl fmt::Display for RegistryErrorEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

/// Parses `{"errors":[…]}`; `None` when the body is not an error envelope.
pub fn parse_error_envelope(body: &[u8]) -> Option<Vec<RegistryErrorEntry>> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        detail: Option<serde_json::Value>,
    }
    let env: Envelope = serde_json::from_slice(body).ok()?;
    Some(
        env.errors
            .into_iter()
            .map(|e| RegistryErrorEntry {
                code: e.code,
                message: e.message,
                detail: e
                    .detail
                    .filter(|d| !d.is_null())
                    .map(|d| truncate(&d.to_string(), 300)),
            })
            .collect(),
    )
}

/// A printable excerpt of a non-envelope body.
pub(crate) fn body_excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    (!text.is_empty()).then(|| truncate(text, 200))
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    #[error("the registry answered HTTP {status}{}", fmt_entries(errors, body.as_deref()))]
    Status {
        status: http::StatusCode,
        errors: Vec<RegistryErrorEntry>,
        body: Option<String>,
        retry_after: Option<Duration>,
    },
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The TLS certificate is not trusted; the message names the registry and says how
    /// to add its CA.
    #[error("{message}")]
    UnknownAuthority { message: String },
    #[error("TLS with {url} failed: {reason}")]
    Tls { url: String, reason: String },
    #[error("the transfer from/to {url} broke off: {reason}")]
    Transfer { url: String, reason: String },
    #[error("the content does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("the content has {actual} bytes, expected {expected}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("no image for platform {wanted}; the index has: {}", available.join(", "))]
    NoMatchingPlatform {
        wanted: String,
        available: Vec<String>,
    },
    #[error("unexpected answer from the registry: {0}")]
    Protocol(String),
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("{0}")]
    Invalid(String),
    #[error("every source failed: {}", fmt_all(.0))]
    AllSourcesFailed(Vec<Error>),
}

fn fmt_entries(errors: &[RegistryErrorEntry], body: Option<&str>) -> String {
    if !errors.is_empty() {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        format!(": {}", list.join("; "))
    } else if let Some(b) = body {
        format!(": {b}")
    } else {
        String::new()
    }
}

fn fmt_all(errors: &[Error]) -> String {
    let list: Vec<String> = errors.iter().map(|e| format!("[{e}]")).collect();
    list.join(" ")
}

/// An error of a registry operation, with its context.
#[derive(Debug)]
pub struct Error {
    op: Operation,
    registry: String,
    repository: Option<String>,
    object: Option<String>,
    attempts: u32,
    kind: Box<ErrorKind>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op, self.registry)?;
        if let Some(r) = &self.repository {
            write!(f, "/{r}")?;
        }
        if let Some(o) = &self.object {
            write!(f, " ({o})")?;
        }
        write!(f, ": {}", self.kind)?;
        if self.attempts > 1 {
            write!(f, " (after {} attempts)", self.attempts)?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            ErrorKind::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Error {
    pub fn op(&self) -> Operation {
        self.op
    }
    pub fn registry(&self) -> &str {
        &self.registry
    }
    pub fn repository(&self) -> Option<&str> {
        self.repository.as_deref()
    }
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
    /// How many attempts were made before giving up.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The HTTP status, when the registry answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match &*self.kind {
            ErrorKind::Status { status, .. } => Some(status.as_u16()),
            ErrorKind::AllSourcesFailed(all) => all.last().and_then(Error::status),
            _ => None,
        }
    }

    /// The registry's error codes (`UNAUTHORIZED`, `NAME_UNKNOWN`, …).
    pub fn codes(&self) -> Vec<&str> {
        match &*self.kind {
            ErrorKind::Status { errors, .. } => errors.iter().map(|e| e.code.as_str()).collect(),
            ErrorKind::AllSourcesFailed(all) => all.iter().flat_map(Error::codes).collect(),
            _ => Vec::new(),
        }
    }

    /// The credentials were missing, wrong, or not allowed to do this.
    pub fn is_auth_failure(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
            || self
                .codes()
                .iter()
                .any(|c| matches!(*c, "UNAUTHORIZED" | "DENIED"))
    }

    /// The manifest, blob or repository does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Transient: worth another attempt.
    pub fn is_retryable(&self) -> bool {
        match &*self.kind {
            ErrorKind::Status { status, .. } => {
                status.is_server_error() && *status != http::StatusCode::NOT_IMPLEMENTED
                    || *status == http::StatusCode::TOO_MANY_REQUESTS
                    || *status == http::StatusCode::REQUEST_TIMEOUT
            }
            ErrorKind::Connect { .. }
            | ErrorKind::Transfer { .. }
            | ErrorKind::DigestMismatch { .. }
            | ErrorKind::SizeMismatch { .. } => true,
            _ => false,
        }
    }

    /// The delay the registry asked for with `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match &*self.kind {
            ErrorKind::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = self.attempts.max(attempts);
        self
    }
}

/// The context errors are built from: operation, registry, repository, object.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub op: Operation,
    pub registry: String,
    pub repository: Option<String>,
    pub object: Option<String>,
}

impl Ctx {
    pub fn new(op: Operation, registry: &str) -> Ctx {
        Ctx {
            op,
            registry: registry.to_string(),
            repository: None,
            object: None,
        }
    }
    pub fn repo(mut self, repository: &str) -> Ctx {
        self.repository = Some(repository.to_string());
        self
    }
    pub fn object(mut self, object: impl fmt::Display) -> Ctx {
        self.object = Some(object.to_string());
        self
    }
    pub fn err(&self, kind: ErrorKind) -> Error {
        Error {
            op: self.op,
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            object: self.object.clone(),
            attempts: 1,
            kind: Box::new(kind),
        }
    }
    pub fn io(
        &self,
        action: &'static str,
        path: &std::path::Path,
        source: std::io::Error,
    ) -> Error {
        self.err(ErrorKind::Io {
            action,
            path: path.to_path_buf(),
            source,
        })
    }
    pub fn protocol(&self, what: impl Into<String>) -> Error {
        self.err(ErrorKind::Protocol(what.into()))
    }
}

/// A URL for messages: scheme, host and path, never the query (upload state, tokens).
pub(crate) fn display_url(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_parsed_and_shown() {
        let body = br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry","detail":{"name":"x/y"}}]}"#;
        let entries = parse_error_envelope(body).unwrap();
        assert_eq!(entries[0].code, "NAME_UNKNOWN");
        let e = Ctx::new(Operation::PullManifest, "reg.example:5000")
            .repo("x/y")
            .object("latest")
            .err(ErrorKind::Status {
                status: http::StatusCode::NOT_FOUND,
                errors: entries,
                body: None,
                retry_after: None,
            });
        assert_eq!(
            e.to_string(),
            r#"pulling manifest reg.example:5000/x/y (latest): the registry answered HTTP 404 Not Found: NAME_UNKNOWN: repository name not known to registry ({"name":"x/y"})"#
        );
        assert!(e.is_not_found() && !e.is_retryable() && !e.is_auth_failure());
        assert_eq!(e.codes(), vec!["NAME_UNKNOWN"]);
        assert!(parse_error_envelope(b"<html>oops</html>").is_none());
        assert_eq!(
            body_excerpt(b"  <html>\noops</html> ").as_deref(),
            Some("<html> oops</html>")
        );
    }

    #[test]
    fn retryable_statuses() {
        let ctx = Ctx::new(Operation::PullBlob, "r");
        let st = |s: u16| {
            ctx.err(ErrorKind::Status {
                status: http::StatusCode::from_u16(s).unwrap(),
                errors: vec![],
                body: None,
                retry_after: None,
            })
        };
        assert!(st(500).is_retryable() && st(503).is_retryable() && st(429).is_retryable());
        assert!(!st(501).is_retryable() && !st(401).is_retryable() && !st(404).is_retryable());
        assert!(st(401).is_auth_failure() && st(403).is_auth_failure());
    }

    #[test]
    fn urls_are_shown_without_query_or_userinfo() {
        let u = url::Url::parse("https://u:p@h:5000/v2/x/blobs/uploads/abc?_state=SECRET&digest=d")
            .unwrap();
        assert_eq!(display_url(&u), "https://h:5000/v2/x/blobs/uploads/abc");
    }
}
