//! Where credentials and TLS configuration come from. kiln-auth provides both (docker
//! config, credential helpers, system roots, per-registry CAs); an embedder may inject its
//! own.

use std::fmt;

/// A credential for one registry. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// Username and password (or a CI job token as password): Basic auth, or Basic
    /// credentials sent to the token realm.
    Basic { username: String, password: String },
    /// An identity (refresh) token: exchanged at the realm with an OAuth2
    /// `grant_type=refresh_token` POST.
    IdentityToken(String),
    /// A registry token: sent as `Bearer` as is.
    RegistryToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
            Credential::RegistryToken(_) => f.write_str("RegistryToken(<redacted>)"),
        }
    }
}

/// Looks up the credential for a registry (`docker.io`, `host:port`).
pub trait CredentialProvider: Send + Sync {
    /// `Ok(None)`: anonymous. Errors are messages (a failing credential helper) and must
    /// not contain secrets.
    fn credential(&self, registry: &str) -> Result<Option<Credential>, String>;
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

    /// The message for a certificate signed by an unknown authority: names the registry
    /// and says how to trust its CA.
    fn unknown_authority_message(&self, registry: &str) -> String;
}

/// No credentials anywhere: every registry is used anonymously.
#[derive(Debug, Default, Clone, Copy)]
pub struct Anonymous;

impl CredentialProvider for Anonymous {
    fn credential(&self, _registry: &str) -> Result<Option<Credential>, String> {
        Ok(None)
    }
}

/// Fixed credentials per registry, consulted before a fallback provider.
pub struct StaticCredentials<F> {
    pub entries: std::collections::BTreeMap<String, Credential>,
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
    fn credential(&self, registry: &str) -> Result<Option<Credential>, String> {
        match self.entries.get(registry) {
            Some(c) => Ok(Some(c.clone())),
            None => self.fallback.credential(registry),
        }
    }
}
