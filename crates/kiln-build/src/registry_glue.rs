//! Connects kiln-auth (docker config.json credentials, TLS material) to
//! kiln-registry's provider traits, and maps kaniko's registry flags onto the
//! registry client's options.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kiln_registry::{Credential, CredentialProvider, RetryPolicy, TlsProvider};

use crate::error::BuildError;
use crate::options::BuildOptions;

/// Credentials from the docker config files / `DOCKER_AUTH_CONFIG` / helpers.
struct KeychainCredentials(kiln_auth::Keychain);

impl CredentialProvider for KeychainCredentials {
    fn credential(&self, registry: &str) -> Result<Option<Credential>, String> {
        match self.0.resolve(registry).map_err(|e| e.to_string())? {
            kiln_auth::Credential::Anonymous => Ok(None),
            kiln_auth::Credential::Basic { username, password } => Ok(Some(Credential::Basic {
                username,
                password: password.expose().to_string(),
            })),
            kiln_auth::Credential::IdentityToken(t) => {
                Ok(Some(Credential::IdentityToken(t.expose().to_string())))
            }
            kiln_auth::Credential::RegistryToken(t) => {
                Ok(Some(Credential::RegistryToken(t.expose().to_string())))
            }
        }
    }
}

/// TLS configs per registry; a second set for registries whose verification is skipped.
struct AuthTls {
    options: kiln_auth::TlsOptions,
    verified: kiln_auth::TlsConfigs,
    skipping: Mutex<BTreeMap<String, Arc<kiln_auth::TlsConfigs>>>,
}

impl TlsProvider for AuthTls {
    fn client_config(
        &self,
        registry: &str,
        skip_verify: bool,
    ) -> Result<rustls::ClientConfig, String> {
        if !skip_verify {
            return self
                .verified
                .client_config(registry)
                .map(|c| (*c).clone())
                .map_err(|e| e.to_string());
        }
        let configs = {
            let mut cache = self.skipping.lock().map_err(|_| "TLS cache poisoned")?;
            match cache.get(registry) {
                Some(c) => c.clone(),
                None => {
                    let mut options = self.options.clone();
                    options.skip_verify.insert(registry.to_string());
                    let c = Arc::new(
                        kiln_auth::TlsConfigs::new(options, &kiln_auth::ProcessEnvironment)
                            .map_err(|e| e.to_string())?,
                    );
                    cache.insert(registry.to_string(), c.clone());
                    c
                }
            }
        };
        configs
            .client_config(registry)
            .map(|c| (*c).clone())
            .map_err(|e| e.to_string())
    }

    fn unknown_authority_message(&self, registry: &str) -> String {
        format!(
            "the certificate of {registry} is signed by an unknown authority: add its CA with --registry-certificate {registry}=/path/ca.pem or SSL_CERT_FILE, or use --skip-tls-verify-registry {registry}"
        )
    }
}

/// A registry client configured from the build options.
pub fn client(options: &BuildOptions) -> Result<kiln_registry::Client, BuildError> {
    let env = kiln_auth::ProcessEnvironment;
    let keychain = kiln_auth::Keychain::load(&env, kiln_auth::KeychainOptions::default())
        .map_err(|e| BuildError::Registry(format!("loading registry credentials: {e}")))?;
    let r = &options.registry;
    let tls_options = kiln_auth::TlsOptions {
        system_roots: kiln_auth::tls::SystemRoots::Auto,
        skip_verify: r.skip_tls_verify_registries.iter().cloned().collect(),
        registry_ca: r.registry_certificates.clone(),
        client_certificates: r
            .registry_client_certs
            .iter()
            .map(|(k, c)| {
                (
                    k.clone(),
                    kiln_auth::ClientCertificate {
                        cert: c.cert.clone(),
                        key: c.key.clone(),
                    },
                )
            })
            .collect(),
    };
    let verified = kiln_auth::TlsConfigs::new(tls_options.clone(), &env)
        .map_err(|e| BuildError::Registry(format!("loading TLS material: {e}")))?;
    let tls = AuthTls {
        options: tls_options,
        verified,
        skipping: Mutex::new(BTreeMap::new()),
    };
    let mut reg =
        kiln_registry::RegistryOptions::new(Arc::new(KeychainCredentials(keychain)), Arc::new(tls));
    reg.insecure_push = r.insecure;
    reg.insecure_pull = r.insecure_pull;
    reg.insecure_registries = r.insecure_registries.iter().cloned().collect();
    reg.skip_tls_verify_push = r.skip_tls_verify;
    reg.skip_tls_verify_pull = r.skip_tls_verify_pull;
    reg.skip_tls_verify_registries = r.skip_tls_verify_registries.iter().cloned().collect();
    reg.mirrors = r.registry_mirrors.clone();
    reg.registry_maps = r.registry_maps.clone();
    reg.skip_default_registry_fallback = r.skip_default_registry_fallback;
    let retries = options
        .retries
        .push_retry
        .max(options.retries.image_download_retry);
    let default = RetryPolicy::default();
    reg.retry = RetryPolicy {
        max_attempts: default.max_attempts.max(retries + 1),
        ..default
    };
    Ok(kiln_registry::Client::new(reg))
}
