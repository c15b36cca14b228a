//! Where credentials and TLS configuration come from. kiln-auth's [`Keychain`] (docker
//! config, credential helpers, `DOCKER_AUTH_CONFIG`) and [`TlsConfigs`] (system roots,
//! `SSL_CERT_FILE`/`SSL_CERT_DIR`, per-registry CAs and client certificates) implement
//! both traits; an embedder may inject its own.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use kiln_auth::tls::SystemRoots;
use kiln_auth::{Credential, Keychain, ProcessEnvironment, TlsConfigs, TlsOptions};

/// Looks up the credential for a registry (`docker.io`, `host:port`).
pub trait CredentialProvider: Send + Sync {
    /// Errors are messages (a failing credential helper) and must not contain secrets.
    fn credential(&self, registry: &str) -> Result<Credential, String>;
}

/// Builds the rustls configuration for a registry host.
pub trait TlsProvider: Send + Sync {
    /// The client configuration for `registry` (`host[:port]`); `skip_verify` disables
    /// certificate verification for it.
    fn client_config(
        &self,
        registry: &str,
        skip_verify: bool,
    ) -> Result<rustls::ClientConfig, String>;
}

impl CredentialProvider for Keychain {
    fn credential(&self, registry: &str) -> Result<Credential, String> {
        self.resolve(registry).map_err(|e| e.to_string())
    }
}

/// No credentials anywhere: every registry is used anonymously.
#[derive(Debug, Default, Clone, Copy)]
pub struct Anonymous;

impl CredentialProvider for Anonymous {
    fn credential(&self, _registry: &str) -> Result<Credential, String> {
        Ok(Credential::Anonymous)
    }
}

/// Fixed credentials per registry, consulted before a fallback provider.
pub struct StaticCredentials<F> {
    pub entries: BTreeMap<String, Credential>,
    pub fallback: F,
}

impl<F> fmt::Debug for StaticCredentials<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("registries", &self.entries.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<F: CredentialProvider> CredentialProvider for StaticCredentials<F> {
    fn credential(&self, registry: &str) -> Result<Credential, String> {
        match self.entries.get(registry) {
            Some(c) => Ok(c.clone()),
            None => self.fallback.credential(registry),
        }
    }
}

/// kiln-auth's per-registry TLS configurations, plus skip-verify decided per direction
/// (kaniko's `--skip-tls-verify` is for pushes, `--skip-tls-verify-pull` for pulls),
/// which kiln-auth's per-registry set cannot express: such registries get a configuration
/// from a second [`TlsConfigs`] that skips verification for them.
pub struct AuthTls {
    configs: TlsConfigs,
    skipping: Mutex<BTreeMap<String, rustls::ClientConfig>>,
}

impl fmt::Debug for AuthTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthTls")
            .field("configs", &self.configs)
            .finish_non_exhaustive()
    }
}

impl AuthTls {
    pub fn new(configs: TlsConfigs) -> AuthTls {
        AuthTls {
            configs,
            skipping: Mutex::new(BTreeMap::new()),
        }
    }
}

impl TlsProvider for AuthTls {
    fn client_config(
        &self,
        registry: &str,
        skip_verify: bool,
    ) -> Result<rustls::ClientConfig, String> {
        if !skip_verify || self.configs.skips_verification(registry) {
            return self
                .configs
                .client_config(registry)
                .map(|c| (*c).clone())
                .map_err(|e| e.to_string());
        }
        let mut cache = self.skipping.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(registry) {
            return Ok(c.clone());
        }
        let options = TlsOptions {
            system_roots: SystemRoots::Empty,
            skip_verify: [registry.to_string()].into(),
            ..TlsOptions::default()
        };
        let config = TlsConfigs::new(options, &ProcessEnvironment)
            .and_then(|c| c.client_config(registry))
            .map(|c| (*c).clone())
            .map_err(|e| e.to_string())?;
        cache.insert(registry.to_string(), config.clone());
        Ok(config)
    }
}
