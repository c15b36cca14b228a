//! A session with one registry host: the `/v2/` ping (which decides the scheme and learns
//! the challenge), authorised requests with one re-challenge on 401, manual redirects that
//! drop `Authorization` when the host changes, and conversion of unexpected statuses into
//! errors carrying the registry's error envelope.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CONTENT_LENGTH, LOCATION, RETRY_AFTER, USER_AGENT, WWW_AUTHENTICATE,
};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use url::Url;

use crate::auth::AuthState;
use crate::body::RequestBody;
use crate::challenge::{AuthScheme, Challenge, Scope, parse_challenges};
use crate::error::{Ctx, Error, ErrorKind, body_excerpt, parse_error_envelope};
use crate::foreign::ForeignClients;
use crate::retry::{RetryPolicy, parse_retry_after};
use crate::transport::{self, HttpClient};
use kiln_auth::Credential;

const MAX_REDIRECTS: usize = 5;
/// Error bodies are read up to this size.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Where a request goes: a path under the registry's base URL, or a URL the registry gave
/// (upload `Location`).
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Path(String),
    Url(Url),
}

/// One request to a registry.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub method: Method,
    pub target: Target,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: RequestBody,
    /// The token scopes the request needs (ignored with Basic auth).
    pub scopes: Vec<Scope>,
    /// Statuses that count as success; anything else becomes an error.
    pub expect: Vec<StatusCode>,
    pub follow_redirects: bool,
}

impl Req {
    pub fn new(method: Method, target: Target, scopes: Vec<Scope>, expect: &[StatusCode]) -> Req {
        Req {
            method,
            target,
            headers: Vec::new(),
            body: RequestBody::Empty,
            scopes,
            expect: expect.to_vec(),
            follow_redirects: false,
        }
    }
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Req {
        self.headers.push((name, value));
        self
    }
    pub fn body(mut self, body: RequestBody) -> Req {
        self.body = body;
        self
    }
    pub fn follow_redirects(mut self) -> Req {
        self.follow_redirects = true;
        self
    }
}

/// What an endpoint is built from.
pub(crate) struct EndpointConfig {
    /// The registry as references name it (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// The host[:port] to connect to (`registry-1.docker.io` for `docker.io`).
    pub host: String,
    /// Try `https://` first, then fall back to `http://` (kaniko's insecure registries).
    pub allow_plain_http: bool,
    pub client: HttpClient,
    pub credential: Option<Credential>,
    pub retry: RetryPolicy,
    pub user_agent: HeaderValue,
    pub foreign: Arc<ForeignClients>,
}

/// A session with one registry host, shared by every operation on it.
pub(crate) struct Endpoint {
    pub cfg: EndpointConfig,
    base: tokio::sync::OnceCell<Url>,
    pub(crate) auth: tokio::sync::Mutex<AuthState>,
}

impl Endpoint {
    pub fn new(cfg: EndpointConfig) -> Endpoint {
        Endpoint {
            cfg,
            base: tokio::sync::OnceCell::new(),
            auth: tokio::sync::Mutex::new(AuthState::default()),
        }
    }

    /// `scheme://host/`, after pinging `/v2/` once.
    pub async fn base_url(&self, ctx: &Ctx) -> Result<&Url, Error> {
        self.base.get_or_try_init(|| self.ping(ctx)).await
    }

    async fn ping(&self, ctx: &Ctx) -> Result<Url, Error> {
        let schemes: &[&str] = if self.cfg.allow_plain_http {
            &["https", "http"]
        } else {
            &["https"]
        };
        let mut last = None;
        for (i, scheme) in schemes.iter().enumerate() {
            let base = Url::parse(&format!("{scheme}://{}/", self.cfg.host)).map_err(|e| {
                ctx.err(ErrorKind::Invalid(format!(
                    "registry host {:?}: {e}",
                    self.cfg.host
                )))
            })?;
            // One attempt per scheme: every request is inside an operation-level retry.
            let is_last = i + 1 == schemes.len();
            match self.ping_once(ctx, &base).await {
                Ok(challenge) => {
                    tracing::debug!(registry = %self.cfg.registry, %scheme, auth = ?challenge.as_ref().map(|c| &c.scheme), "registry pinged");
                    self.auth.lock().await.challenge = challenge;
                    return Ok(base);
                }
                Err(e) if !is_last => {
                    tracing::debug!(registry = %self.cfg.registry, error = %e, "HTTPS failed; trying plain HTTP (insecure registry)");
                    last = Some(e);
                }
                // Plain HTTP failed too, for good (not a transient failure): a certificate
                // problem over HTTPS is the more useful explanation (a TLS registry marked
                // insecure answers plain HTTP with 400).
                Err(e) => {
                    return Err(match last {
                        Some(tls)
                            if matches!(
                                tls.kind(),
                                ErrorKind::UnknownAuthority { .. } | ErrorKind::Tls { .. }
                            ) && !e.is_retryable() =>
                        {
                            tls
                        }
                        _ => e,
                    });
                }
            }
        }
        Err(last.unwrap_or_else(|| ctx.protocol("no scheme to try")))
    }

    async fn ping_once(&self, ctx: &Ctx, base: &Url) -> Result<Option<Challenge>, Error> {
        let url = base.join("v2/").map_err(|e| ctx.protocol(e.to_string()))?;
        let req = Request::get(url.as_str())
            .header(USER_AGENT, self.cfg.user_agent.clone())
            .body(
                RequestBody::Empty
                    .open()
                    .await
                    .map_err(|e| ctx.protocol(e.to_string()))?,
            )
            .map_err(|e| ctx.protocol(e.to_string()))?;
        let resp = transport::send(&self.cfg.client, req, ctx).await?;
        let status = resp.status();
        // /v2/ answers 200 or 401 (some front ends 403/404). Anything else means this
        // scheme is wrong (a TLS server answers plain HTTP with 400) or the registry is
        // unwell (5xx, 429: retried).
        let fine = status.is_success()
            || matches!(
                status,
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
            );
        if !fine {
            return Err(status_error(ctx, resp).await);
        }
        let challenge = if status == StatusCode::UNAUTHORIZED {
            pick_challenge(&resp)
        } else {
            None
        };
        drain(resp).await;
        Ok(challenge)
    }

    /// The client for `url`: this session's own for the registry's origin (its TLS
    /// settings, e.g. skip-verify, apply), else the foreign client for that host.
    pub(crate) async fn client_for(&self, url: &Url, ctx: &Ctx) -> Result<HttpClient, Error> {
        if url.origin() == self.base_url(ctx).await?.origin() {
            Ok(self.cfg.client.clone())
        } else {
            self.cfg.foreign.client_for(url, ctx)
        }
    }

    /// Sends `req` with retries (the request must be idempotent or re-sendable).
    pub async fn call_retrying(&self, ctx: &Ctx, req: &Req) -> Result<Response<Incoming>, Error> {
        self.cfg.retry.run(|_| self.call(ctx, req)).await
    }

    /// Sends `req` once (plus one re-authentication after a 401, plus redirects).
    pub async fn call(&self, ctx: &Ctx, req: &Req) -> Result<Response<Incoming>, Error> {
        let base = self.base_url(ctx).await?.clone();
        let mut url = match &req.target {
            Target::Path(p) => base
                .join(p.trim_start_matches('/'))
                .map_err(|e| ctx.protocol(format!("URL path {p:?}: {e}")))?,
            Target::Url(u) => u.clone(),
        };
        let mut rechallenged = false;
        let mut redirects = 0;
        loop {
            let same_origin = url.origin() == base.origin();
            let authorization = if same_origin {
                self.authorization(ctx, &req.scopes).await?
            } else {
                None
            };
            let client = if same_origin {
                self.cfg.client.clone()
            } else {
                self.cfg.foreign.client_for(&url, ctx)?
            };
            let mut builder = Request::builder()
                .method(req.method.clone())
                .uri(url.as_str())
                .header(USER_AGENT, self.cfg.user_agent.clone());
            for (k, v) in &req.headers {
                builder = builder.header(k, v);
            }
            if let Some(mut a) = authorization {
                a.set_sensitive(true);
                builder = builder.header(AUTHORIZATION, a);
            }
            // A body of unknown length goes without one (HTTP/1.1 chunked encoding).
            if let Some(len) = req.body.len()
                && (len > 0 || matches!(req.method, Method::PUT | Method::POST | Method::PATCH))
            {
                builder = builder.header(CONTENT_LENGTH, len);
            }
            let body = req
                .body
                .open()
                .await
                .map_err(|e| ctx.err(ErrorKind::Invalid(format!("request body: {e}"))))?;
            let request = builder
                .body(body)
                .map_err(|e| ctx.protocol(format!("building request: {e}")))?;
            let resp = transport::send(&client, request, ctx).await?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && same_origin && !rechallenged {
                rechallenged = true;
                if self.rechallenge(&resp, &req.scopes).await {
                    drain(resp).await;
                    continue;
                }
            }
            let redirect_to = (req.follow_redirects
                && status.is_redirection()
                && status != StatusCode::NOT_MODIFIED)
                .then(|| resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()))
                .flatten();
            if let Some(loc) = redirect_to {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(ctx.protocol(format!("more than {MAX_REDIRECTS} redirects")));
                }
                let next = url
                    .join(loc)
                    .map_err(|e| ctx.protocol(format!("redirect Location: {e}")))?;
                tracing::debug!(from = %crate::error::display_url(&url), to = %crate::error::display_url(&next), "following redirect");
                drain(resp).await;
                url = next;
                continue;
            }
            if req.expect.contains(&status) {
                return Ok(resp);
            }
            return Err(status_error(ctx, resp).await);
        }
    }

    /// After a 401: learns the challenge it carries and forgets the cached token, so the
    /// next attempt asks for the scopes the registry named. Returns whether to resend.
    async fn rechallenge(&self, resp: &Response<Incoming>, scopes: &[Scope]) -> bool {
        let Some(challenge) = pick_challenge(resp) else {
            return false;
        };
        tracing::debug!(registry = %self.cfg.registry, scheme = ?challenge.scheme, "re-challenged");
        let mut state = self.auth.lock().await;
        let worth = match challenge.scheme {
            AuthScheme::Bearer => true,
            AuthScheme::Basic => {
                matches!(self.cfg.credential, Some(Credential::Basic { .. }))
                    && !matches!(
                        state.challenge.as_ref().map(|c| &c.scheme),
                        Some(AuthScheme::Basic)
                    )
            }
            AuthScheme::Other(_) => false,
        };
        state.forget(scopes, challenge.scopes());
        state.challenge = Some(challenge);
        worth
    }
}

/// The challenge kiln will answer: Bearer preferred over Basic.
fn pick_challenge(resp: &Response<Incoming>) -> Option<Challenge> {
    let all: Vec<Challenge> = resp
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_challenges)
        .collect();
    let bearer = all.iter().find(|c| c.scheme == AuthScheme::Bearer);
    let basic = all.iter().find(|c| c.scheme == AuthScheme::Basic);
    bearer.or(basic).or(all.first()).cloned()
}

/// Reads (a bounded part of) an unexpected response into a status error.
pub(crate) async fn status_error(ctx: &Ctx, resp: Response<Incoming>) -> Error {
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let body = read_limited(resp.into_body(), ERROR_BODY_LIMIT)
        .await
        .unwrap_or_default();
    let errors = parse_error_envelope(&body).unwrap_or_default();
    let body = if errors.is_empty() {
        body_excerpt(&body)
    } else {
        None
    };
    ctx.err(ErrorKind::Status {
        status,
        errors,
        body,
        retry_after,
    })
}

/// Reads a body up to `limit` bytes (more is an error). A manifest, config or token
/// that stalls halfway fails after the connection's I/O timeout ([`crate::idle`]).
pub(crate) async fn read_limited<B>(mut body: B, limit: usize) -> Result<Bytes, String>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + 'static,
{
    let mut out = bytes::BytesMut::new();
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(frame) => {
                frame.map_err(|e| format!("after {} bytes: {}", out.len(), transport::chain(&e)))?
            }
        };
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(format!("body larger than {limit} bytes"));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

/// Reads and discards a (small) body so the connection can be reused.
pub(crate) async fn drain(resp: Response<Incoming>) {
    let _ = read_limited(resp.into_body(), ERROR_BODY_LIMIT).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_small_body_over_its_limit_is_refused() {
        let body = http_body_util::Full::new(Bytes::from(vec![b'x'; 100]));
        let err = read_limited(body, 99).await.unwrap_err();
        assert_eq!(err, "body larger than 99 bytes");
    }
}
