//! Test support: real registries on 127.0.0.1 (plain, TLS, htpasswd, token), a token
//! issuer, a fault-injecting proxy, fixture images.
//!
//! Everything here drives real components, never mocks:
//!
//! - [`Registry`] runs Debian's `docker-registry` (distribution 2.8) as a child process
//!   on a free 127.0.0.1 port, in a temp dir, with its log kept in a file; the child is
//!   killed by PID and the dir removed on drop. [`RegistryBuilder`] combines TLS
//!   ([`RegistryTls`], optionally requiring client certificates), htpasswd (bcrypt) and
//!   token auth ([`TokenIssuer`]).
//! - [`TestCa`] (rcgen) issues server and client certificates.
//! - [`TokenIssuer`] is a small hyper server acting as GitLab's JWT realm (GET with
//!   Basic or anonymous, OAuth2 POST), signing ES256/RS256 tokens with ring, `x5c` or
//!   libtrust `kid` headers, with per-user allowed actions and a request log.
//! - [`FaultProxy`] forwards to a plain registry and injects faults (dropped
//!   connections, 500/429 answers, truncated bodies) while counting requests.
//! - [`ReferrersFront`] adds the OCI 1.1 referrers API (which distribution 2.8
//!   lacks) in front of a real [`Registry`], recording manifests PUT with a `subject`.
//! - [`HostileRegistry`] lies, one [`Lie`] per repository: a 100 MiB manifest or
//!   config, an endless config, a blob whose bytes do not match its digest, a
//!   decompression bomb, endless redirects, a body cut short or stalled, a token
//!   endpoint answering garbage.
//! - [`GitLabLike`] is GitLab's shape in one call: TLS registry + TLS realm, one CA,
//!   `gitlab-ci-token` with a job token, and the config.json a kaniko job writes.
//! - [`busybox`] builds a deterministic busybox rootfs (dir or tar) from the host's
//!   busybox-static; [`FixtureImage`] wraps layers into an OCI image and pushes it with
//!   `skopeo copy`; [`foreign`] does the same with Debian's arm64 busybox-static and
//!   finds qemu-user-static's emulators.
//! - [`Dockerd`] runs a private Docker engine (Debian's docker.io 20.10 with BuildKit
//!   0.8) with its data root, exec root, pidfile and socket in one temp dir; its
//!   [`Dockerd::docker`] command is always Debian's `/usr/bin/docker` pointed at it.
//!   Stopped by PID on drop, mounts and containerd leftovers cleaned up.
//! - [`GitDaemon`] (`git daemon`, `git://`) and [`GitHttp`] (`git http-backend`
//!   behind our own hyper CGI host, optional Basic auth and TLS) serve bare
//!   repositories for remote-context tests; [`git::git`] makes them reproducibly.
//!   [`StaticHttp`] serves a directory's files (Python's `http.server`);
//!   [`MotoS3`] is an S3-compatible server (PyPI's `moto[server]`), [`Azurite`]
//!   Azure Blob Storage (npm's `azurite`, Shared Key checked, blobs put with
//!   curl signed here) and [`GcsEmulator`] Google Cloud Storage (PyPI's
//!   `gcp-storage-emulator`, no credentials checked), with [`GcsFront`] in
//!   front of it adding what real GCS sends and the emulator omits (`ETag`,
//!   `Last-Modified`, `HEAD`, decoded bucket names, `NoSuchBucket` apart from
//!   `NoSuchKey`).
//! - [`rootless`] gives an unprivileged uid a subordinate id range for the
//!   length of a test and runs commands as that uid.
//!
//! Servers run on their own thread with a current-thread tokio runtime, so the API is
//! synchronous and works from plain `#[test]`s and `#[tokio::test]`s alike.
//! Functions panic with a clear message when something cannot be set up ("needs
//! docker-registry: run .ci/install-deps"): a test that cannot run must fail loudly.

#![warn(clippy::print_stdout, clippy::print_stderr)]
pub mod azurite;
pub mod busybox;
pub mod container;
pub mod debian;
pub mod dockerd;
pub mod foreign;
pub mod gcs_emulator;
pub mod gcs_front;
pub mod git;
pub mod gitlab;
pub mod hostile;
pub mod htpasswd;
pub mod image;
pub mod moto;
pub mod noise;
pub mod ports;
pub mod proxy;
pub mod referrers;
pub mod registry;
pub mod rootless;
mod server;
pub mod shaping;
pub mod static_http;
pub mod tls;
pub mod token;
pub mod tools;

pub use azurite::Azurite;
pub use dockerd::Dockerd;
pub use gcs_emulator::GcsEmulator;
pub use gcs_front::GcsFront;
pub use git::{GitDaemon, GitHttp, GitHttpOptions};
pub use gitlab::GitLabLike;
pub use hostile::{HostileRegistry, Lie};
pub use image::{FixtureImage, FixtureLayer};
pub use moto::MotoS3;
pub use proxy::{CutRule, FailRule, FaultProxy, Faults, StallRule, TruncateRule};
pub use referrers::ReferrersFront;
pub use registry::{Registry, RegistryBuilder};
pub use shaping::Shaping;
pub use static_http::StaticHttp;
pub use tls::{CertFiles, RegistryTls, TestCa};
pub use token::{TokenIssuer, TokenIssuerBuilder, TokenUser};
