//! The client: one [`Endpoint`] (session) per registry and transport settings, shared by
//! clones, so tokens and connections are reused across pulls and pushes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use http::HeaderValue;

use crate::error::{Ctx, Error, ErrorKind};
use crate::foreign::ForeignClients;
use crate::options::{Direction, RegistryOptions};
use crate::progress::ProgressHook;
use crate::session::{Endpoint, EndpointConfig};
use crate::transport::build_client;

/// A repository on a registry: `registry` as references name it (`docker.io`,
/// `127.0.0.1:5000`), `repository` the path (`library/alpine`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoRef {
    pub registry: String,
    pub repository: String,
}

impl RepoRef {
    pub fn new(registry: &str, repository: &str) -> RepoRef {
        RepoRef {
            registry: registry.to_string(),
            repository: repository.to_string(),
        }
    }
}

impl From<&kiln_oci::Reference> for RepoRef {
    fn from(r: &kiln_oci::Reference) -> RepoRef {
        RepoRef::new(r.registry(), r.repository())
    }
}

impl fmt::Display for RepoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

/// A tag or a digest within a repository.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ManifestRef {
    Tag(String),
    Digest(kiln_oci::Digest),
}

impl From<&kiln_oci::Reference> for ManifestRef {
    /// The digest when the reference has one (it pins the content), else the tag
    /// (`latest` when neither).
    fn from(r: &kiln_oci::Reference) -> ManifestRef {
        match (r.digest(), r.tag()) {
            (Some(d), _) => ManifestRef::Digest(d.clone()),
            (None, Some(t)) => ManifestRef::Tag(t.to_string()),
            (None, None) => ManifestRef::Tag("latest".to_string()),
        }
    }
}

impl fmt::Display for ManifestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestRef::Tag(t) => write!(f, "{t}"),
            ManifestRef::Digest(d) => write!(f, "{d}"),
        }
    }
}

type EndpointKey = (String, bool, bool);

struct Inner {
    options: RegistryOptions,
    endpoints: Mutex<BTreeMap<EndpointKey, Arc<Endpoint>>>,
    foreign: Arc<ForeignClients>,
    /// Blobs this client has seen a repository confirm (answered a HEAD, accepted
    /// the closing `PUT` or a mount), so that pushing the same blob there again, as
    /// the final push does after the push pipeline's uploads, asks nothing.
    present: Mutex<BTreeSet<(RepoRef, kiln_oci::Digest)>>,
    /// Upload sessions kept open ahead of need.
    ahead: crate::ahead::Ahead,
}

/// An OCI distribution client. Cheap to clone; clones share sessions and token caches.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    progress: Option<ProgressHook>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(options: RegistryOptions) -> Client {
        let foreign = Arc::new(ForeignClients::new(options.tls.clone(), options.io_timeout));
        Client {
            inner: Arc::new(Inner {
                options,
                endpoints: Mutex::new(BTreeMap::new()),
                foreign,
                present: Mutex::new(BTreeSet::new()),
                ahead: Default::default(),
            }),
            progress: None,
        }
    }

    /// A client sharing this one's sessions and token caches whose blob transfers
    /// ([`Client::fetch_blob`], pushes) report their progress to `hook`.
    pub fn with_progress(&self, hook: ProgressHook) -> Client {
        Client {
            inner: self.inner.clone(),
            progress: Some(hook),
        }
    }

    pub(crate) fn progress_hook(&self) -> Option<&ProgressHook> {
        self.progress.as_ref()
    }

    /// Records that `repo` holds `digest` (the registry said so).
    pub(crate) fn note_present(&self, repo: &RepoRef, digest: &kiln_oci::Digest) {
        self.inner
            .present
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((repo.clone(), digest.clone()));
    }

    /// Forgets what `repo` confirmed (it denied holding one of those blobs).
    pub(crate) fn forget_present(&self, repo: &RepoRef) {
        self.inner
            .present
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(r, _)| r != repo);
    }

    /// Whether the registry said, to this client or a clone, that `repo` holds `digest`.
    pub(crate) fn known_present(&self, repo: &RepoRef, digest: &kiln_oci::Digest) -> bool {
        self.inner
            .present
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(repo.clone(), digest.clone()))
    }

    pub(crate) fn ahead(&self) -> &crate::ahead::Ahead {
        &self.inner.ahead
    }

    pub fn options(&self) -> &RegistryOptions {
        &self.inner.options
    }

    /// The session for `registry` used in direction `dir` (created on first use).
    pub(crate) fn endpoint(
        &self,
        registry: &str,
        dir: Direction,
        ctx: &Ctx,
    ) -> Result<Arc<Endpoint>, Error> {
        let o = &self.inner.options;
        let allow_http = o.allow_plain_http(registry, dir);
        let skip_verify = o.skip_verify(registry, dir);
        let key = (registry.to_string(), allow_http, skip_verify);
        let mut map = self
            .inner
            .endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(ep) = map.get(&key) {
            return Ok(ep.clone());
        }
        let tls = o
            .tls
            .client_config(registry, skip_verify)
            .map_err(|reason| {
                ctx.err(ErrorKind::Tls {
                    url: registry.to_string(),
                    reason,
                })
            })?;
        let credential = o
            .credentials
            .credential(registry)
            .map_err(|m| ctx.err(ErrorKind::Credentials(m)))?;
        let credential = (!credential.is_anonymous()).then_some(credential);
        let user_agent = HeaderValue::from_str(&o.user_agent)
            .unwrap_or_else(|_| HeaderValue::from_static("kiln"));
        let ep = Arc::new(Endpoint::new(EndpointConfig {
            registry: registry.to_string(),
            host: kiln_oci::registry_api_host(registry).to_string(),
            allow_plain_http: allow_http,
            client: build_client(tls, o.io_timeout),
            credential,
            retry: o.retry.clone(),
            user_agent,
            foreign: self.inner.foreign.clone(),
        }));
        map.insert(key, ep.clone());
        Ok(ep)
    }
}
