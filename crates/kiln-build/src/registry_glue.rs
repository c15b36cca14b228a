//! Maps kaniko's registry, TLS and retry flags onto kiln-registry's client
//! options, with credentials from kiln-auth's keychain (docker config files,
//! `DOCKER_AUTH_CONFIG`, credential helpers).

use std::sync::Arc;

use kiln_registry::{AuthTls, RetryPolicy};

use crate::error::BuildError;
use crate::options::BuildOptions;

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
    let verified = kiln_auth::TlsConfigs::new(tls_options, &env)
        .map_err(|e| BuildError::Registry(format!("loading TLS material: {e}")))?;
    let mut reg =
        kiln_registry::RegistryOptions::new(Arc::new(keychain), Arc::new(AuthTls::new(verified)));
    reg.insecure_push = r.insecure;
    reg.insecure_pull = r.insecure_pull;
    reg.insecure_registries = r.insecure_registries.iter().cloned().collect();
    reg.skip_tls_verify_push = r.skip_tls_verify;
    reg.skip_tls_verify_pull = r.skip_tls_verify_pull;
    reg.skip_tls_verify_registries = r.skip_tls_verify_registries.iter().cloned().collect();
    reg.mirrors = r.registry_mirrors.clone();
    reg.registry_maps = r.registry_maps.clone();
    reg.skip_default_registry_fallback = r.skip_default_registry_fallback;
    if let Some(timeout) = r.io_timeout {
        reg.io_timeout = timeout;
    }
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
