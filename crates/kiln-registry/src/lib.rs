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
//!   hash and write on a blocking thread into `DEST.<pid>-<n>.partial`, renamed once size and digest
//!   match. A blob is never whole in memory.
//! - A blob still being written (a layer while it is encoded) uploads as it grows:
//!   [`growing_blob`] pairs a `Write` over its file with a reader that streams it in
//!   one `PATCH` as it is written (or `PATCH`es each chunk of the options' chunk size)
//!   and closes with `PUT ?digest=` once the writer gives the digest; a registry
//!   refusing `PATCH` gets the finished blob in one `PUT` ([`Client::push_growing_blob`]).
//! - [`Client::resolve_image`] returns once the manifest is resolved and fetches the
//!   config meanwhile on the connection runtime ([`ConfigArrival`]), so a caller's
//!   first layer requests need not wait a round trip for it.
//! - A blob of at most [`UNASKED_MAX`] bytes is uploaded without a `HEAD` first (the
//!   question costs what sending it costs); a client remembers what each repository
//!   confirmed, so a blob it pushed is never sent there twice.
//! - A pusher expecting more blobs for a repository has the client keep upload sessions
//!   open there ([`Client::keep_sessions_ahead`], `ahead`): a blob that is ready takes
//!   one instead of paying the `POST`'s round trip then; the unused ones are cancelled
//!   ([`Client::close_sessions_ahead`]).
//! - Errors ([`error`]) name the operation, registry, repository and object, and carry the
//!   HTTP status and the registry's error codes; no header value ever enters an error or
//!   a log event.
//! - Progress: [`Client::with_progress`] gives a client whose blob downloads and
//!   uploads report bytes done and total to a [`ProgressHook`] after each chunk of at
//!   most 1 MiB and once when the blob is complete.
//! - Credentials and TLS configuration come from [`CredentialProvider`] and
//!   [`TlsProvider`] (kiln-auth implements both).
//!
//! # Example: push an OCI layout, pull it into another
//!
//! The registry here is a real `docker-registry` on 127.0.0.1 started by kiln-testkit;
//! `registry.host_port()` stands for any `host[:port]`.
//!
//! ```
//! use kiln_auth::{Keychain, ProcessEnvironment, TlsConfigs, TlsOptions};
//! use kiln_oci::{OciLayout, OciLayoutWriter, Platform, Reference};
//! use kiln_registry::{BlobSource, BlobToPush, Client, ImageToPush, PushTarget, RegistryOptions};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let registry = kiln_testkit::Registry::start_plain();
//! # let temp = tempfile::tempdir()?;
//! # let (source_dir, copy_dir) = (temp.path().join("busybox"), temp.path().join("copy"));
//! # kiln_testkit::FixtureImage::busybox().write_oci_layout(&source_dir, "latest");
//! let host = registry.host_port();
//! let keychain = Keychain::load(&ProcessEnvironment, Default::default())?;
//! let tls = TlsConfigs::new(TlsOptions::default(), &ProcessEnvironment)?;
//! let mut options = RegistryOptions::with_kiln_auth(keychain, tls);
//! options.insecure_registries.insert(host.clone()); // plain HTTP: --insecure-registry
//! let client = Client::new(options);
//! let reference = Reference::parse(&format!("{host}/tools/busybox:1.36"))?;
//!
//! // Push: the manifest as stored, its config and layers streamed from their files.
//! let layout = OciLayout::open(&source_dir)?;
//! let image = layout.image(Some("latest"), None)?;
//! let blobs = std::iter::once(&image.manifest.config)
//!     .chain(&image.manifest.layers)
//!     .map(|blob| BlobToPush {
//!         descriptor: blob.clone(),
//!         source: BlobSource::File(layout.blob_path(blob)),
//!         mount_from: None,
//!     })
//!     .collect();
//! let manifest = layout.read_document(&image.descriptor)?.into();
//! let media_type = image.descriptor.media_type.clone();
//! let to_push = ImageToPush { manifest, media_type, blobs };
//! let pushed = client.push_image(&to_push, &[PushTarget::from(&reference)]).await?;
//! assert_eq!(pushed.digest, image.descriptor.digest);
//!
//! // Pull: manifest (resolved for the platform) and config verified in memory,
//! // layers streamed to disk and verified.
//! let pulled = client.pull_image(&reference, &Platform::host()).await?;
//! let mut copy = OciLayoutWriter::create(&copy_dir)?;
//! for layer in &pulled.manifest.layers {
//!     client.fetch_blob(&pulled.source, layer, &copy.blob_path(&layer.digest)).await?;
//! }
//! copy.write_bytes(&pulled.config)?;
//! copy.write_bytes(&pulled.manifest_bytes)?;
//! copy.add_to_index(pulled.descriptor.clone(), Some("1.36"))?;
//! copy.finish()?;
//!
//! let copied = OciLayout::open(&copy_dir)?.image(Some("1.36"), None)?;
//! assert_eq!(copied.descriptor.digest, image.descriptor.digest);
//! # Ok(()) }
//! ```

#![warn(clippy::print_stdout, clippy::print_stderr)]

mod ahead;
mod auth;
mod body;
pub mod challenge;
mod client;
mod download;
pub mod error;
mod foreign;
mod growing;
mod idle;
mod io_runtime;
mod options;
mod progress;
mod providers;
mod pull;
mod push;
mod referrers;
pub mod retry;
mod session;
mod transport;
mod upload;

pub use client::{Client, ManifestRef, RepoRef};
pub use download::WriteWatch;
pub use error::{Error, ErrorKind, Operation, RegistryErrorEntry};
pub use growing::{GrowingBlob, GrowingBlobWriter, STREAM_CHUNK, growing_blob};
pub use kiln_auth::{Credential, Secret};
pub use options::{DEFAULT_IO_TIMEOUT, Direction, RegistryOptions};
pub use progress::{BlobProgress, ProgressHook};
pub use providers::{Anonymous, AuthTls, CredentialProvider, StaticCredentials, TlsProvider};
pub use pull::{CONFIG_LIMIT, ConfigArrival, ManifestDocument, PulledImage, ResolvedImage};
pub use push::{BlobOutcome, BlobToPush, ImageToPush, PushOutcome, PushTarget, UNASKED_MAX};
pub use referrers::{Referrers, ReferrersForm, referrers_tag};
pub use retry::RetryPolicy;
pub use upload::BlobSource;
