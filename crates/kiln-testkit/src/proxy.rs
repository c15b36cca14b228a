//! A fault-injecting HTTP/1.1 proxy in front of a plain-HTTP registry.
//!
//! It forwards every request unchanged (the `Host` header too, so the registry's
//! `Location` headers point back at the proxy) and injects faults in order: the first N
//! connections are closed before any byte is read; the first N requests matching a rule
//! get a canned status (500, 429 with `Retry-After`, ...); the first N matching
//! responses have their body cut after K bytes and the connection aborted; the first N
//! matching responses stall after K bytes of body (nothing more for a while, then the
//! connection is aborted); the first N matching requests have their body cut after K
//! bytes (the registry gets K bytes and a broken connection, the client a connection
//! closed under its upload, no answer). It counts connections and requests and records
//! each request's outcome (with when it arrived and when it was answered, to show
//! overlapping requests), and the most blob
//! downloads (`GET /v2/.../blobs/<digest>`) it had open at once. With
//! [`Faults::shape`] it also limits each connection's bandwidth and adds latency
//! ([`crate::shaping`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::server::BackgroundServer;
use crate::shaping::{Gauge, Pacer, Shaping, paced};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type ProxyBody = BoxBody<Bytes, BoxError>;

/// Which requests a rule applies to (all, when both are `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMatch {
    /// HTTP method, e.g. `PUT`.
    pub method: Option<String>,
    /// A substring of the request path, e.g. `/manifests/` or `/blobs/uploads/`.
    pub path_contains: Option<String>,
}

impl RequestMatch {
    fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
    }
}

/// Answer the first `count` matching requests with `status` instead of forwarding them.
#[derive(Debug, Clone)]
pub struct FailRule {
    /// Status to answer (500, 502, 503, 429, ...).
    pub status: u16,
    /// How many matching requests to fail.
    pub count: usize,
    /// `Retry-After` header value, if any (e.g. `"1"`).
    pub retry_after: Option<String>,
    /// The registry error code in the answer's body (`UNKNOWN` by default).
    pub code: String,
    /// Which requests.
    pub matching: RequestMatch,
}

impl FailRule {
    /// Fails the first `count` requests with `status`.
    pub fn status(status: u16, count: usize) -> FailRule {
        FailRule {
            status,
            count,
            retry_after: None,
            code: "UNKNOWN".into(),
            matching: RequestMatch::default(),
        }
    }

    /// Answers with this registry error code (e.g. `MANIFEST_BLOB_UNKNOWN`).
    pub fn code(mut self, code: &str) -> FailRule {
        self.code = code.to_owned();
        self
    }

    /// Adds a `Retry-After` header.
    pub fn retry_after(mut self, value: &str) -> FailRule {
        self.retry_after = Some(value.to_owned());
        self
    }

    /// Only requests with this method whose path contains `path_contains`.
    pub fn matching(mut self, method: Option<&str>, path_contains: Option<&str>) -> FailRule {
        self.matching = RequestMatch {
            method: method.map(str::to_owned),
            path_contains: path_contains.map(str::to_owned),
        };
        self
    }
}

/// Cut the body of the first `count` matching responses after `keep_bytes` bytes.
#[derive(Debug, Clone)]
pub struct TruncateRule {
    /// How many matching responses to truncate.
    pub count: usize,
    /// Bytes of body delivered before the connection is aborted.
    pub keep_bytes: usize,
    /// Which requests.
    pub matching: RequestMatch,
}

impl TruncateRule {
    /// Truncates the first `count` responses after `keep_bytes`.
    pub fn first(count: usize, keep_bytes: usize) -> TruncateRule {
        TruncateRule {
            count,
            keep_bytes,
            matching: RequestMatch::default(),
        }
    }

    /// Only requests with this method whose path contains `path_contains`.
    pub fn matching(mut self, method: Option<&str>, path_contains: Option<&str>) -> TruncateRule {
        self.matching = RequestMatch {
            method: method.map(str::to_owned),
            path_contains: path_contains.map(str::to_owned),
        };
        self
    }
}

/// Stall the body of the first `count` matching responses after `keep_bytes` bytes: nothing
/// more is sent for `stall`, then the connection is aborted (a registry that hangs
/// halfway, for a client's I/O timeout to catch).
#[derive(Debug, Clone)]
pub struct StallRule {
    /// How many matching responses to stall.
    pub count: usize,
    /// Bytes of body delivered before the silence.
    pub keep_bytes: usize,
    /// How long the silence lasts before the connection is aborted.
    pub stall: std::time::Duration,
    /// Which requests.
    pub matching: RequestMatch,
}

impl StallRule {
    /// Stalls the first `count` responses after `keep_bytes`, for `stall`.
    pub fn first(count: usize, keep_bytes: usize, stall: std::time::Duration) -> StallRule {
        StallRule {
            count,
            keep_bytes,
            stall,
            matching: RequestMatch::default(),
        }
    }

    /// Only requests with this method whose path contains `path_contains`.
    pub fn matching(mut self, method: Option<&str>, path_contains: Option<&str>) -> StallRule {
        self.matching = RequestMatch {
            method: method.map(str::to_owned),
            path_contains: path_contains.map(str::to_owned),
        };
        self
    }
}

/// Cut the body of the first `count` matching requests (an upload's `PATCH` or `PUT`)
/// after `keep_bytes` bytes: the registry receives those bytes and then a broken
/// connection; the client's connection is closed without an answer. A body of unknown
/// length (chunked) counts as longer than `keep_bytes`.
#[derive(Debug, Clone)]
pub struct CutRule {
    /// How many matching requests to cut (only those whose body is longer count).
    pub count: usize,
    /// Bytes of the request body forwarded before the cut.
    pub keep_bytes: usize,
    /// Which requests.
    pub matching: RequestMatch,
}

impl CutRule {
    /// Cuts the first `count` request bodies after `keep_bytes`.
    pub fn first(count: usize, keep_bytes: usize) -> CutRule {
        CutRule {
            count,
            keep_bytes,
            matching: RequestMatch::default(),
        }
    }

    /// Only requests with this method whose path contains `path_contains`.
    pub fn matching(mut self, method: Option<&str>, path_contains: Option<&str>) -> CutRule {
        self.matching = RequestMatch {
            method: method.map(str::to_owned),
            path_contains: path_contains.map(str::to_owned),
        };
        self
    }
}

/// The faults to inject.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Close the first N connections right after accepting them.
    pub drop_connections: usize,
    /// Canned error answers, checked in order.
    pub fail: Vec<FailRule>,
    /// Truncated bodies.
    pub truncate: Vec<TruncateRule>,
    /// Stalled bodies.
    pub stall: Vec<StallRule>,
    /// Request bodies cut short.
    pub cut: Vec<CutRule>,
    /// Bandwidth limit and latency, if any.
    pub shaping: Option<Shaping>,
}

impl Faults {
    /// No faults: a transparent, counting proxy.
    pub fn none() -> Faults {
        Faults::default()
    }

    /// Close the first `n` connections.
    pub fn drop_connections(mut self, n: usize) -> Faults {
        self.drop_connections = n;
        self
    }

    /// Add a failing rule.
    pub fn fail(mut self, rule: FailRule) -> Faults {
        self.fail.push(rule);
        self
    }

    /// Shape every connection (bandwidth per direction, latency per request).
    pub fn shape(mut self, shaping: Shaping) -> Faults {
        self.shaping = Some(shaping);
        self
    }

    /// Add a truncating rule.
    pub fn truncate(mut self, rule: TruncateRule) -> Faults {
        self.truncate.push(rule);
        self
    }

    /// Add a rule cutting request bodies.
    pub fn cut(mut self, rule: CutRule) -> Faults {
        self.cut.push(rule);
        self
    }

    /// Add a stalling rule.
    pub fn stall(mut self, rule: StallRule) -> Faults {
        self.stall.push(rule);
        self
    }
}

/// What happened to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRequest {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Status sent to the client (502 when the upstream could not be reached).
    pub status: u16,
    /// `None` when forwarded untouched, else `"fail"`, `"truncate"`, `"stall"` or `"cut"`
    /// (status 0: the client got no answer).
    pub fault: Option<&'static str>,
    /// When the request reached the proxy (before any shaping latency).
    pub arrived: std::time::Instant,
    /// When its response head was ready (what the order of [`FaultProxy::requests`]
    /// follows), so two requests overlapped when each arrived before the other was
    /// answered.
    pub answered: std::time::Instant,
}

struct ProxyState {
    upstream: String,
    connections: AtomicUsize,
    drop_remaining: AtomicUsize,
    fail_remaining: Vec<AtomicUsize>,
    truncate_remaining: Vec<AtomicUsize>,
    stall_remaining: Vec<AtomicUsize>,
    cut_remaining: Vec<AtomicUsize>,
    faults: Faults,
    requests: Mutex<Vec<ProxiedRequest>>,
    blob_gets: Arc<Gauge>,
}

/// A running proxy; stops on [`FaultProxy::stop`] or drop.
pub struct FaultProxy {
    port: u16,
    state: Arc<ProxyState>,
    server: Option<BackgroundServer>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("port", &self.port)
            .field("upstream", &self.state.upstream)
            .finish()
    }
}

impl FaultProxy {
    /// A proxy in front of a plain-HTTP registry.
    pub fn in_front_of(registry: &crate::Registry, faults: Faults) -> FaultProxy {
        assert!(
            !registry.is_tls(),
            "FaultProxy forwards plain HTTP only; start the registry without TLS"
        );
        FaultProxy::start(&registry.host_port(), faults)
    }

    /// A proxy on a free 127.0.0.1 port forwarding to `upstream` (`host:port`, plain HTTP).
    pub fn start(upstream: &str, faults: Faults) -> FaultProxy {
        let (listener, port) = crate::server::bind_free();
        let state = Arc::new(ProxyState {
            upstream: upstream.to_owned(),
            connections: AtomicUsize::new(0),
            drop_remaining: AtomicUsize::new(faults.drop_connections),
            fail_remaining: faults
                .fail
                .iter()
                .map(|r| AtomicUsize::new(r.count))
                .collect(),
            truncate_remaining: faults
                .truncate
                .iter()
                .map(|r| AtomicUsize::new(r.count))
                .collect(),
            stall_remaining: faults
                .stall
                .iter()
                .map(|r| AtomicUsize::new(r.count))
                .collect(),
            cut_remaining: faults
                .cut
                .iter()
                .map(|r| AtomicUsize::new(r.count))
                .collect(),
            faults,
            requests: Mutex::new(Vec::new()),
            blob_gets: Arc::default(),
        });
        let served = state.clone();
        let server = BackgroundServer::spawn("kiln-fault-proxy", async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            accept_loop(listener, served).await;
        });
        FaultProxy {
            port,
            state,
            server: Some(server),
        }
    }

    /// `127.0.0.1:PORT` of the proxy (use it as the registry host in references).
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far (dropped ones included).
    pub fn connection_count(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Requests received so far (failed and truncated ones included).
    pub fn request_count(&self) -> usize {
        self.state.requests.lock().expect("lock").len()
    }

    /// Every request, in order of completion of its response head.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.state.requests.lock().expect("lock").clone()
    }

    /// The most blob downloads (`GET .../blobs/<digest>`, bodies open) at once so far.
    pub fn max_concurrent_blob_gets(&self) -> usize {
        self.state.blob_gets.max()
    }

    /// Stops listening; later connections are refused.
    pub fn stop(&mut self) {
        self.server.take();
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, state: Arc<ProxyState>) {
    // No Nagle either way, as Go's net/http (the registry) and kiln's client do:
    // with it, a small body written after its head waits for the peer's delayed
    // ACK, adding 40 ms to every manifest, config and upload request.
    let mut upstream = HttpConnector::new();
    upstream.set_nodelay(true);
    let client: Client<HttpConnector, ProxyBody> =
        Client::builder(TokioExecutor::new()).build(upstream);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        state.connections.fetch_add(1, Ordering::SeqCst);
        if take_one(&state.drop_remaining) {
            drop(stream);
            continue;
        }
        let state = state.clone();
        let client = client.clone();
        // one pacer per direction of this connection
        let pacers = state
            .faults
            .shaping
            .map(|s| (Pacer::shared(&s), Pacer::shared(&s)));
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                let client = client.clone();
                let pacers = pacers.clone();
                async move {
                    // An error closes the client's connection without an answer.
                    match proxy_one(&state, &client, req, pacers.as_ref()).await {
                        Some(response) => Ok(response),
                        None => Err(std::io::Error::other(
                            "request body cut by kiln-testkit proxy",
                        )),
                    }
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The first of `rules` that `applies` to a request and has injections left
/// (one is used up).
fn fire<'r, R>(
    rules: &'r [R],
    remaining: &[AtomicUsize],
    applies: impl Fn(&R) -> bool,
) -> Option<&'r R> {
    rules
        .iter()
        .zip(remaining)
        .find(|(rule, left)| applies(rule) && take_one(left))
        .map(|(rule, _)| rule)
}

/// The request's body is sent with chunked transfer encoding (its length unknown).
fn is_chunked(headers: &hyper::HeaderMap) -> bool {
    headers
        .get_all(hyper::header::TRANSFER_ENCODING)
        .iter()
        .any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("chunked"))
        })
}

/// Decrements a counter if positive; true when a fault should be injected.
fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// The pacers of a shaped connection: (upload, download).
type Pacers = (Arc<Mutex<Pacer>>, Arc<Mutex<Pacer>>);

/// The answer to one request; `None` when its body was cut (the connection is then
/// closed without an answer).
async fn proxy_one(
    state: &ProxyState,
    client: &Client<HttpConnector, ProxyBody>,
    req: Request<Incoming>,
    pacers: Option<&Pacers>,
) -> Option<Response<ProxyBody>> {
    let arrived = std::time::Instant::now();
    if let Some(shaping) = &state.faults.shaping {
        tokio::time::sleep(shaping.latency).await;
    }
    let blob_get = req.method() == hyper::Method::GET
        && req.uri().path().contains("/blobs/")
        && !req.uri().path().contains("/blobs/uploads/");
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".to_owned());
    let record = |status: u16, fault: Option<&'static str>| {
        state.requests.lock().expect("lock").push(ProxiedRequest {
            method: method.clone(),
            path: path.clone(),
            status,
            fault,
            arrived,
            answered: std::time::Instant::now(),
        });
    };
    let matches = |m: &RequestMatch| m.matches(&method, req.uri().path());
    if let Some(rule) = fire(&state.faults.fail, &state.fail_remaining, |r| {
        matches(&r.matching)
    }) {
        let mut response = Response::builder()
            .status(rule.status)
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(after) = &rule.retry_after {
            response = response.header(hyper::header::RETRY_AFTER, after.as_str());
        }
        let body = format!(
            r#"{{"errors":[{{"code":"{}","message":"injected by kiln-testkit proxy","detail":{}}}]}}"#,
            rule.code, rule.status
        );
        record(rule.status, Some("fail"));
        return Some(response.body(full(body)).expect("response"));
    }
    let truncate = fire(&state.faults.truncate, &state.truncate_remaining, |r| {
        matches(&r.matching)
    })
    .map(|rule| ("truncate", rule.keep_bytes, TRUNCATE_FLUSH));
    let stall = fire(&state.faults.stall, &state.stall_remaining, |r| {
        matches(&r.matching)
    })
    .map(|rule| ("stall", rule.keep_bytes, rule.stall));
    let cut = truncate.or(stall);
    // A body without a Content-Length (chunked: a blob streamed while it is written)
    // may be of any length, so a cut rule applies to it.
    let length = match req.headers().get(hyper::header::CONTENT_LENGTH) {
        Some(v) => v.to_str().ok().and_then(|v| v.parse().ok()).unwrap_or(0),
        None if is_chunked(req.headers()) => usize::MAX,
        None => 0,
    };
    let cut_request = fire(&state.faults.cut, &state.cut_remaining, |r| {
        length > r.keep_bytes && matches(&r.matching)
    })
    .map(|rule| rule.keep_bytes);
    let (mut parts, body) = req.into_parts();
    let uri = format!("http://{}{path}", state.upstream);
    parts.uri = match uri.parse() {
        Ok(uri) => uri,
        Err(_) => {
            record(400, None);
            return Some(
                Response::builder()
                    .status(400)
                    .body(full("bad request URI".to_owned()))
                    .expect("response"),
            );
        }
    };
    let mut body = body.map_err(|e| Box::new(e) as BoxError).boxed();
    if let Some((up, _)) = pacers {
        body = paced(body, up.clone());
    }
    if let Some(keep) = cut_request {
        // no hold: the upstream request is aborted short of its Content-Length
        body = Truncated {
            inner: body,
            remaining: keep,
            hold: std::time::Duration::ZERO,
            abort: None,
        }
        .boxed();
    }
    let response = shaped(
        client.request(Request::from_parts(parts, body)).await,
        pacers,
        blob_get.then_some(&state.blob_gets),
    );
    if cut_request.is_some() {
        // The registry got the first bytes and a broken connection; the client gets
        // its connection closed, whatever the registry made of it.
        record(0, Some("cut"));
        return None;
    }
    Some(match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let (parts, body) = response.into_parts();
            let body = match cut {
                Some((fault, keep, hold)) => {
                    record(status, Some(fault));
                    Truncated {
                        inner: body,
                        remaining: keep,
                        hold,
                        abort: None,
                    }
                    .boxed()
                }
                None => {
                    record(status, None);
                    body
                }
            };
            Response::from_parts(parts, body)
        }
        Err(e) => {
            record(502, None);
            Response::builder()
                .status(502)
                .body(full(format!("upstream {}: {e}", state.upstream)))
                .expect("response")
        }
    })
}

/// The upstream's response with its body paced (when shaped) and counted (a blob GET).
fn shaped(
    response: Result<Response<Incoming>, hyper_util::client::legacy::Error>,
    pacers: Option<&Pacers>,
    gauge: Option<&Arc<Gauge>>,
) -> Result<Response<ProxyBody>, hyper_util::client::legacy::Error> {
    let response = response?;
    let (parts, body) = response.into_parts();
    let mut body = body.map_err(|e| Box::new(e) as BoxError).boxed();
    if let Some((_, down)) = pacers {
        body = paced(body, down.clone());
    }
    if let Some(gauge) = gauge {
        body = gauge.track(body);
    }
    Ok(Response::from_parts(parts, body))
}

fn full(text: String) -> ProxyBody {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed()
}

/// How long a truncated body waits before the abort, so the head and the kept bytes are
/// flushed to the client first.
const TRUNCATE_FLUSH: std::time::Duration = std::time::Duration::from_millis(100);

/// Passes `remaining` bytes of the body through, sends nothing for `hold`, then fails, so
/// the connection is aborted short of the announced `Content-Length`: a truncated response
/// body (a short hold), a stalled one (a long hold), or a cut request body (no hold).
struct Truncated {
    inner: ProxyBody,
    remaining: usize,
    hold: std::time::Duration,
    abort: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for Truncated {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(abort) = &mut this.abort {
            return match abort.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    Poll::Ready(Some(Err("body cut short by kiln-testkit proxy".into())))
                }
                Poll::Pending => Poll::Pending,
            };
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) => {
                    if data.len() >= this.remaining {
                        data.truncate(this.remaining);
                        this.abort = Some(Box::pin(tokio::time::sleep(this.hold)));
                    }
                    this.remaining -= data.len();
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
