//! Registry credentials and TLS material: docker config.json, credential helpers, CA
//! bundles, client certs.
//!
//! Two independent halves, both synchronous (no tokio):
//!
//! - [`Keychain`] answers "what do I present to registry R?" with a [`Credential`].
//!   It reads Docker's `config.json` (`$DOCKER_CONFIG` or `~/.docker`), podman's
//!   `auth.json` (`$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`) and
//!   GitLab's `$DOCKER_AUTH_CONFIG`, and runs `docker-credential-*` helpers with a
//!   timeout. Last, when none of those has an entry for R, GitLab's CI variables
//!   (`CI_REGISTRY` with `CI_REGISTRY_USER`/`CI_REGISTRY_PASSWORD` or `CI_JOB_TOKEN`,
//!   and the dependency proxy's), see [`ci_env`]. Every environment lookup goes
//!   through an [`Environment`], so embedders and tests pass their own.
//! - [`TlsConfigs`] answers "which rustls `ClientConfig` for registry R?": system roots +
//!   `$SSL_CERT_FILE` + `$SSL_CERT_DIR` + a per-registry CA, an optional client
//!   certificate, or skip-verify. [`tls::diagnose`] turns a handshake failure into an
//!   error that names the registry and says how to trust its CA.
//!
//! Secrets live in [`Secret`], whose `Debug`/`Display` print `<redacted>`; errors carry
//! paths, registry names, line:column, never a secret value.
//!
//! # Example: credentials and TLS for one registry
//!
//! ```
//! use kiln_auth::{Credential, Keychain, KeychainOptions, MapEnvironment, TlsConfigs, TlsOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A GitLab-style `$DOCKER_AUTH_CONFIG`. Pass `&ProcessEnvironment` instead to read
//! // the real environment and `~/.docker/config.json`.
//! let env = MapEnvironment::new().with(
//!     "DOCKER_AUTH_CONFIG",
//!     r#"{"auths": {"registry.example:5000": {"auth": "Y2k6czNjcmV0"}}}"#, // ci:s3cret
//! );
//! let keychain = Keychain::load(&env, KeychainOptions::default())?;
//! match keychain.resolve("registry.example:5000")? {
//!     Credential::Basic { username, password } => {
//!         assert_eq!(username, "ci");
//!         assert_eq!(password.to_string(), "<redacted>"); // `expose()` it on the wire only
//!     }
//!     other => panic!("expected a user and password, got {other:?}"),
//! }
//! assert_eq!(keychain.resolve("docker.io")?, Credential::Anonymous);
//!
//! // System roots plus a CA trusted for this registry only (`--registry-certificate`).
//! # let ca = kiln_testkit::TestCa::new("example CA");
//! # let ca_pem = ca.pem_path().to_path_buf();
//! let mut options = TlsOptions::default();
//! options.registry_ca.insert("registry.example:5000".into(), ca_pem);
//! let tls = TlsConfigs::new(options, &env)?;
//! let config = tls.client_config("registry.example:5000")?; // Arc<rustls::ClientConfig>
//! # let _ = config;
//! # Ok(()) }
//! ```

#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod ci_env;
mod credential;
mod docker_config;
mod env;
mod error;
mod helper;
mod keychain;
pub mod registry_key;
mod secret;
pub mod tls;

pub use credential::Credential;
pub use docker_config::{ConfigAnswer, DockerConfig};
pub use env::{Environment, MapEnvironment, ProcessEnvironment};
pub use error::AuthError;
pub use helper::find_helper;
pub use keychain::{Keychain, KeychainOptions};
pub use secret::Secret;
pub use tls::{ClientCertificate, TlsConfigs, TlsError, TlsOptions};
