//! Answering challenges: Basic credentials, or Bearer tokens from the realm named by the
//! challenge (GET with `service` and `scope` params, Basic credentials or anonymous; or an
//! OAuth2 form POST with `grant_type=refresh_token` for identity tokens and
//! `grant_type=password` when the realm refuses GET). Tokens are cached per scope set, and
//! scopes a registry asked for in a re-challenge are remembered for that scope set.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Method, Request, StatusCode};
use url::Url;

use crate::body::RequestBody;
use crate::challenge::{AuthScheme, Challenge, Scope, merge_scopes, scope_key};
use crate::error::{Ctx, Error, ErrorKind, Operation, display_url};
use crate::session::{Endpoint, read_limited, status_error};
use crate::transport;
use kiln_auth::Credential;

const TOKEN_BODY_LIMIT: usize = 1 << 20;
/// Tokens without `expires_in` live 60 s (distribution's spec).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// Per-registry authentication state.
#[derive(Default)]
pub(crate) struct AuthState {
    /// The challenge learnt from the ping or a 401 (None: no auth needed).
    pub challenge: Option<Challenge>,
    tokens: BTreeMap<String, CachedToken>,
    /// Scopes the registry asked for on top of what a request needed, per request key.
    extra: BTreeMap<String, Vec<Scope>>,
    /// A refresh token a realm handed out, used for later token requests.
    refresh_token: Option<String>,
}

struct CachedToken {
    value: String,
    expires: Instant,
}

impl AuthState {
    /// Forgets the token for `scopes` and remembers what the registry asked for.
    pub fn forget(&mut self, scopes: &[Scope], asked: Vec<Scope>) {
        let key = scope_key(&merge_scopes(scopes));
        self.tokens.remove(&key);
        if !asked.is_empty() {
            self.extra.entry(key).or_default().extend(asked);
        }
    }
}

impl Endpoint {
    /// The `Authorization` value for a request needing `scopes`, fetching a token if needed.
    pub(crate) async fn authorization(
        &self,
        ctx: &Ctx,
        scopes: &[Scope],
    ) -> Result<Option<HeaderValue>, Error> {
        let mut state = self.auth.lock().await;
        let Some(challenge) = state.challenge.clone() else {
            return Ok(None);
        };
        match challenge.scheme {
            AuthScheme::Basic => Ok(match &self.cfg.credential {
                Some(Credential::Basic { username, password }) => {
                    Some(basic(username, password.expose()))
                }
                _ => None,
            }),
            AuthScheme::Bearer => {
                if let Some(Credential::RegistryToken(t)) = &self.cfg.credential {
                    return Ok(Some(bearer(t.expose())));
                }
                let wanted = merge_scopes(scopes);
                let key = scope_key(&wanted);
                if let Some(t) = state.tokens.get(&key)
                    && t.expires > Instant::now()
                {
                    return Ok(Some(bearer(&t.value)));
                }
                let extra = state.extra.get(&key).cloned().unwrap_or_default();
                let all = merge_scopes(wanted.iter().chain(extra.iter()));
                let refresh = state.refresh_token.clone();
                let actx = Ctx::new(Operation::Authenticate, &self.cfg.registry);
                let actx = match &ctx.repository {
                    Some(r) => actx.repo(r),
                    None => actx,
                };
                // One attempt: the request needing the token is retried as a whole.
                let got = self
                    .fetch_token(&actx, &challenge, &all, refresh.as_deref())
                    .await?;
                let header = bearer(&got.token);
                if got.refresh_token.is_some() {
                    state.refresh_token = got.refresh_token;
                }
                state.tokens.insert(
                    key,
                    CachedToken {
                        value: got.token,
                        expires: got.expires,
                    },
                );
                Ok(Some(header))
            }
            AuthScheme::Other(_) => Ok(None),
        }
    }

    async fn fetch_token(
        &self,
        ctx: &Ctx,
        challenge: &Challenge,
        scopes: &[Scope],
        refresh: Option<&str>,
    ) -> Result<Token, Error> {
        let realm = challenge
            .param("realm")
            .ok_or_else(|| ctx.protocol("Bearer challenge without realm"))?;
        let realm =
            Url::parse(realm).map_err(|e| ctx.protocol(format!("token realm {realm:?}: {e}")))?;
        let service = challenge.param("service");
        let ctx = &ctx
            .clone()
            .object(format!("token from {}", display_url(&realm)));
        let identity = match &self.cfg.credential {
            Some(Credential::IdentityToken(t)) => Some(t.expose()),
            _ => refresh,
        };
        if let Some(refresh_token) = identity {
            return self
                .token_post(
                    ctx,
                    &realm,
                    service,
                    scopes,
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", refresh_token),
                    ],
                )
                .await;
        }
        let mut url = realm.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", &s.to_string());
            }
        }
        let basic_cred = match &self.cfg.credential {
            Some(Credential::Basic { username, password }) => {
                Some((username.as_str(), password.expose()))
            }
            _ => None,
        };
        let mut builder =
            Request::get(url.as_str()).header(USER_AGENT, self.cfg.user_agent.clone());
        if let Some((u, p)) = basic_cred {
            builder = builder.header(AUTHORIZATION, basic(u, p));
        }
        let req = builder
            .body(
                RequestBody::Empty
                    .open()
                    .await
                    .map_err(|e| ctx.protocol(e.to_string()))?,
            )
            .map_err(|e| ctx.protocol(e.to_string()))?;
        let client = self.client_for(&realm, ctx).await?;
        let resp = transport::send(&client, req, ctx).await?;
        match resp.status() {
            StatusCode::OK => parse_token(ctx, resp).await,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED if basic_cred.is_some() => {
                let (u, p) = basic_cred.unwrap_or_default();
                self.token_post(
                    ctx,
                    &realm,
                    service,
                    scopes,
                    &[("grant_type", "password"), ("username", u), ("password", p)],
                )
                .await
            }
            _ => Err(status_error(ctx, resp).await),
        }
    }

    async fn token_post(
        &self,
        ctx: &Ctx,
        realm: &Url,
        service: Option<&str>,
        scopes: &[Scope],
        grant: &[(&str, &str)],
    ) -> Result<Token, Error> {
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.extend_pairs(grant.iter().copied());
            form.append_pair("client_id", "kiln");
            if let Some(s) = service {
                form.append_pair("service", s);
            }
            if !scopes.is_empty() {
                let joined: Vec<String> = scopes.iter().map(Scope::to_string).collect();
                form.append_pair("scope", &joined.join(" "));
            }
            form.finish()
        };
        let form = form.into_bytes();
        let length = form.len();
        let body = RequestBody::Bytes(form.into());
        let req = Request::builder()
            .method(Method::POST)
            .uri(realm.as_str())
            .header(USER_AGENT, self.cfg.user_agent.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(http::header::CONTENT_LENGTH, length)
            .body(body.open().await.map_err(|e| ctx.protocol(e.to_string()))?)
            .map_err(|e| ctx.protocol(e.to_string()))?;
        let client = self.client_for(realm, ctx).await?;
        let resp = transport::send(&client, req, ctx).await?;
        if resp.status() != StatusCode::OK {
            return Err(status_error(ctx, resp).await);
        }
        parse_token(ctx, resp).await
    }
}

struct Token {
    token: String,
    expires: Instant,
    refresh_token: Option<String>,
}

async fn parse_token(
    ctx: &Ctx,
    resp: http::Response<hyper::body::Incoming>,
) -> Result<Token, Error> {
    #[derive(serde::Deserialize)]
    struct Answer {
        token: Option<String>,
        access_token: Option<String>,
        expires_in: Option<u64>,
        refresh_token: Option<String>,
    }
    let body = read_limited(resp.into_body(), TOKEN_BODY_LIMIT)
        .await
        .map_err(|reason| {
            ctx.err(ErrorKind::Transfer {
                url: "token realm".into(),
                reason,
            })
        })?;
    // Never echo the body: it holds the token.
    let answer: Answer = serde_json::from_slice(&body).map_err(|e| {
        ctx.protocol(format!(
            "token answer is not the expected JSON ({})",
            e.classify_name()
        ))
    })?;
    let token = answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ctx.protocol("token answer has neither token nor access_token"))?;
    let lifetime = answer
        .expires_in
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TOKEN_LIFETIME);
    // Renew a little early so a token does not expire between cache lookup and use.
    let margin = (lifetime / 10).min(Duration::from_secs(30));
    Ok(Token {
        token,
        expires: Instant::now() + lifetime - margin,
        refresh_token: answer.refresh_token,
    })
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected fields",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

fn basic(username: &str, password: &str) -> HeaderValue {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut v = HeaderValue::from_str(&format!("Basic {encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    v.set_sensitive(true);
    v
}

fn bearer(token: &str) -> HeaderValue {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
    v.set_sensitive(true);
    v
}
