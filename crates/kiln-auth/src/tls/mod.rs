//! rustls client configurations per registry.
//!
//! Roots are the system bundle plus `$SSL_CERT_FILE` plus every PEM file in
//! `$SSL_CERT_DIR` (so kaniko's `/kaniko/ssl/certs/additional-ca-cert-bundle.crt` with
//! `SSL_CERT_DIR=/kaniko/ssl/certs` works), plus a per-registry CA
//! (`--registry-certificate host=path`); a per-registry client certificate
//! (`--registry-client-cert host=cert,key`); skip-verify per registry. The crypto
//! provider is ring, chosen explicitly.

mod diagnose;
mod error;
mod insecure;
mod roots;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::RootCertStore;
use rustls::client::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

pub use diagnose::{diagnose, explain};
pub use error::{ADDITIONAL_CA_BUNDLE, TlsError};
pub use roots::{SYSTEM_BUNDLES, SystemRoots, read_pem_certs};

use crate::env::Environment;

/// A client certificate and its key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub key: PathBuf,
}

/// TLS settings, keyed by registry (`host` or `host:port`, as in kaniko's flags).
///
/// A key with a port applies to that port only; a key without one applies to every
/// port of the host.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Where system roots come from.
    pub system_roots: SystemRoots,
    /// Registries whose certificates are not verified at all.
    pub skip_verify: BTreeSet<String>,
    /// Extra CA (PEM file) trusted for one registry.
    pub registry_ca: BTreeMap<String, PathBuf>,
    /// Client certificate presented to one registry.
    pub client_certificates: BTreeMap<String, ClientCertificate>,
}

/// Builds and caches one [`ClientConfig`] per registry.
pub struct TlsConfigs {
    provider: Arc<CryptoProvider>,
    base_roots: RootCertStore,
    options: TlsOptions,
    cache: Mutex<BTreeMap<String, Arc<ClientConfig>>>,
}

impl std::fmt::Debug for TlsConfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfigs")
            .field("base_roots", &self.base_roots.len())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The ring provider, the one kiln uses everywhere.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Finds the value for `registry` in a per-registry map: exact `host:port` first, then
/// the bare host.
fn per_registry<'a, T>(map: &'a BTreeMap<String, T>, registry: &str) -> Option<&'a T> {
    matching_key(map.keys(), registry).and_then(|k| map.get(k))
}

/// The key naming `registry`: exact `host:port` first (case-insensitive), then the host.
fn matching_key<'a>(
    keys: impl Iterator<Item = &'a String> + Clone,
    registry: &str,
) -> Option<&'a String> {
    let registry = registry.to_ascii_lowercase();
    let host = host_of(&registry);
    let mut exact = keys.clone().filter(|k| k.to_ascii_lowercase() == registry);
    exact
        .next()
        .or_else(|| keys.into_iter().find(|k| k.to_ascii_lowercase() == host))
}

/// `host` of `host:port` (IPv6 literals in brackets kept whole).
fn host_of(registry: &str) -> &str {
    if registry.starts_with('[') {
        return registry
            .split_once(']')
            .map_or(registry, |(h, _)| &registry[..=h.len()]);
    }
    registry.rsplit_once(':').map_or(registry, |(h, _)| h)
}

impl TlsConfigs {
    /// Loads the base roots now (system, `SSL_CERT_FILE`, `SSL_CERT_DIR` from `env`).
    pub fn new(options: TlsOptions, env: &dyn Environment) -> Result<TlsConfigs, TlsError> {
        let base_roots = roots::base_roots(&options.system_roots, env)?;
        Ok(TlsConfigs {
            provider: crypto_provider(),
            base_roots,
            options,
            cache: Mutex::new(BTreeMap::new()),
        })
    }

    /// How many trust anchors every registry starts with.
    pub fn base_root_count(&self) -> usize {
        self.base_roots.len()
    }

    /// True when `registry`'s certificate is not verified.
    pub fn skips_verification(&self, registry: &str) -> bool {
        let set: BTreeMap<String, ()> = self
            .options
            .skip_verify
            .iter()
            .map(|k| (k.clone(), ()))
            .collect();
        per_registry(&set, registry).is_some()
    }

    /// The client configuration for `registry` (`host[:port]`), built once and cached.
    /// No ALPN is set; clone it to add `h2`/`http/1.1`.
    pub fn client_config(&self, registry: &str) -> Result<Arc<ClientConfig>, TlsError> {
        let key = registry.to_ascii_lowercase();
        if let Some(config) = self.cache.lock().expect("TLS config cache lock").get(&key) {
            return Ok(config.clone());
        }
        let config = Arc::new(self.build(registry)?);
        self.cache
            .lock()
            .expect("TLS config cache lock")
            .insert(key, config.clone());
        Ok(config)
    }

    fn build(&self, registry: &str) -> Result<ClientConfig, TlsError> {
        let config_err = |source| TlsError::Config {
            registry: registry.to_owned(),
            source,
        };
        let builder = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(config_err)?;
        let builder = if self.skips_verification(registry) {
            tracing::warn!(
                registry,
                "TLS certificate verification disabled for this registry"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(insecure::AcceptAnyCertificate(
                    self.provider.clone(),
                )))
        } else {
            let mut roots = self.base_roots.clone();
            if let Some(ca) = per_registry(&self.options.registry_ca, registry) {
                let certs = read_pem_certs(ca, "registry CA certificate")?;
                if certs.is_empty() {
                    return Err(TlsError::NoCertificate {
                        what: "registry CA certificate",
                        path: ca.clone(),
                    });
                }
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(TlsError::Pem {
                        what: "registry CA certificate",
                        path: ca.clone(),
                        reason: "no certificate in it could be used as a trust anchor".to_owned(),
                    });
                }
            }
            builder.with_root_certificates(roots)
        };
        match per_registry(&self.options.client_certificates, registry) {
            Some(client) => {
                let (chain, key) = load_client_certificate(client)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(config_err)
            }
            None => Ok(builder.with_no_client_auth()),
        }
    }
}

fn load_client_certificate(
    client: &ClientCertificate,
) -> Result<
    (
        Vec<rustls_pki_types::CertificateDer<'static>>,
        PrivateKeyDer<'static>,
    ),
    TlsError,
> {
    let chain = read_pem_certs(&client.cert, "client certificate")?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            what: "client certificate",
            path: client.cert.clone(),
        });
    }
    let key = read_key(&client.key)?;
    Ok((chain, key))
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = fs_err::read(path).map_err(|e| TlsError::Pem {
        what: "client key",
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        what: "client key",
        path: path.to_path_buf(),
        reason: match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no PEM private key in it".to_owned(),
            other => other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_registry_prefers_host_port_then_host() {
        let mut map = BTreeMap::new();
        map.insert("reg.example:5000".to_owned(), 1);
        map.insert("reg.example".to_owned(), 2);
        assert_eq!(per_registry(&map, "reg.example:5000"), Some(&1));
        assert_eq!(per_registry(&map, "REG.example:443"), Some(&2));
        assert_eq!(per_registry(&map, "reg.example"), Some(&2));
        assert_eq!(per_registry(&map, "other"), None);
        assert_eq!(host_of("[::1]:5000"), "[::1]");
    }
}
