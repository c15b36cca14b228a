//! Upload sessions opened ahead of need.
//!
//! Opening an upload session (`POST …/blobs/uploads/`) needs nothing from the blob, yet
//! costs a round trip once the blob is ready. A pusher that knows more blobs are coming
//! to a repository (the push pipeline: a build's later layers, then its config) asks
//! the client to keep sessions open there ([`Client::keep_sessions_ahead`]); an upload
//! whose blob is ready takes an open one instead of `POST`ing, and the client opens a
//! replacement while it keeps sessions. [`Client::close_sessions_ahead`] stops that and
//! cancels (`DELETE`) the sessions nobody took, so none is left on the registry.
//!
//! A session open for longer than [`MAX_AGE`] is cancelled rather than used (registries
//! may expire idle sessions), and one that failed to open is not used: the upload then
//! opens its own, as without sessions ahead. Sessions carry no data: one left behind
//! (a build that failed before closing them) is an empty upload the registry purges.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use url::Url;

use crate::challenge::Scope;
use crate::client::{Client, RepoRef};
use crate::error::{Ctx, Error, Operation};
use crate::options::Direction;
use crate::push::push_scopes;
use crate::session::Endpoint;
use crate::upload;

/// The longest a session opened ahead waits to be used.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(30);

/// A session being opened (or open).
struct Opened {
    at: Instant,
    session: JoinHandle<Result<Url, Error>>,
}

/// The sessions kept for one repository.
struct Kept {
    count: usize,
    open: VecDeque<Opened>,
}

/// The sessions a client keeps open, by repository.
#[derive(Default)]
pub(crate) struct Ahead(Mutex<BTreeMap<RepoRef, Kept>>);

impl Ahead {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<RepoRef, Kept>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Client {
    /// Keeps `count` upload sessions open in `repo` from now on (opening the missing
    /// ones at once), each taken one replaced, until [`Client::close_sessions_ahead`].
    pub fn keep_sessions_ahead(&self, repo: &RepoRef, count: usize) {
        let mut kept = self.ahead().lock();
        let kept = kept.entry(repo.clone()).or_insert_with(|| Kept {
            count,
            open: VecDeque::new(),
        });
        kept.count = count;
        while kept.open.len() < count {
            kept.open.push_back(self.open_ahead(repo));
        }
    }

    /// Stops keeping sessions in `repo` and cancels those nobody took.
    pub async fn close_sessions_ahead(&self, repo: &RepoRef) {
        let open = self
            .ahead()
            .lock()
            .remove(repo)
            .map(|k| k.open)
            .unwrap_or_default();
        let cancels = open.into_iter().map(|opened| async move {
            if let Ok(Ok(url)) = opened.session.await {
                self.cancel_session(repo, url).await;
            }
        });
        futures_util::future::join_all(cancels).await;
    }

    /// An upload session in `repo`: one opened ahead when a fresh one is there, else a
    /// new one (`POST`).
    pub(crate) async fn upload_session(
        &self,
        ep: &Endpoint,
        ctx: &Ctx,
        repo: &RepoRef,
        scopes: &[Scope],
    ) -> Result<Url, Error> {
        let taken = {
            let mut kept = self.ahead().lock();
            kept.get_mut(repo).and_then(|kept| {
                let taken = kept.open.pop_front()?;
                kept.open.push_back(self.open_ahead(repo));
                Some(taken)
            })
        };
        if let Some(opened) = taken {
            let fresh = opened.at.elapsed() < MAX_AGE;
            match opened.session.await {
                Ok(Ok(url)) if fresh => return Ok(url),
                Ok(Ok(url)) => self.cancel_session(repo, url).await,
                Ok(Err(e)) => tracing::debug!(%repo, error = %e, "a session opened ahead failed"),
                Err(e) => tracing::debug!(%repo, error = %e, "opening a session ahead stopped"),
            }
        }
        upload::start(ep, ctx, &repo.repository, scopes).await
    }

    fn open_ahead(&self, repo: &RepoRef) -> Opened {
        let (client, repo) = (self.clone(), repo.clone());
        let session = crate::io_runtime::handle().spawn(async move {
            let ctx = Ctx::new(Operation::PushBlob, &repo.registry)
                .repo(&repo.repository)
                .object("an upload session opened ahead");
            let ep = client.endpoint(&repo.registry, Direction::Push, &ctx)?;
            upload::start(&ep, &ctx, &repo.repository, &push_scopes(&repo)).await
        });
        Opened {
            at: Instant::now(),
            session,
        }
    }

    /// Cancels the session at `url`; a failure only costs an empty upload left behind.
    async fn cancel_session(&self, repo: &RepoRef, url: Url) {
        let ctx = Ctx::new(Operation::PushBlob, &repo.registry)
            .repo(&repo.repository)
            .object("an unused upload session");
        let cancelled = match self.endpoint(&repo.registry, Direction::Push, &ctx) {
            Ok(ep) => upload::cancel(&ep, &ctx, url, &push_scopes(repo)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = cancelled {
            tracing::debug!(%repo, error = %e, "cancelling an unused upload session failed");
        }
    }
}
