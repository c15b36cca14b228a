//! One HTTP exchange: the hyper client (HTTP/1.1, plain or rustls, connection pool whose
//! connections live on [`crate::io_runtime`], the I/O timeout of [`crate::idle`] on every
//! connection), and the classification of
//! transport failures into connect / TLS (unknown authority) / transfer errors. No
//! header value is ever logged.

use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as LegacyClient;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::body::HyperBody;
use crate::error::{Ctx, Error, ErrorKind, display_url};
use crate::idle::IdleConnector;
use crate::io_runtime::IoExecutor;
use kiln_auth::TlsError;

pub(crate) type HttpClient = LegacyClient<HttpsConnector<IdleConnector<HttpConnector>>, HyperBody>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A pooled HTTP/1.1 client able to speak `http://` and `https://` with `tls`, whose
/// connections fail after `io_timeout` without a byte moving.
/// (HTTP/1.1 only: parallel blobs go over parallel connections, which is faster for large
/// transfers than h2 streams sharing one connection's flow-control window.)
pub(crate) fn build_client(tls: rustls::ClientConfig, io_timeout: Duration) -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(IdleConnector::new(http, io_timeout));
    LegacyClient::builder(IoExecutor)
        .pool_idle_timeout(Duration::from_secs(60))
        .build(https)
}

/// Sends one request.
pub(crate) async fn send(
    client: &HttpClient,
    req: Request<HyperBody>,
    ctx: &Ctx,
) -> Result<Response<Incoming>, Error> {
    let url_text = req
        .uri()
        .to_string()
        .parse::<url::Url>()
        .map(|u| display_url(&u))
        .unwrap_or_default();
    let method = req.method().clone();
    let started = Instant::now();
    match client.request(req).await {
        Ok(resp) => {
            tracing::debug!(
                %method,
                url = %url_text,
                status = resp.status().as_u16(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "registry request"
            );
            Ok(resp)
        }
        Err(e) => {
            tracing::debug!(%method, url = %url_text, error = %chain(&e), "registry request failed");
            Err(classify(&e, url_text, ctx))
        }
    }
}

fn classify(e: &hyper_util::client::legacy::Error, url: String, ctx: &Ctx) -> Error {
    if let Some(rustls_error) = find_rustls_error(e) {
        return match kiln_auth::tls::explain(&ctx.registry, rustls_error) {
            Some(TlsError::UnknownAuthority { .. }) => {
                let message = kiln_auth::tls::explain(&ctx.registry, rustls_error)
                    .map(|t| t.to_string())
                    .unwrap_or_default();
                ctx.err(ErrorKind::UnknownAuthority { message })
            }
            Some(other) => ctx.err(ErrorKind::Tls { url, reason: other.to_string() }),
            None => ctx.err(ErrorKind::Tls {
                url,
                reason: format!(
                    "{rustls_error} (if {} serves plain HTTP, mark it insecure: --insecure-registry {})",
                    ctx.registry, ctx.registry
                ),
            }),
        };
    }
    let reason = chain(e);
    if e.is_connect() {
        ctx.err(ErrorKind::Connect { url, reason })
    } else {
        ctx.err(ErrorKind::Transfer { url, reason })
    }
}

/// Finds the rustls error in a source chain. `io::Error` wrappers are looked through with
/// `get_ref` (their `source()` skips the wrapped error), repeatedly: hyper-util wraps
/// tokio-rustls' io::Error in another io::Error.
fn find_rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// The error and its sources, joined by ": ".
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}
