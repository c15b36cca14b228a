//! Pulling: a tag or digest to a manifest (OCI or Docker v2s2, index / manifest list
//! resolved to one platform), its config (or the config fetched in the background
//! while the caller starts on the layers: [`Client::resolve_image`]), and blobs
//! streamed to disk. Pulls go through the mirrors / remaps of
//! [`crate::RegistryOptions::pull_sources`] in order.

use std::path::Path;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use kiln_oci::{Descriptor, Digest, Index, Manifest, MediaType, Platform};

use crate::challenge::Scope;
use crate::client::{Client, ManifestRef, RepoRef};
use crate::download::{WriteWatch, body_to_bytes, body_to_file};
use crate::error::{Ctx, Error, ErrorKind, Operation};
use crate::options::Direction;
use crate::progress::BlobMeter;
use crate::session::{Req, Target, read_limited};

/// Manifests and indexes larger than this are refused (distribution's own limit is 4 MiB).
const MANIFEST_LIMIT: usize = 4 << 20;
/// Configs larger than this are refused when read into memory.
pub const CONFIG_LIMIT: u64 = 64 << 20;

/// Every manifest type kiln understands, for `Accept`.
pub(crate) const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// A manifest document as fetched: raw bytes (digested as is), media type, digest.
#[derive(Debug, Clone)]
pub struct ManifestDocument {
    pub bytes: Bytes,
    pub media_type: MediaType,
    pub digest: Digest,
}

impl ManifestDocument {
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
}

/// An image manifest resolved for one platform, with its config.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// Where it was found (a mirror, a remap, or the registry itself); fetch blobs here.
    pub source: RepoRef,
    pub manifest: Manifest,
    /// The manifest bytes exactly as served.
    pub manifest_bytes: Bytes,
    /// Descriptor of the manifest (with the platform when it came from an index).
    pub descriptor: Descriptor,
    /// The index / manifest list the manifest was selected from, if any.
    pub index: Option<Descriptor>,
    /// The config blob bytes (verified against `manifest.config`).
    pub config: Bytes,
}

/// An image manifest resolved for one platform, before its config
/// ([`Client::resolve_image`]).
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// Where it was found (a mirror, a remap, or the registry itself); fetch blobs here.
    pub source: RepoRef,
    pub manifest: Manifest,
    /// The manifest bytes exactly as served.
    pub manifest_bytes: Bytes,
    /// Descriptor of the manifest (with the platform when it came from an index).
    pub descriptor: Descriptor,
    /// The index / manifest list the manifest was selected from, if any.
    pub index: Option<Descriptor>,
}

/// An image's config blob being fetched on the client's connection runtime while
/// its caller goes on (starts the layer downloads, say).
#[derive(Debug)]
pub struct ConfigArrival {
    config: std::sync::mpsc::Receiver<Result<Bytes, Error>>,
    ctx: Ctx,
}

impl ConfigArrival {
    /// Blocks until the config has arrived, verified against the manifest's
    /// descriptor, or failed.
    pub fn wait(self) -> Result<Bytes, Error> {
        self.config
            .recv()
            .unwrap_or_else(|_| Err(self.ctx.protocol("the config's download stopped")))
    }
}

fn pull_scopes(repo: &RepoRef) -> Vec<Scope> {
    vec![Scope::repository(&repo.repository, &["pull"])]
}

impl Client {
    /// Fetches the manifest `reference` of `repo` as is (manifest or index), trying the
    /// pull sources in order.
    pub async fn get_manifest(
        &self,
        repo: &RepoRef,
        reference: &ManifestRef,
    ) -> Result<(RepoRef, ManifestDocument), Error> {
        let sources = self
            .options()
            .pull_sources(&repo.registry, &repo.repository);
        let mut errors = Vec::new();
        for (registry, repository) in &sources {
            let source = RepoRef::new(registry, repository);
            match self.get_manifest_from(&source, reference).await {
                Ok(doc) => return Ok((source, doc)),
                Err(e) => {
                    tracing::debug!(source = %source, error = %e, "pull source failed");
                    errors.push(e);
                }
            }
        }
        if errors.len() == 1 {
            return Err(errors.remove(0));
        }
        let ctx = Ctx::new(Operation::PullManifest, &repo.registry)
            .repo(&repo.repository)
            .object(reference);
        Err(ctx.err(ErrorKind::AllSourcesFailed(errors)))
    }

    /// Fetches a manifest from exactly this repository (no mirrors).
    pub async fn get_manifest_from(
        &self,
        repo: &RepoRef,
        reference: &ManifestRef,
    ) -> Result<ManifestDocument, Error> {
        let ctx = Ctx::new(Operation::PullManifest, &repo.registry)
            .repo(&repo.repository)
            .object(reference);
        let ep = self.endpoint(&repo.registry, Direction::Pull, &ctx)?;
        let req = Req::new(
            Method::GET,
            Target::Path(format!("v2/{}/manifests/{reference}", repo.repository)),
            pull_scopes(repo),
            &[StatusCode::OK],
        )
        .header(ACCEPT, HeaderValue::from_static(ACCEPT_MANIFESTS))
        .follow_redirects();
        ep.cfg
            .retry
            .run(|_| async {
                let resp = ep.call(&ctx, &req).await?;
                let header_type = resp
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.split(';').next().unwrap_or("").trim().to_string());
                let header_digest = resp
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<Digest>().ok());
                let bytes = read_limited(resp.into_body(), MANIFEST_LIMIT)
                    .await
                    .map_err(|reason| {
                        ctx.err(ErrorKind::Transfer {
                            url: "manifest body".into(),
                            reason,
                        })
                    })?;
                let digest = Digest::sha256_of(&bytes);
                let expected = match reference {
                    ManifestRef::Digest(d) => Some(d.clone()),
                    ManifestRef::Tag(_) => {
                        header_digest.filter(|d| d.algorithm() == digest.algorithm())
                    }
                };
                if let Some(expected) = expected {
                    let actual = if expected.algorithm() == digest.algorithm() {
                        digest.clone()
                    } else {
                        let mut h = kiln_oci::Hasher::new(expected.algorithm());
                        h.update(&bytes);
                        h.finish()
                    };
                    if actual != expected {
                        return Err(ctx.err(ErrorKind::DigestMismatch {
                            expected: expected.to_string(),
                            actual: actual.to_string(),
                        }));
                    }
                }
                let digest = match reference {
                    ManifestRef::Digest(d) => d.clone(),
                    ManifestRef::Tag(_) => digest,
                };
                let media_type = manifest_media_type(header_type.as_deref(), &bytes)
                    .ok_or_else(|| ctx.protocol("the manifest has no recognisable media type"))?;
                Ok(ManifestDocument {
                    bytes,
                    media_type,
                    digest,
                })
            })
            .await
    }

    /// Resolves `reference` to the image for `platform` (through an index if needed) and
    /// fetches its config.
    pub async fn pull_manifest(
        &self,
        repo: &RepoRef,
        reference: &ManifestRef,
        platform: &Platform,
    ) -> Result<PulledImage, Error> {
        let resolved = self.resolve_manifest(repo, reference, platform).await?;
        let config = self
            .fetch_blob_bytes(&resolved.source, &resolved.manifest.config, CONFIG_LIMIT)
            .await?;
        Ok(PulledImage {
            source: resolved.source,
            manifest: resolved.manifest,
            manifest_bytes: resolved.manifest_bytes,
            descriptor: resolved.descriptor,
            index: resolved.index,
            config,
        })
    }

    /// [`Client::pull_manifest`] that returns once the manifest is resolved: the config
    /// is fetched meanwhile on the client's connection runtime ([`ConfigArrival`]), so
    /// that the caller's first layer requests go out together with it instead of one
    /// round trip later.
    pub async fn resolve_image(
        &self,
        repo: &RepoRef,
        reference: &ManifestRef,
        platform: &Platform,
    ) -> Result<(ResolvedImage, ConfigArrival), Error> {
        let resolved = self.resolve_manifest(repo, reference, platform).await?;
        let (tx, config) = std::sync::mpsc::sync_channel(1);
        let (client, source, descriptor) = (
            self.clone(),
            resolved.source.clone(),
            resolved.manifest.config.clone(),
        );
        let ctx = Ctx::new(Operation::PullBlob, &source.registry)
            .repo(&source.repository)
            .object(&descriptor.digest);
        crate::io_runtime::handle().spawn(async move {
            let _ = tx.send(
                client
                    .fetch_blob_bytes(&source, &descriptor, CONFIG_LIMIT)
                    .await,
            );
        });
        Ok((resolved, ConfigArrival { config, ctx }))
    }

    /// The manifest `reference` resolved for `platform` (through an index if needed).
    async fn resolve_manifest(
        &self,
        repo: &RepoRef,
        reference: &ManifestRef,
        platform: &Platform,
    ) -> Result<ResolvedImage, Error> {
        let (source, doc) = self.get_manifest(repo, reference).await?;
        let ctx = Ctx::new(Operation::PullManifest, &source.registry)
            .repo(&source.repository)
            .object(reference);
        let (doc, descriptor, index) = if doc.media_type.is_index() {
            let index = Index::from_slice(&doc.bytes)
                .map_err(|e| ctx.protocol(format!("invalid index: {e}")))?;
            let chosen = index
                .manifest_for_platform(platform)
                .cloned()
                .ok_or_else(|| {
                    let mut available: Vec<String> = index
                        .manifests
                        .iter()
                        .filter_map(|d| d.platform.as_ref())
                        .map(|p| p.to_string())
                        .collect();
                    available.dedup();
                    ctx.err(ErrorKind::NoMatchingPlatform {
                        wanted: platform.to_string(),
                        available,
                    })
                })?;
            let inner = self
                .get_manifest_from(&source, &ManifestRef::Digest(chosen.digest.clone()))
                .await?;
            (inner, chosen, Some(doc.descriptor()))
        } else {
            let d = doc.descriptor();
            (doc, d, None)
        };
        if !doc.media_type.is_manifest() {
            return Err(ctx.protocol(format!(
                "expected an image manifest, got {}",
                doc.media_type.as_str()
            )));
        }
        let manifest = Manifest::from_slice(&doc.bytes)
            .map_err(|e| ctx.protocol(format!("invalid manifest: {e}")))?;
        Ok(ResolvedImage {
            source,
            manifest,
            manifest_bytes: doc.bytes,
            descriptor,
            index,
        })
    }

    /// [`Client::pull_manifest`] for an image reference (`registry/repo:tag[@digest]`).
    pub async fn pull_image(
        &self,
        reference: &kiln_oci::Reference,
        platform: &Platform,
    ) -> Result<PulledImage, Error> {
        self.pull_manifest(
            &RepoRef::from(reference),
            &ManifestRef::from(reference),
            platform,
        )
        .await
    }

    /// Streams a blob to `dest` (written as `dest.partial`, renamed when verified).
    /// Redirects to another host are followed without `Authorization`.
    pub async fn fetch_blob(
        &self,
        repo: &RepoRef,
        descriptor: &Descriptor,
        dest: &Path,
    ) -> Result<(), Error> {
        self.fetch_blob_watched(repo, descriptor, dest, None).await
    }

    /// [`Client::fetch_blob`], telling `watch` how far `dest.partial` is written (see
    /// [`WriteWatch`]) so that a reader can follow it as it grows.
    pub async fn fetch_blob_watched(
        &self,
        repo: &RepoRef,
        descriptor: &Descriptor,
        dest: &Path,
        watch: Option<&WriteWatch>,
    ) -> Result<(), Error> {
        let ctx = Ctx::new(Operation::PullBlob, &repo.registry)
            .repo(&repo.repository)
            .object(&descriptor.digest);
        let ep = self.endpoint(&repo.registry, Direction::Pull, &ctx)?;
        let req = blob_get(repo, &descriptor.digest);
        let meter = BlobMeter::new(
            self.progress_hook(),
            Direction::Pull,
            &descriptor.digest,
            descriptor.size,
        );
        ep.cfg
            .retry
            .run(|_| async {
                let resp = ep.call(&ctx, &req).await?;
                body_to_file(&ctx, resp, descriptor, dest, meter.as_ref(), watch).await
            })
            .await
    }

    /// Reads a small blob (a config) into memory, verified; at most `limit` bytes.
    pub async fn fetch_blob_bytes(
        &self,
        repo: &RepoRef,
        descriptor: &Descriptor,
        limit: u64,
    ) -> Result<Bytes, Error> {
        let ctx = Ctx::new(Operation::PullBlob, &repo.registry)
            .repo(&repo.repository)
            .object(&descriptor.digest);
        let ep = self.endpoint(&repo.registry, Direction::Pull, &ctx)?;
        let req = blob_get(repo, &descriptor.digest);
        ep.cfg
            .retry
            .run(|_| async {
                let resp = ep.call(&ctx, &req).await?;
                body_to_bytes(&ctx, resp, descriptor, limit).await
            })
            .await
    }
}

fn blob_get(repo: &RepoRef, digest: &Digest) -> Req {
    Req::new(
        Method::GET,
        Target::Path(format!("v2/{}/blobs/{digest}", repo.repository)),
        pull_scopes(repo),
        &[StatusCode::OK],
    )
    .follow_redirects()
}

/// The media type of a manifest document: the `Content-Type` when it names a manifest
/// type, else the document's `mediaType`, else its shape (`manifests` = index).
fn manifest_media_type(header: Option<&str>, bytes: &[u8]) -> Option<MediaType> {
    if let Some(h) = header {
        let mt = MediaType::parse(h);
        if mt.is_manifest() || mt.is_index() {
            return Some(mt);
        }
    }
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    let shape: Shape = serde_json::from_slice(bytes).ok()?;
    match (shape.media_type, shape.manifests, shape.layers) {
        (Some(mt), _, _) => Some(MediaType::parse(&mt)),
        (None, Some(_), _) => Some(MediaType::OciIndex),
        (None, None, Some(_)) => Some(MediaType::OciManifest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_from_header_then_body() {
        assert_eq!(
            manifest_media_type(
                Some("application/vnd.docker.distribution.manifest.v2+json"),
                b"{}"
            ),
            Some(MediaType::DockerManifest)
        );
        assert_eq!(
            manifest_media_type(Some("application/json"), br#"{"manifests":[]}"#),
            Some(MediaType::OciIndex)
        );
        assert_eq!(
            manifest_media_type(None, br#"{"layers":[]}"#),
            Some(MediaType::OciManifest)
        );
        assert_eq!(
            manifest_media_type(
                Some("text/plain"),
                br#"{"mediaType":"application/vnd.oci.image.index.v1+json"}"#
            ),
            Some(MediaType::OciIndex)
        );
        assert_eq!(manifest_media_type(None, b"not json"), None);
    }
}
