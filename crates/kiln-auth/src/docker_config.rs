//! The credential parts of Docker's `config.json` (also podman's `auth.json` and
//! GitLab's `DOCKER_AUTH_CONFIG`, which share the format).

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;

use crate::credential::Credential;
use crate::error::AuthError;
use crate::registry_key::normalize;
use crate::secret::Secret;

/// One parsed config, with where it came from.
#[derive(Debug, Clone, Default)]
pub struct DockerConfig {
    /// A path, or `$DOCKER_AUTH_CONFIG`.
    pub origin: String,
    auths: BTreeMap<String, AuthEntry>,
    cred_helpers: BTreeMap<String, String>,
    creds_store: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RawConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Clone, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<Secret>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<Secret>,
    #[serde(default)]
    identitytoken: Option<Secret>,
    #[serde(default)]
    registrytoken: Option<Secret>,
}

impl std::fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthEntry")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

/// How a config answers for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigAnswer {
    /// Stored credentials.
    Credential(Credential),
    /// Ask this helper (`docker-credential-NAME`).
    Helper(String),
}

impl DockerConfig {
    /// Parses a config's JSON text.
    pub fn parse(origin: &str, text: &str) -> Result<DockerConfig, AuthError> {
        let raw: RawConfig =
            serde_json::from_str(text).map_err(|e| AuthError::parse(origin, &e))?;
        Ok(DockerConfig {
            origin: origin.to_owned(),
            auths: raw.auths,
            cred_helpers: raw.cred_helpers,
            creds_store: raw.creds_store.filter(|s| !s.is_empty()),
        })
    }

    /// What this config says about `registry` (a host, `host:port`, or a key with
    /// scheme/path): `credHelpers` for the host first, then a non-empty `auths` entry
    /// (exact key first, then any key naming the same host), then `credsStore`.
    pub fn lookup(&self, registry: &str) -> Result<Option<ConfigAnswer>, AuthError> {
        let host = normalize(registry);
        if let Some(helper) = self
            .cred_helpers
            .iter()
            .find(|(k, _)| normalize(k) == host)
            .map(|(_, v)| v)
        {
            return Ok(Some(ConfigAnswer::Helper(helper.clone())));
        }
        let exact = self.auths.get_key_value(registry);
        let entries = exact
            .into_iter()
            .chain(self.auths.iter().filter(|(k, _)| normalize(k) == host));
        for (key, entry) in entries {
            if let Some(credential) = self.entry_credential(key, entry)? {
                return Ok(Some(ConfigAnswer::Credential(credential)));
            }
        }
        Ok(self.creds_store.clone().map(ConfigAnswer::Helper))
    }

    fn entry_credential(
        &self,
        key: &str,
        entry: &AuthEntry,
    ) -> Result<Option<Credential>, AuthError> {
        let present = |s: &Option<Secret>| s.as_ref().filter(|s| !s.is_empty()).cloned();
        if let Some(token) = present(&entry.identitytoken) {
            return Ok(Some(Credential::IdentityToken(token)));
        }
        if let Some(token) = present(&entry.registrytoken) {
            return Ok(Some(Credential::RegistryToken(token)));
        }
        if let Some(auth) = present(&entry.auth) {
            let invalid = |reason| AuthError::InvalidAuthField {
                origin: self.origin.clone(),
                key: key.to_owned(),
                reason,
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.expose().trim())
                .map_err(|_| invalid("is not valid base64"))?;
            let text =
                String::from_utf8(decoded).map_err(|_| invalid("is not UTF-8 once decoded"))?;
            let (username, password) = text
                .split_once(':')
                .ok_or_else(|| invalid("does not decode to user:password"))?;
            return Ok(Some(Credential::Basic {
                username: username.to_owned(),
                password: Secret::new(password),
            }));
        }
        match (&entry.username, present(&entry.password)) {
            (Some(username), Some(password)) if !username.is_empty() => {
                Ok(Some(Credential::Basic {
                    username: username.clone(),
                    password,
                }))
            }
            _ => Ok(None),
        }
    }
}
