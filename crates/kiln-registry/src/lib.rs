//! OCI distribution client: challenge auth, pull with platform selection, streaming push,
//! mounts, retries, mirrors.
//!
//! # Design
//!
//! - [`Client`] holds one session (`session`) per registry and transport setting. A
//!   session pings `/v2/` once, which decides the scheme (HTTPS, or HTTP after HTTPS for
//!   registries kaniko's `--insecure*` flags name) and learns the `WWW-Authenticate`
//!   challenge ([`challenge`]). Requests then carry Basic credentials or a Bearer token
//!   for the scopes they need (`auth`); tokens are cached per scope set, and a 401 is
//!   answered once by re-reading the challenge (a push needing `pull,push`, a mount needing
//!   `pull` on the source repository).
//! - Redirects are followed by hand; `Authorization` is only sent to the registry's own
//!   origin, never to the object storage a blob GET redirects to.
//! - Retries ([`retry`]) wrap idempotent operations: GET/HEAD, manifest PUT, token
//!   requests, and whole blob uploads restarted from their POST. Bodies are re-opened from
//!   their file for each attempt (`body`).
//! - Blobs stream: uploads read 1 MiB chunks from disk on a blocking thread; downloads
//!   hash and write on a blocking thread into `DEST.partial`, renamed once size and digest
//!   match. A blob is never whole in memory.
//! - Errors ([`error`]) name the operation, registry, repository and object, and carry the
//!   HTTP status and the registry's error codes; no header value ever enters an error or
//!   a log event.
//! - Progress: [`Client::with_progress`] gives a client whose blob downloads and
//!   uploads report bytes done and total to a [`ProgressHook`] after each chunk of at
//!   most 1 MiB and once when the blob is complete.
//! - Credentials and TLS configuration come from [`CredentialProvider`] and
//!   [`TlsProvider`] (kiln-auth implements both).

#![warn(clippy::print_stdout, clippy::print_stderr)]

mod auth;
mod body;
pub mod challenge;
mod client;
mod download;
pub mod error;
mod foreign;
mod options;
mod progress;
mod providers;
mod pull;
mod push;
pub mod retry;
mod session;
mod transport;
mod upload;

pub use client::{Client, ManifestRef, RepoRef};
pub use error::{Error, ErrorKind, Operation, RegistryErrorEntry};
pub use kiln_auth::{Credential, Secret};
pub use options::{Direction, RegistryOptions};
pub use progress::{BlobProgress, ProgressHook};
pub use providers::{Anonymous, AuthTls, CredentialProvider, StaticCredentials, TlsProvider};
pub use pull::{CONFIG_LIMIT, ManifestDocument, PulledImage};
pub use push::{BlobOutcome, BlobToPush, ImageToPush, PushOutcome, PushTarget};
pub use retry::RetryPolicy;
pub use upload::BlobSource;
