//! A token issuer that behaves like GitLab's: the registry's `auth.token.realm`.
//!
//! `GET realm?service=S&scope=A&scope=B` with Basic credentials (or none, when anonymous
//! pulls are allowed), or `POST realm` with an OAuth2 form (`grant_type=password` or
//! `refresh_token`). Answers `{"token","access_token","expires_in","issued_at"}` (plus
//! `refresh_token` for the password grant). Tokens are JWTs signed ES256 or RS256 whose
//! header carries `x5c` or a libtrust `kid`, with claims `iss`, `sub`, `aud` (a string),
//! integer `exp`/`nbf`/`iat`, `jti` and `access`.

mod handler;
mod scope;
mod signing;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;

pub use scope::{Access, grant, parse_scope};
pub use signing::{Algorithm, KeyHeader, libtrust_key_id};

use crate::server::BackgroundServer;

/// A user the issuer knows, and the actions it may be granted on any repository.
#[derive(Debug, Clone)]
pub struct TokenUser {
    /// Basic-auth user name (GitLab: `gitlab-ci-token`).
    pub username: String,
    /// Basic-auth password (GitLab: the job token).
    pub password: String,
    /// Actions this user may get (`pull`, `push`, `delete`, or `*`).
    pub actions: Vec<String>,
}

impl TokenUser {
    /// A user allowed `actions` (comma-separated, e.g. `"pull,push"`).
    pub fn new(username: &str, password: &str, actions: &str) -> TokenUser {
        TokenUser {
            username: username.to_owned(),
            password: password.to_owned(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// One request the issuer answered, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The authenticated user, if any.
    pub account: Option<String>,
    /// The requested scopes, as sent.
    pub scopes: Vec<String>,
    /// The OAuth2 grant type of a POST.
    pub grant_type: Option<String>,
    /// The HTTP status returned.
    pub status: u16,
}

/// Configures a [`TokenIssuer`].
#[derive(Debug, Clone)]
pub struct TokenIssuerBuilder {
    service: String,
    issuer: String,
    users: Vec<TokenUser>,
    anonymous: Option<Vec<String>>,
    algorithm: Algorithm,
    key_header: KeyHeader,
    expires_in: u64,
    tls: Option<crate::tls::RegistryTls>,
}

impl Default for TokenIssuerBuilder {
    fn default() -> Self {
        TokenIssuerBuilder {
            service: "container_registry".to_owned(),
            issuer: "kiln-testkit-issuer".to_owned(),
            users: Vec::new(),
            anonymous: None,
            algorithm: Algorithm::default(),
            key_header: KeyHeader::default(),
            expires_in: 300,
            tls: None,
        }
    }
}

impl TokenIssuerBuilder {
    /// Adds a user (see [`TokenUser::new`]).
    pub fn user(mut self, username: &str, password: &str, actions: &str) -> Self {
        self.users.push(TokenUser::new(username, password, actions));
        self
    }

    /// Lets requests without credentials get `actions` (e.g. `"pull"`).
    pub fn anonymous(mut self, actions: &str) -> Self {
        self.anonymous = Some(
            actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
        );
        self
    }

    /// The `service` (the token's `aud`); default `container_registry`, as GitLab.
    pub fn service(mut self, service: &str) -> Self {
        self.service = service.to_owned();
        self
    }

    /// The `iss` claim; default `kiln-testkit-issuer`.
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.issuer = issuer.to_owned();
        self
    }

    /// ES256 (default) or RS256.
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// `x5c` (default) or `kid` in the JWT header.
    pub fn key_header(mut self, key_header: KeyHeader) -> Self {
        self.key_header = key_header;
        self
    }

    /// Token lifetime in seconds (default 300).
    pub fn expires_in(mut self, seconds: u64) -> Self {
        self.expires_in = seconds;
        self
    }

    /// Serve the realm over HTTPS with a certificate from this material's CA.
    pub fn tls(mut self, tls: crate::tls::RegistryTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Generates the keys and starts the issuer on a free 127.0.0.1 port.
    pub fn start(self) -> TokenIssuer {
        let dir = tempfile::Builder::new()
            .prefix("kiln-token-")
            .tempdir()
            .expect("creating token issuer temp dir");
        let key = signing::SigningKey::generate(self.algorithm, dir.path());
        let (listener, port) = crate::server::bind_free();
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let realm = format!("{scheme}://127.0.0.1:{port}/jwt/auth");
        let acceptor = self
            .tls
            .as_ref()
            .map(|t| crate::server::tls_acceptor(t.server()));
        let state = Arc::new(IssuerState {
            config: self,
            key,
            requests: Mutex::new(Vec::new()),
            refresh_tokens: Mutex::new(BTreeMap::new()),
            counter: AtomicU64::new(0),
        });
        let served = state.clone();
        let server = BackgroundServer::spawn("kiln-token-issuer", async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            crate::server::serve_http(listener, acceptor, move |req| {
                handler::handle(served.clone(), req)
            })
            .await;
        });
        TokenIssuer {
            state,
            realm,
            _server: server,
            _dir: dir,
        }
    }
}

pub(crate) struct IssuerState {
    pub(crate) config: TokenIssuerBuilder,
    key: signing::SigningKey,
    pub(crate) requests: Mutex<Vec<TokenRequest>>,
    pub(crate) refresh_tokens: Mutex<BTreeMap<String, String>>,
    counter: AtomicU64,
}

impl IssuerState {
    /// Mints a JWT for `subject` (empty for anonymous) with `access`.
    pub(crate) fn mint(&self, subject: &str, access: &[Access], lifetime: i64) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs() as i64;
        let jti = format!(
            "kiln-{}-{}",
            std::process::id(),
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        let claims = serde_json::json!({
            "iss": self.config.issuer,
            "sub": subject,
            "aud": self.config.service,
            "exp": now + lifetime,
            "nbf": now - 5,
            "iat": now,
            "jti": jti,
            "access": access,
        });
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(v).expect("JSON"))
        };
        let signing_input = format!(
            "{}.{}",
            b64(&self.key.header(self.config.key_header)),
            b64(&claims)
        );
        let signature = self.key.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature)
        )
    }

    pub(crate) fn next_refresh_token(&self, username: &str) -> String {
        let token = format!(
            "kiln-refresh-{}",
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        self.refresh_tokens
            .lock()
            .expect("lock")
            .insert(token.clone(), username.to_owned());
        token
    }
}

/// A running token issuer; stopped on drop.
pub struct TokenIssuer {
    state: Arc<IssuerState>,
    realm: String,
    _server: BackgroundServer,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// A builder: add users, anonymous access, algorithm, header kind, TLS.
    pub fn builder() -> TokenIssuerBuilder {
        TokenIssuerBuilder::default()
    }

    /// The realm URL (`http(s)://127.0.0.1:PORT/jwt/auth`).
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The service name (the registry's `auth.token.service`, the JWT `aud`).
    pub fn service(&self) -> &str {
        &self.state.config.service
    }

    /// The issuer name (`iss`).
    pub fn issuer(&self) -> &str {
        &self.state.config.issuer
    }

    /// The PEM bundle the registry trusts (`auth.token.rootcertbundle`).
    pub fn root_cert_bundle(&self) -> &Path {
        &self.state.key.bundle_path
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.requests.lock().expect("lock").clone()
    }

    /// Mints a token directly (e.g. an already expired one with a negative lifetime).
    pub fn mint(&self, subject: &str, access: &[Access], lifetime_seconds: i64) -> String {
        self.state.mint(subject, access, lifetime_seconds)
    }
}
