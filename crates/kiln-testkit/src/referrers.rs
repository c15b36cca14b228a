//! [`ReferrersFront`]: the OCI 1.1 referrers API in front of a real registry.
//!
//! No registry on these machines implements `GET /v2/<name>/referrers/<digest>`
//! (distribution 2.8 answers 404; zot and distribution 3 are not in the package
//! registries this project reaches). This server forwards every request to a
//! real [`crate::Registry`] unchanged, and adds what the distribution spec asks
//! of a registry with the API: a manifest PUT that the registry accepted and
//! whose JSON has a `subject` is recorded (and answered with `OCI-Subject`),
//! and the referrers endpoint answers with an image index of the recorded
//! descriptors (`artifactType`: the manifest's, else its config's media type;
//! its annotations), or an empty index. Storage stays the real registry's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::server::{BackgroundServer, Body};

/// (repository, subject digest) -> referrer descriptors, in PUT order.
type Recorded = Arc<Mutex<BTreeMap<(String, String), Vec<Value>>>>;

/// A running front; stops on drop.
pub struct ReferrersFront {
    port: u16,
    recorded: Recorded,
    _server: BackgroundServer,
}

impl ReferrersFront {
    /// A front on a free 127.0.0.1 port for the plain-HTTP `registry`.
    pub fn in_front_of(registry: &crate::Registry) -> ReferrersFront {
        assert!(
            !registry.is_tls(),
            "ReferrersFront forwards plain HTTP only"
        );
        let upstream = registry.host_port();
        let (listener, port) = crate::server::bind_free();
        let recorded: Recorded = Arc::default();
        let state = recorded.clone();
        let server = BackgroundServer::spawn("kiln-referrers-front", async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let client: Client<HttpConnector, Full<Bytes>> =
                Client::builder(TokioExecutor::new()).build_http();
            crate::server::serve_http(listener, None, move |req| {
                let (client, upstream, state) = (client.clone(), upstream.clone(), state.clone());
                async move { handle(&client, &upstream, &state, req).await }
            })
            .await;
        });
        ReferrersFront {
            port,
            recorded,
            _server: server,
        }
    }

    /// `127.0.0.1:PORT` (use it as the registry host in references).
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The descriptors recorded as referrers of `subject` in `repository`.
    pub fn referrers(&self, repository: &str, subject: &str) -> Vec<Value> {
        self.recorded
            .lock()
            .expect("lock")
            .get(&(repository.to_owned(), subject.to_owned()))
            .cloned()
            .unwrap_or_default()
    }
}

async fn handle(
    client: &Client<HttpConnector, Full<Bytes>>,
    upstream: &str,
    state: &Recorded,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if req.method() == hyper::Method::GET
        && let Some((repository, subject)) = split(&path, "/referrers/")
    {
        let manifests = state
            .lock()
            .expect("lock")
            .get(&(repository, subject))
            .cloned()
            .unwrap_or_default();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        return Response::builder()
            .status(200)
            .header("content-type", "application/vnd.oci.image.index.v1+json")
            .body(Full::new(Bytes::from(index.to_string())))
            .expect("response");
    }
    let is_manifest_put = req.method() == hyper::Method::PUT;
    let (mut parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return status(400, "reading the request body");
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".to_owned());
    parts.uri = match format!("http://{upstream}{path_and_query}").parse() {
        Ok(uri) => uri,
        Err(_) => return status(400, "bad request URI"),
    };
    let content_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = match client
        .request(Request::from_parts(parts, Full::new(body.clone())))
        .await
    {
        Ok(r) => r,
        Err(e) => return status(502, &format!("upstream {upstream}: {e}")),
    };
    let (mut head, upstream_body) = response.into_parts();
    let Ok(bytes) = upstream_body.collect().await.map(|b| b.to_bytes()) else {
        return status(502, "reading the upstream body");
    };
    if is_manifest_put
        && head.status.is_success()
        && let Some((repository, _)) = split(&path, "/manifests/")
        && let Some(subject) = record(state, &repository, &body, content_type.as_deref())
        && let Ok(value) = subject.parse()
    {
        head.headers.insert("oci-subject", value);
    }
    Response::from_parts(head, Full::new(bytes))
}

/// `/v2/<name><marker><rest>` -> (name, rest).
fn split(path: &str, marker: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/v2/")?;
    let (name, tail) = rest.rsplit_once(marker)?;
    Some((name.to_owned(), tail.to_owned()))
}

/// Records a manifest with a `subject`; returns the subject digest.
fn record(
    state: &Recorded,
    repository: &str,
    body: &[u8],
    content_type: Option<&str>,
) -> Option<String> {
    let manifest: Value = serde_json::from_slice(body).ok()?;
    let subject = manifest["subject"]["digest"].as_str()?.to_owned();
    let media_type = manifest["mediaType"]
        .as_str()
        .or(content_type)
        .unwrap_or("application/vnd.oci.image.manifest.v1+json");
    let artifact_type = manifest["artifactType"]
        .as_str()
        .or_else(|| manifest["config"]["mediaType"].as_str());
    let mut descriptor = serde_json::json!({
        "mediaType": media_type,
        "digest": crate::image::sha256_digest(body),
        "size": body.len(),
    });
    if let Some(t) = artifact_type {
        descriptor["artifactType"] = Value::from(t);
    }
    if manifest["annotations"].is_object() {
        descriptor["annotations"] = manifest["annotations"].clone();
    }
    let mut map = state.lock().expect("lock");
    let list = map
        .entry((repository.to_owned(), subject.clone()))
        .or_default();
    if !list.iter().any(|d| d["digest"] == descriptor["digest"]) {
        list.push(descriptor);
    }
    Some(subject)
}

fn status(code: u16, message: &str) -> Response<Body> {
    Response::builder()
        .status(code)
        .body(Full::new(Bytes::from(message.to_owned())))
        .expect("response")
}
