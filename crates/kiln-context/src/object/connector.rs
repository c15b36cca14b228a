//! object_store's HTTP client, built with kiln-auth's rustls configuration
//! (system roots, `SSL_CERT_FILE`, `SSL_CERT_DIR`) and kiln's one crypto
//! provider, for every store.

use std::sync::Arc;

use object_store::client::{ClientOptions, HttpClient, HttpConnector};

/// Hands object_store a reqwest client with kiln's TLS settings.
#[derive(Debug)]
pub(super) struct KilnConnector {
    pub(super) tls: Arc<rustls::ClientConfig>,
    /// The store's name, for object_store's errors.
    pub(super) store: &'static str,
}

impl HttpConnector for KilnConnector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured((*self.tls).clone())
            .build()
            .map_err(|e| object_store::Error::Generic {
                store: self.store,
                source: Box::new(e),
            })?;
        Ok(HttpClient::new(client))
    }
}
