//! Per-client options, mapped from kaniko's flags by the CLI: plain HTTP and skip-verify
//! per direction and per registry, docker.io mirrors and registry remaps with fallback
//! control, retries, upload parallelism and chunking.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::providers::{CredentialProvider, TlsProvider};
use crate::retry::RetryPolicy;

/// Whether a registry is used to pull from or push to (kaniko's flags differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    Pull,
    Push,
}

/// [`RegistryOptions::io_timeout`] unless set: a registry that sends and reads nothing
/// for two minutes is not coming back.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(120);

/// Everything a [`crate::Client`] needs to know.
#[derive(Clone)]
pub struct RegistryOptions {
    /// `--insecure`: registries pushed to may be reached over plain HTTP.
    pub insecure_push: bool,
    /// `--insecure-pull`: registries pulled from may be reached over plain HTTP.
    pub insecure_pull: bool,
    /// `--insecure-registry`: these registries (`host[:port]`) may use plain HTTP.
    pub insecure_registries: BTreeSet<String>,
    /// `--skip-tls-verify`: no certificate verification for pushes.
    pub skip_tls_verify_push: bool,
    /// `--skip-tls-verify-pull`: no certificate verification for pulls.
    pub skip_tls_verify_pull: bool,
    /// `--skip-tls-verify-registry`: no certificate verification for these registries.
    pub skip_tls_verify_registries: BTreeSet<String>,
    /// `--registry-mirror`: mirrors of docker.io (`host[/path prefix]`), tried in order.
    pub mirrors: Vec<String>,
    /// `--registry-map`: `original -> [replacement host[/path prefix], …]`, tried in order.
    pub registry_maps: BTreeMap<String, Vec<String>>,
    /// `--skip-default-registry-fallback`: never fall back to the original registry after
    /// the mirrors / remaps failed.
    pub skip_default_registry_fallback: bool,
    pub retry: RetryPolicy,
    /// The registry I/O timeout: a connection on which no byte moves either way for this
    /// long while kiln waits on it (handshake, response head, a body that stalls, an
    /// upload the server stops reading) fails, and is retried as a broken transfer.
    pub io_timeout: Duration,
    /// Blobs uploaded at the same time (per push).
    pub max_parallel_uploads: usize,
    /// Upload blobs larger than this in chunks of this size (PATCH); `None`: one PUT.
    pub chunk_size: Option<u64>,
    pub user_agent: String,
    pub credentials: Arc<dyn CredentialProvider>,
    pub tls: Arc<dyn TlsProvider>,
}

impl fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("insecure_push", &self.insecure_push)
            .field("insecure_pull", &self.insecure_pull)
            .field("insecure_registries", &self.insecure_registries)
            .field("skip_tls_verify_push", &self.skip_tls_verify_push)
            .field("skip_tls_verify_pull", &self.skip_tls_verify_pull)
            .field(
                "skip_tls_verify_registries",
                &self.skip_tls_verify_registries,
            )
            .field("mirrors", &self.mirrors)
            .field("registry_maps", &self.registry_maps)
            .field(
                "skip_default_registry_fallback",
                &self.skip_default_registry_fallback,
            )
            .field("retry", &self.retry)
            .field("io_timeout", &self.io_timeout)
            .field("max_parallel_uploads", &self.max_parallel_uploads)
            .field("chunk_size", &self.chunk_size)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

impl RegistryOptions {
    /// Defaults (HTTPS everywhere, verification on, no mirrors, 5 attempts, 4 parallel
    /// uploads, monolithic uploads) with the given credential and TLS sources.
    pub fn new(
        credentials: Arc<dyn CredentialProvider>,
        tls: Arc<dyn TlsProvider>,
    ) -> RegistryOptions {
        RegistryOptions {
            insecure_push: false,
            insecure_pull: false,
            insecure_registries: BTreeSet::new(),
            skip_tls_verify_push: false,
            skip_tls_verify_pull: false,
            skip_tls_verify_registries: BTreeSet::new(),
            mirrors: Vec::new(),
            registry_maps: BTreeMap::new(),
            skip_default_registry_fallback: false,
            retry: RetryPolicy::default(),
            io_timeout: DEFAULT_IO_TIMEOUT,
            max_parallel_uploads: 4,
            chunk_size: None,
            user_agent: concat!("kiln/", env!("CARGO_PKG_VERSION")).to_string(),
            credentials,
            tls,
        }
    }

    /// Defaults with kiln-auth as the credential and TLS source.
    pub fn with_kiln_auth(
        keychain: kiln_auth::Keychain,
        tls: kiln_auth::TlsConfigs,
    ) -> RegistryOptions {
        RegistryOptions::new(
            Arc::new(keychain),
            Arc::new(crate::providers::AuthTls::new(tls)),
        )
    }

    pub(crate) fn allow_plain_http(&self, registry: &str, dir: Direction) -> bool {
        let flag = match dir {
            Direction::Pull => self.insecure_pull,
            Direction::Push => self.insecure_push,
        };
        flag || contains_registry(&self.insecure_registries, registry)
    }

    pub(crate) fn skip_verify(&self, registry: &str, dir: Direction) -> bool {
        let flag = match dir {
            Direction::Pull => self.skip_tls_verify_pull,
            Direction::Push => self.skip_tls_verify_push,
        };
        flag || contains_registry(&self.skip_tls_verify_registries, registry)
    }

    /// Where to pull `registry/repository` from, in order: remaps, docker.io mirrors,
    /// then the registry itself unless fallback is disabled.
    pub fn pull_sources(&self, registry: &str, repository: &str) -> Vec<(String, String)> {
        let mut replacements: Vec<&str> = self
            .registry_maps
            .iter()
            .filter(|(orig, _)| same_registry(orig, registry))
            .flat_map(|(_, r)| r.iter().map(String::as_str))
            .collect();
        if is_docker_hub(registry) {
            replacements.extend(self.mirrors.iter().map(String::as_str));
        }
        let mut out: Vec<(String, String)> = replacements
            .into_iter()
            .filter(|m| !m.trim().is_empty())
            .map(|m| {
                let m = m
                    .trim()
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/');
                match m.split_once('/') {
                    Some((host, prefix)) => (host.to_string(), format!("{prefix}/{repository}")),
                    None => (m.to_string(), repository.to_string()),
                }
            })
            .collect();
        if out.is_empty() || !self.skip_default_registry_fallback {
            out.push((registry.to_string(), repository.to_string()));
        }
        out.dedup();
        out
    }
}

fn contains_registry(set: &BTreeSet<String>, registry: &str) -> bool {
    set.iter().any(|r| same_registry(r, registry))
}

fn same_registry(a: &str, b: &str) -> bool {
    a == b || is_docker_hub(a) && is_docker_hub(b)
}

fn is_docker_hub(registry: &str) -> bool {
    matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Anonymous;

    struct NoTls;
    impl TlsProvider for NoTls {
        fn client_config(&self, _: &str, _: bool) -> Result<rustls::ClientConfig, String> {
            Err("unused".into())
        }
    }

    fn opts() -> RegistryOptions {
        RegistryOptions::new(Arc::new(Anonymous), Arc::new(NoTls))
    }

    #[test]
    fn mirrors_apply_to_docker_hub_with_fallback() {
        let mut o = opts();
        o.mirrors = vec!["mirror.gcr.io".into(), "https://m.example/hub/".into()];
        assert_eq!(
            o.pull_sources("docker.io", "library/alpine"),
            vec![
                ("mirror.gcr.io".into(), "library/alpine".into()),
                ("m.example".into(), "hub/library/alpine".into()),
                ("docker.io".into(), "library/alpine".into()),
            ]
        );
        assert_eq!(
            o.pull_sources("quay.io", "a/b"),
            vec![("quay.io".into(), "a/b".into())]
        );
        o.skip_default_registry_fallback = true;
        assert_eq!(o.pull_sources("index.docker.io", "library/alpine").len(), 2);
        // Without any mirror for it, fallback control does not remove the registry.
        assert_eq!(o.pull_sources("quay.io", "a/b").len(), 1);
    }

    #[test]
    fn registry_maps_apply_to_any_registry() {
        let mut o = opts();
        o.registry_maps.insert(
            "gcr.io".into(),
            vec!["local:5000/gcr".into(), "other:5001".into()],
        );
        assert_eq!(
            o.pull_sources("gcr.io", "p/img"),
            vec![
                ("local:5000".into(), "gcr/p/img".into()),
                ("other:5001".into(), "p/img".into()),
                ("gcr.io".into(), "p/img".into()),
            ]
        );
    }

    #[test]
    fn insecure_and_skip_verify_per_direction_and_registry() {
        let mut o = opts();
        o.insecure_pull = true;
        o.insecure_registries.insert("r:5000".into());
        o.skip_tls_verify_registries.insert("docker.io".into());
        assert!(o.allow_plain_http("x", Direction::Pull));
        assert!(!o.allow_plain_http("x", Direction::Push));
        assert!(o.allow_plain_http("r:5000", Direction::Push));
        assert!(o.skip_verify("index.docker.io", Direction::Push));
        assert!(!o.skip_verify("x", Direction::Pull));
    }
}
