//! [`GcsFront`]: what real Google Cloud Storage sends and `gcp-storage-emulator`
//! omits, added in front of a running [`GcsEmulator`].
//!
//! The emulator stores and serves the objects; this front, a reverse proxy on
//! a free 127.0.0.1 port, fills exactly these gaps of its XML-style object
//! path (`/{bucket}/{object}`), and forwards everything else unchanged:
//!
//! - **Percent-escapes in bucket names.** GCS clients (object_store among
//!   them) escape every non-alphanumeric byte of the bucket (`my%2Dbucket`);
//!   the emulator looks the escaped name up literally and finds nothing. The
//!   front decodes the bucket before forwarding. (The emulator already
//!   decodes object names.)
//! - **`ETag` and `Last-Modified` on a download.** The emulator's
//!   `GET /{bucket}/{object}` sends neither; real GCS sends both, and
//!   object_store refuses a download without them. The front asks the
//!   emulator's JSON API for the object (`GET /storage/v1/b/{bucket}/o/{object}`)
//!   and adds `ETag` as GCS's XML API has it for a simple object (the quoted
//!   hex of the emulator's own `md5Hash`), `Last-Modified` from its `updated`
//!   time, and `x-goog-generation` from its `generation`.
//! - **`HEAD`.** The emulator answers 501; the front answers from the same
//!   metadata (`Content-Length` from `size`, `Content-Type`, the headers
//!   above), with no body.
//! - **Missing bucket vs. missing object.** The emulator answers both with the
//!   same empty 404. The front tells them apart by asking the JSON API for the
//!   bucket, and answers with GCS's XML error (`NoSuchBucket` or `NoSuchKey`).
//!
//! Nothing is synthesized: the object's bytes are the emulator's own download,
//! streamed through unbuffered, and every header added is derived from the
//! emulator's own metadata for that object.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;

use crate::GcsEmulator;
use crate::server::BackgroundServer;

type FrontBody = BoxBody<Bytes, hyper::Error>;
type Upstream = Client<HttpConnector, FrontBody>;

/// A running front; stops on drop (the emulator it fronts keeps running).
#[derive(Debug)]
pub struct GcsFront {
    port: u16,
    _server: BackgroundServer,
}

impl GcsFront {
    /// A front on a free 127.0.0.1 port for `emulator`.
    pub fn in_front_of(emulator: &GcsEmulator) -> GcsFront {
        let upstream = emulator.host();
        let (listener, port) = crate::server::bind_free();
        let server = BackgroundServer::spawn("kiln-gcs-front", async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let client: Upstream = Client::builder(TokioExecutor::new()).build_http();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (client, upstream) = (client.clone(), upstream.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (client, upstream) = (client.clone(), upstream.clone());
                        async move { Ok::<_, Infallible>(handle(&client, &upstream, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        GcsFront {
            port,
            _server: server,
        }
    }

    /// `127.0.0.1:PORT`, the form `STORAGE_EMULATOR_HOST` takes.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Paths the emulator serves itself under its own prefixes (JSON API,
/// uploads, media downloads): forwarded as they are.
const API_PREFIXES: [&str; 4] = ["/storage/", "/upload/", "/download/", "/_internal/"];

async fn handle(client: &Upstream, upstream: &str, req: Request<Incoming>) -> Response<FrontBody> {
    let path = req.uri().path().to_owned();
    let object_request = (req.method() == Method::GET || req.method() == Method::HEAD)
        && !API_PREFIXES.iter().any(|p| path.starts_with(p));
    let split = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .filter(|(bucket, object)| !bucket.is_empty() && !object.is_empty());
    let Some((bucket, object)) = split.filter(|_| object_request) else {
        return forward(client, upstream, req, None).await;
    };
    let bucket = percent_decode(bucket);
    let object_name = percent_decode(object);
    let meta = match metadata(client, upstream, &bucket, &object_name).await {
        Ok(Some(meta)) => meta,
        Ok(None) => return not_found(client, upstream, &bucket, &object_name).await,
        Err(reason) => return text(502, reason),
    };
    let headers = match MetaHeaders::from_json(&meta) {
        Ok(headers) => headers,
        Err(reason) => return text(502, reason),
    };
    if req.method() == Method::HEAD {
        let mut response = Response::builder()
            .status(200)
            .header("content-length", &headers.size)
            .header("content-type", &headers.content_type);
        for (name, value) in headers.added() {
            response = response.header(name, value);
        }
        return response
            .body(Empty::new().map_err(|never| match never {}).boxed())
            .expect("response");
    }
    // The object part goes on as the client escaped it (the emulator decodes
    // object names); only the bucket is decoded.
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let target = format!("/{}/{object}{query}", escape_segment(&bucket));
    let mut response = forward(client, upstream, req, Some(target)).await;
    if response.status().is_success() {
        for (name, value) in headers.added() {
            response.headers_mut().insert(
                name,
                value
                    .parse()
                    .expect("header values made from ASCII metadata"),
            );
        }
    }
    response
}

/// Sends `req` to the emulator (at `path_and_query` when given), streaming
/// both bodies.
async fn forward(
    client: &Upstream,
    upstream: &str,
    req: Request<Incoming>,
    path_and_query: Option<String>,
) -> Response<FrontBody> {
    let (mut parts, body) = req.into_parts();
    let path_and_query = path_and_query.unwrap_or_else(|| {
        parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "/".to_owned())
    });
    parts.uri = match format!("http://{upstream}{path_and_query}").parse() {
        Ok(uri) => uri,
        Err(e) => return text(400, format!("bad request path {path_and_query:?}: {e}")),
    };
    match client
        .request(Request::from_parts(parts, body.boxed()))
        .await
    {
        Ok(response) => response.map(BodyExt::boxed),
        Err(e) => text(502, format!("gcp-storage-emulator at {upstream}: {e}")),
    }
}

/// The emulator's JSON metadata for `bucket/object`, `None` when it has no
/// such object (or bucket).
async fn metadata(
    client: &Upstream,
    upstream: &str,
    bucket: &str,
    object: &str,
) -> Result<Option<Value>, String> {
    json_get(
        client,
        upstream,
        &format!(
            "/storage/v1/b/{}/o/{}",
            escape_segment(bucket),
            escape_segment(object)
        ),
    )
    .await
}

/// GCS's XML-API 404 for a missing object, or for a missing bucket when the
/// emulator's JSON API has no such bucket either.
async fn not_found(
    client: &Upstream,
    upstream: &str,
    bucket: &str,
    object: &str,
) -> Response<FrontBody> {
    let bucket_exists = match json_get(
        client,
        upstream,
        &format!("/storage/v1/b/{}", escape_segment(bucket)),
    )
    .await
    {
        Ok(found) => found.is_some(),
        Err(reason) => return text(502, reason),
    };
    let (code, message, details) = if bucket_exists {
        (
            "NoSuchKey",
            "The specified key does not exist.",
            format!("No such object: {bucket}/{object}"),
        )
    } else {
        (
            "NoSuchBucket",
            "The specified bucket does not exist.",
            format!("No such bucket: {bucket}"),
        )
    };
    let body = format!(
        "<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message><Details>{}</Details></Error>",
        xml_escape(&details)
    );
    Response::builder()
        .status(404)
        .header("content-type", "application/xml; charset=UTF-8")
        .body(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed(),
        )
        .expect("response")
}

/// `GET path` on the emulator's JSON API: the parsed body on 200, `None` on 404.
async fn json_get(client: &Upstream, upstream: &str, path: &str) -> Result<Option<Value>, String> {
    let uri: hyper::Uri = format!("http://{upstream}{path}")
        .parse()
        .map_err(|e| format!("bad JSON API path {path:?}: {e}"))?;
    let request = Request::get(uri)
        .body(Empty::new().map_err(|never| match never {}).boxed())
        .expect("request");
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("gcp-storage-emulator at {upstream}, GET {path}: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading GET {path}: {e}"))?
        .to_bytes();
    match status.as_u16() {
        200 => serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| format!("GET {path}: not JSON: {e}")),
        404 => Ok(None),
        other => Err(format!(
            "GET {path}: {other} {}",
            String::from_utf8_lossy(&body)
        )),
    }
}

/// The headers real GCS sends for an object, from the emulator's metadata.
struct MetaHeaders {
    size: String,
    content_type: String,
    etag: String,
    last_modified: String,
    generation: String,
}

impl MetaHeaders {
    fn from_json(meta: &Value) -> Result<MetaHeaders, String> {
        let field = |name: &str| {
            meta.get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("the emulator's object metadata has no {name:?}: {meta}"))
        };
        use base64::Engine;
        let md5 = base64::engine::general_purpose::STANDARD
            .decode(field("md5Hash")?)
            .map_err(|e| format!("md5Hash is not base64: {e}"))?;
        Ok(MetaHeaders {
            size: field("size")?,
            content_type: field("contentType")
                .unwrap_or_else(|_| "application/octet-stream".to_owned()),
            etag: format!("\"{}\"", hex::encode(md5)),
            last_modified: http_date(&field("updated")?)?,
            generation: field("generation")?,
        })
    }

    fn added(&self) -> [(&'static str, &str); 3] {
        [
            ("etag", &self.etag),
            ("last-modified", &self.last_modified),
            ("x-goog-generation", &self.generation),
        ]
    }
}

/// RFC 3339 (`2026-12-07T05:12:38.249415Z`, as the emulator writes `updated`)
/// to an HTTP date (`Mon, 07 Dec 2026 05:12:38 GMT`).
fn http_date(rfc3339: &str) -> Result<String, String> {
    let time = humantime::parse_rfc3339(rfc3339)
        .map_err(|e| format!("{rfc3339:?} is not an RFC 3339 UTC time: {e}"))?;
    Ok(httpdate::fmt_http_date(time))
}

/// Decodes `%XX` escapes; anything else (a lone `%`, bad hex) stays as it is.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Escapes everything but RFC 3986's unreserved characters, so a name is one
/// path segment (`/` in an object name becomes `%2F`).
fn escape_segment(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            write!(out, "%{byte:02X}").expect("writing to a String");
        }
    }
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn text(status: u16, message: String) -> Response<FrontBody> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(
            Full::new(Bytes::from(message))
                .map_err(|never| match never {})
                .boxed(),
        )
        .expect("response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_and_escapes() {
        assert_eq!(
            http_date("2026-12-07T05:12:38.249415Z").unwrap(),
            "Mon, 07 Dec 2026 05:12:38 GMT"
        );
        assert_eq!(
            http_date("2000-02-29T23:59:59Z").unwrap(),
            "Tue, 29 Feb 2000 23:59:59 GMT"
        );
        assert!(http_date("yesterday").is_err());
        assert_eq!(percent_decode("my%2Dbucket%2"), "my-bucket%2");
        assert_eq!(escape_segment("dir/a b.tar"), "dir%2Fa%20b.tar");
    }
}
