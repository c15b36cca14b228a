//! Remote build contexts for kiln: what kaniko accepts as `--context` besides a
//! directory or a tar file, fetched into a directory the engine then treats as a
//! plain context.
//!
//! # Design
//!
//! - [`GitSource`] is a git repository with kaniko's grammar
//!   (`git://HOST/PATH[#REF[#COMMIT]]`, `https://HOST/PATH.git#…`) and its `--git`
//!   options ([`GitOptions`]). [`GitSource::fetch`] clones it with gitoxide (pure
//!   Rust: kiln's image has no git binary) into a bare repository in a scratch
//!   directory, shallow (depth 1) whenever the ref allows, then writes the
//!   commit's tree itself (`git::checkout`): no `.git`, entries confined to the
//!   destination, submodules checked out recursively when asked.
//! - HTTPS goes through gitoxide's reqwest transport, but with the rustls
//!   configuration kiln-auth builds for every other connection (system roots,
//!   `SSL_CERT_FILE`, `SSL_CERT_DIR`, skip-verify), so one CA setup serves
//!   registries and git alike, with kiln's single crypto provider (ring).
//! - Credentials ([`GitCredentials`]: kaniko's `GIT_USERNAME`, `GIT_PASSWORD`,
//!   `GIT_TOKEN`, or user info in the URL) are handed to gitoxide only when the
//!   server asks; URLs are always shown without user info and errors never hold a
//!   secret ([`ContextError`]).
//!
//! - [`HttpTarball`] is `--context https://…/context.tar.gz`: its body is
//!   returned as a reader for the engine's tar unpacker (any compression kiln
//!   reads), so the archive streams to disk and is never held in memory.
//!
//! - [`ObjectSource`] is an archive in an object store, kaniko's schemes
//!   (`s3://BUCKET/KEY`, `gs://BUCKET/KEY`, Azure Blob URLs), fetched with
//!   `object_store` on a thread of its own (a private current-thread tokio
//!   runtime) and handed on as a blocking reader fed by a bounded channel.
//!
//! The crate's API is synchronous: no caller needs a runtime (only object
//! stores use one, privately, on their own thread). It is its own crate so
//! that gitoxide and reqwest, the heaviest dependencies of remote contexts, are
//! compiled once and never rebuilt with kiln-build.

mod error;
pub mod git;
mod object;
mod tarball;

pub use error::ContextError;
pub use git::source::redact as redact_url;
pub use git::{Fetched, GitCredentials, GitOptions, GitSource, keep_git_dir};
pub use object::ObjectSource;
pub use tarball::HttpTarball;
