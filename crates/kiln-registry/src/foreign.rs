//! HTTP clients for hosts other than a registry itself: token realms and redirect targets
//! (object storage). Requests to them never carry the registry's `Authorization`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use url::Url;

use crate::error::{Ctx, Error, ErrorKind};
use crate::providers::TlsProvider;
use crate::transport::{HttpClient, build_client};

/// One pooled client per foreign host, with that host's TLS configuration.
pub(crate) struct ForeignClients {
    tls: Arc<dyn TlsProvider>,
    io_timeout: Duration,
    clients: Mutex<BTreeMap<String, HttpClient>>,
}

impl ForeignClients {
    pub fn new(tls: Arc<dyn TlsProvider>, io_timeout: Duration) -> ForeignClients {
        ForeignClients {
            tls,
            io_timeout,
            clients: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn client_for(&self, url: &Url, ctx: &Ctx) -> Result<HttpClient, Error> {
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => {
                return Err(ctx.protocol(format!(
                    "URL without host: {}",
                    crate::error::display_url(url)
                )));
            }
        };
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&host) {
            return Ok(c.clone());
        }
        let config = self.tls.client_config(&host, false).map_err(|reason| {
            ctx.err(ErrorKind::Tls {
                url: crate::error::display_url(url),
                reason,
            })
        })?;
        let client = build_client(config, self.io_timeout);
        clients.insert(host, client.clone());
        Ok(client)
    }
}
