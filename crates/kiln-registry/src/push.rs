//! Pushing: blobs first (HEAD to skip what the registry has, cross-repository mount when
//! a source repository is known, else an upload; a blob of at most [`UNASKED_MAX`]
//! bytes is sent without asking), several in parallel under a semaphore;
//! the manifest is PUT only once every blob is confirmed, for each tag, and the digest the
//! registry answers with is checked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use kiln_oci::{Descriptor, Digest, Manifest, MediaType};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use url::Url;

use crate::body::RequestBody;
use crate::challenge::Scope;
use crate::client::{Client, ManifestRef, RepoRef};
use crate::error::{Ctx, Error, ErrorKind, Operation};
use crate::options::Direction;
use crate::progress::BlobMeter;
use crate::session::{Req, Target, drain};
use crate::upload::{self, BlobSource, check_digest_header, location};

/// A blob to make present in the target repository.
#[derive(Debug, Clone)]
pub struct BlobToPush {
    pub descriptor: Descriptor,
    pub source: BlobSource,
    /// A repository on the same registry that may hold the blob (a base image's):
    /// tried as a cross-repository mount before uploading.
    pub mount_from: Option<RepoRef>,
}

/// An image to push: the manifest bytes exactly as they will be digested, and every blob
/// the manifest references (config and layers).
#[derive(Debug, Clone)]
pub struct ImageToPush {
    pub manifest: Bytes,
    pub media_type: MediaType,
    pub blobs: Vec<BlobToPush>,
}

/// Where to push: a repository and a tag (or the manifest digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    pub repo: RepoRef,
    pub reference: ManifestRef,
}

impl From<&kiln_oci::Reference> for PushTarget {
    /// The tag when the reference has one, else its digest, else `latest`.
    fn from(r: &kiln_oci::Reference) -> PushTarget {
        let reference = match (r.tag(), r.digest()) {
            (Some(t), _) => ManifestRef::Tag(t.to_string()),
            (None, Some(d)) => ManifestRef::Digest(d.clone()),
            (None, None) => ManifestRef::Tag("latest".to_string()),
        };
        PushTarget {
            repo: RepoRef::from(r),
            reference,
        }
    }
}

/// What a blob push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// The registry already had it.
    Existing,
    /// Mounted from another repository.
    Mounted,
    Uploaded,
}

/// The result of [`Client::push_image`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    pub digest: Digest,
    pub size: u64,
    /// Every `registry/repository:tag` (or `@digest`) now pointing at the manifest.
    pub pushed: Vec<String>,
    pub uploaded: usize,
    pub existing: usize,
    pub mounted: usize,
}

/// A blob at most this big (a config, a layer from a `RUN` that wrote a file) is
/// uploaded without first asking whether the registry has it: the `HEAD` costs a round
/// trip, about what sending 64 KiB costs on a link of a few MB/s, and a registry that
/// already has the blob takes it again without harm (blobs are content-addressed).
pub const UNASKED_MAX: u64 = 64 << 10;

pub(crate) fn push_scopes(repo: &RepoRef) -> Vec<Scope> {
    vec![Scope::repository(&repo.repository, &["pull", "push"])]
}

impl Client {
    /// Whether `repo` has the blob (HEAD).
    pub async fn blob_exists(&self, repo: &RepoRef, digest: &Digest) -> Result<bool, Error> {
        let ctx = Ctx::new(Operation::CheckBlob, &repo.registry)
            .repo(&repo.repository)
            .object(digest);
        let ep = self.endpoint(&repo.registry, Direction::Push, &ctx)?;
        let req = Req::new(
            Method::HEAD,
            Target::Path(format!("v2/{}/blobs/{digest}", repo.repository)),
            push_scopes(repo),
            &[StatusCode::OK, StatusCode::NOT_FOUND],
        )
        .follow_redirects();
        let resp = ep.call_retrying(&ctx, &req).await?;
        let found = resp.status() == StatusCode::OK;
        drain(resp).await;
        Ok(found)
    }

    /// Mounts `digest` from `from` (same registry) into `repo`. `Ok(true)`: mounted;
    /// `Ok(false)`: the registry declined (it then opened an upload session, which is
    /// returned by the internal variant and abandoned here).
    pub async fn mount_blob(
        &self,
        repo: &RepoRef,
        digest: &Digest,
        from: &RepoRef,
    ) -> Result<bool, Error> {
        Ok(self.try_mount(repo, digest, from).await?.is_none())
    }

    /// `None`: mounted. `Some(url)`: not mounted, upload session at `url`.
    async fn try_mount(
        &self,
        repo: &RepoRef,
        digest: &Digest,
        from: &RepoRef,
    ) -> Result<Option<Url>, Error> {
        let ctx = Ctx::new(Operation::MountBlob, &repo.registry)
            .repo(&repo.repository)
            .object(format!("{digest} from {}", from.repository));
        if from.registry != repo.registry {
            return Err(ctx.err(ErrorKind::Invalid(format!(
                "cannot mount across registries (from {})",
                from.registry
            ))));
        }
        let ep = self.endpoint(&repo.registry, Direction::Push, &ctx)?;
        let mut path = format!("v2/{}/blobs/uploads/?", repo.repository);
        path.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .append_pair("mount", &digest.to_string())
                .append_pair("from", &from.repository)
                .finish(),
        );
        let mut scopes = push_scopes(repo);
        scopes.push(Scope::repository(&from.repository, &["pull"]));
        let req = Req::new(
            Method::POST,
            Target::Path(path),
            scopes,
            &[StatusCode::CREATED, StatusCode::ACCEPTED],
        );
        let resp = ep.call_retrying(&ctx, &req).await?;
        if resp.status() == StatusCode::CREATED {
            drain(resp).await;
            return Ok(None);
        }
        let base = ep
            .base_url(&ctx)
            .await?
            .join(&format!("v2/{}/blobs/uploads/", repo.repository))
            .map_err(|e| ctx.protocol(e.to_string()))?;
        let url = location(&ctx, &resp, &base)?;
        drain(resp).await;
        Ok(Some(url))
    }

    /// Makes `blob` present in `repo`: skipped if there, mounted if possible, else
    /// uploaded (monolithic or chunked per the options), retried from a fresh session.
    pub async fn push_blob(&self, repo: &RepoRef, blob: &BlobToPush) -> Result<BlobOutcome, Error> {
        self.push_blob_with_mounts(repo, blob, &[]).await
    }

    /// Whether `digest` (`size` bytes) is in `repo` already: known from what this
    /// client saw the repository accept, else asked (`HEAD`, the answer remembered),
    /// except for a blob of at most [`UNASKED_MAX`] that cannot be mounted, which
    /// costs no more to send than to ask about.
    pub(crate) async fn already_in(
        &self,
        repo: &RepoRef,
        digest: &Digest,
        size: u64,
        mountable: bool,
    ) -> Result<bool, Error> {
        if self.known_present(repo, digest) {
            tracing::debug!(repo = %repo, %digest, "blob already pushed by this client");
            return Ok(true);
        }
        if (mountable || size > UNASKED_MAX) && self.blob_exists(repo, digest).await? {
            tracing::debug!(repo = %repo, %digest, "blob already present");
            self.note_present(repo, digest);
            return Ok(true);
        }
        Ok(false)
    }

    async fn push_blob_with_mounts(
        &self,
        repo: &RepoRef,
        blob: &BlobToPush,
        more_mounts: &[RepoRef],
    ) -> Result<BlobOutcome, Error> {
        let digest = &blob.descriptor.digest;
        let mountable = blob.mount_from.is_some() || !more_mounts.is_empty();
        if self
            .already_in(repo, digest, blob.descriptor.size, mountable)
            .await?
        {
            return Ok(BlobOutcome::Existing);
        }
        let mut session = None;
        let mounts = blob
            .mount_from
            .iter()
            .chain(more_mounts)
            .filter(|m| m.registry == repo.registry && m.repository != repo.repository);
        for from in mounts {
            match self.try_mount(repo, digest, from).await {
                Ok(None) => {
                    tracing::debug!(repo = %repo, %digest, from = %from, "blob mounted");
                    self.note_present(repo, digest);
                    return Ok(BlobOutcome::Mounted);
                }
                Ok(Some(url)) => {
                    session = Some(url);
                    break;
                }
                Err(e) => tracing::debug!(error = %e, "mount failed; uploading instead"),
            }
        }
        let ctx = Ctx::new(Operation::PushBlob, &repo.registry)
            .repo(&repo.repository)
            .object(digest);
        let ep = self.endpoint(&repo.registry, Direction::Push, &ctx)?;
        let scopes = push_scopes(repo);
        let chunk = self.options().chunk_size;
        let meter = BlobMeter::new(
            self.progress_hook(),
            Direction::Push,
            digest,
            blob.descriptor.size,
        );
        ep.cfg
            .retry
            .run(|_| {
                let pre = session.take();
                let (ep, ctx, scopes, meter) = (&ep, &ctx, &scopes, meter.as_ref());
                async move {
                    let url = match pre {
                        Some(u) => u,
                        None => self.upload_session(ep, ctx, repo, scopes).await?,
                    };
                    upload::send(ep, ctx, url, blob, chunk, scopes, meter).await
                }
            })
            .await?;
        tracing::debug!(repo = %repo, %digest, size = blob.descriptor.size, "blob uploaded");
        self.note_present(repo, digest);
        Ok(BlobOutcome::Uploaded)
    }

    /// PUTs a manifest under a tag or its digest; returns the digest, checked against the
    /// registry's `Docker-Content-Digest`.
    pub async fn push_manifest(
        &self,
        repo: &RepoRef,
        reference: &ManifestRef,
        manifest: &Bytes,
        media_type: &MediaType,
    ) -> Result<Digest, Error> {
        let ctx = Ctx::new(Operation::PushManifest, &repo.registry)
            .repo(&repo.repository)
            .object(reference);
        let ep = self.endpoint(&repo.registry, Direction::Push, &ctx)?;
        let digest = Digest::sha256_of(manifest);
        let content_type = HeaderValue::from_str(media_type.as_str())
            .map_err(|e| ctx.err(ErrorKind::Invalid(format!("media type: {e}"))))?;
        let req = Req::new(
            Method::PUT,
            Target::Path(format!("v2/{}/manifests/{reference}", repo.repository)),
            push_scopes(repo),
            &[StatusCode::CREATED, StatusCode::OK, StatusCode::NO_CONTENT],
        )
        .header(CONTENT_TYPE, content_type)
        .body(RequestBody::Bytes(manifest.clone()));
        let resp = ep.call_retrying(&ctx, &req).await?;
        check_digest_header(&ctx, &resp, &digest)?;
        drain(resp).await;
        Ok(digest)
    }

    /// The descriptor of a manifest if it exists (HEAD), `None` if the registry says 404.
    pub async fn head_manifest(
        &self,
        repo: &RepoRef,
        reference: &ManifestRef,
    ) -> Result<Option<Descriptor>, Error> {
        let ctx = Ctx::new(Operation::PullManifest, &repo.registry)
            .repo(&repo.repository)
            .object(reference);
        let ep = self.endpoint(&repo.registry, Direction::Pull, &ctx)?;
        let req = Req::new(
            Method::HEAD,
            Target::Path(format!("v2/{}/manifests/{reference}", repo.repository)),
            vec![Scope::repository(&repo.repository, &["pull"])],
            &[StatusCode::OK, StatusCode::NOT_FOUND],
        )
        .header(
            ACCEPT,
            HeaderValue::from_static(crate::pull::ACCEPT_MANIFESTS),
        );
        let resp = ep.call_retrying(&ctx, &req).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            drain(resp).await;
            return Ok(None);
        }
        let h = resp.headers();
        let digest = h
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let size = h
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let media_type = h
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(MediaType::parse);
        drain(resp).await;
        match (digest, size, media_type) {
            (Some(d), Some(s), Some(m)) => Ok(Some(Descriptor::new(m, d, s))),
            _ => Err(ctx.protocol(
                "HEAD answer lacks Docker-Content-Digest, Content-Length or Content-Type",
            )),
        }
    }

    /// Pushes an image to every target: per repository, all blobs (in parallel, at most
    /// `max_parallel_uploads` at once), then the manifest for each of its tags. A later
    /// repository on the same registry mounts blobs from an earlier one.
    pub async fn push_image(
        &self,
        image: &ImageToPush,
        targets: &[PushTarget],
    ) -> Result<PushOutcome, Error> {
        let digest = Digest::sha256_of(&image.manifest);
        let first = targets.first().ok_or_else(|| {
            Ctx::new(Operation::PushImage, "-").err(ErrorKind::Invalid("no push target".into()))
        })?;
        let ctx = Ctx::new(Operation::PushImage, &first.repo.registry)
            .repo(&first.repo.repository)
            .object(&digest);
        check_blobs_cover_manifest(&ctx, image)?;

        let mut groups: Vec<(RepoRef, Vec<ManifestRef>)> = Vec::new();
        for t in targets {
            match groups.iter_mut().find(|(r, _)| *r == t.repo) {
                Some((_, refs)) => refs.push(t.reference.clone()),
                None => groups.push((t.repo.clone(), vec![t.reference.clone()])),
            }
        }
        let mut blobs: BTreeMap<Digest, BlobToPush> = BTreeMap::new();
        for b in &image.blobs {
            blobs
                .entry(b.descriptor.digest.clone())
                .or_insert_with(|| b.clone());
        }
        let mut outcome = PushOutcome {
            digest: digest.clone(),
            size: image.manifest.len() as u64,
            pushed: Vec::new(),
            uploaded: 0,
            existing: 0,
            mounted: 0,
        };
        let mut done_repos: Vec<RepoRef> = Vec::new();
        for (repo, refs) in groups {
            let mounts: Vec<RepoRef> = done_repos
                .iter()
                .filter(|r| r.registry == repo.registry)
                .cloned()
                .collect();
            for o in self
                .push_blobs(&repo, blobs.values().cloned().collect(), mounts.clone())
                .await?
            {
                match o {
                    BlobOutcome::Existing => outcome.existing += 1,
                    BlobOutcome::Mounted => outcome.mounted += 1,
                    BlobOutcome::Uploaded => outcome.uploaded += 1,
                }
            }
            for r in refs {
                let put = self
                    .push_manifest(&repo, &r, &image.manifest, &image.media_type)
                    .await;
                let got = match put {
                    Err(e) if e.codes().iter().any(|c| c.ends_with("BLOB_UNKNOWN")) => {
                        // distribution rewrites a blob's link in a repository in place: a
                        // concurrent upload of the same blob to the same repository hides it
                        // for a moment. Confirm every blob again (uploading what is really
                        // missing), then put the manifest once more.
                        tracing::warn!(error = %e, repo = %repo, "a blob confirmed present was unknown to the manifest PUT; confirming the blobs again");
                        self.forget_present(&repo);
                        self.push_blobs(&repo, blobs.values().cloned().collect(), mounts.clone())
                            .await?;
                        self.push_manifest(&repo, &r, &image.manifest, &image.media_type)
                            .await?
                    }
                    other => other?,
                };
                debug_assert_eq!(got, digest);
                let sep = if matches!(r, ManifestRef::Tag(_)) {
                    ':'
                } else {
                    '@'
                };
                outcome.pushed.push(format!("{repo}{sep}{r}"));
            }
            done_repos.push(repo);
        }
        Ok(outcome)
    }

    async fn push_blobs(
        &self,
        repo: &RepoRef,
        blobs: Vec<BlobToPush>,
        mounts: Vec<RepoRef>,
    ) -> Result<Vec<BlobOutcome>, Error> {
        let permits = Arc::new(Semaphore::new(self.options().max_parallel_uploads.max(1)));
        let mounts = Arc::new(mounts);
        let mut tasks = JoinSet::new();
        for blob in blobs {
            let (client, repo, permits, mounts) =
                (self.clone(), repo.clone(), permits.clone(), mounts.clone());
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await.map_err(|e| {
                    Ctx::new(Operation::PushBlob, &repo.registry)
                        .err(ErrorKind::Invalid(format!("upload semaphore: {e}")))
                })?;
                client.push_blob_with_mounts(&repo, &blob, &mounts).await
            });
        }
        let mut out = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let result = joined.map_err(|e| {
                Ctx::new(Operation::PushBlob, &repo.registry)
                    .repo(&repo.repository)
                    .err(ErrorKind::Invalid(format!("upload task: {e}")))
            })?;
            // Returning drops the JoinSet, which aborts the other uploads.
            out.push(result?);
        }
        Ok(out)
    }
}

/// An image manifest may only be pushed with every blob it references.
fn check_blobs_cover_manifest(ctx: &Ctx, image: &ImageToPush) -> Result<(), Error> {
    if !image.media_type.is_manifest() {
        return Ok(()); // an index references manifests, pushed separately
    }
    let manifest = Manifest::from_slice(&image.manifest).map_err(|e| {
        ctx.err(ErrorKind::Invalid(format!(
            "the manifest to push is invalid: {e}"
        )))
    })?;
    let have: BTreeSet<&Digest> = image.blobs.iter().map(|b| &b.descriptor.digest).collect();
    let missing: Vec<String> = std::iter::once(&manifest.config)
        .chain(&manifest.layers)
        .filter(|d| !have.contains(&d.digest))
        .map(|d| d.digest.to_string())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ctx.err(ErrorKind::Invalid(format!(
            "the manifest references blobs not given to push: {}",
            missing.join(", ")
        ))))
    }
}
