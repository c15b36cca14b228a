//! OCI 1.1 referrers: the manifests whose `subject` is a given manifest
//! (attestations, signatures).
//!
//! Two forms, as the distribution spec defines them:
//!
//! - the referrers API, `GET /v2/<name>/referrers/<digest>`, answered with an
//!   image index by registries that implement it; they index a manifest by its
//!   `subject` when it is PUT, so a client only pushes the referrer itself;
//! - the referrers tag schema, for registries without the API (a 404 there,
//!   as distribution 2.8 answers): the client keeps an image index of the
//!   referrers under the tag `<alg>-<hex>` of the subject and merges into it.
//!
//! [`Client::add_referrers`] asks the API once per call and falls back to the
//! tag; [`Client::referrers`] reads whichever form the registry has.

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use kiln_oci::{Descriptor, Digest, Index, MediaType};

use crate::challenge::Scope;
use crate::client::{Client, ManifestRef, RepoRef};
use crate::error::{Ctx, Error, Operation};
use crate::options::Direction;
use crate::session::{Req, Target, drain, read_limited};

/// Referrer indexes larger than this are refused (distribution's manifest limit).
const INDEX_LIMIT: usize = 4 << 20;

/// Which form of referrers a registry offers for a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrersForm {
    /// `GET /v2/<name>/referrers/<digest>` answers with an index.
    Api,
    /// No API: an index under the tag [`referrers_tag`].
    TagSchema,
}

/// The referrers of one manifest, and where they were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrers {
    /// How the registry keeps them.
    pub form: ReferrersForm,
    /// One descriptor per referrer (with `artifactType` and annotations).
    pub manifests: Vec<Descriptor>,
}

/// The tag of the referrers tag schema for `subject`: `sha256-<hex>`.
pub fn referrers_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm().as_str(), subject.hex())
}

impl Client {
    /// The referrers API's answer for `subject`, or `None` when the registry
    /// has no such API (404, 400 or 405 on the endpoint).
    pub async fn referrers_api(
        &self,
        repo: &RepoRef,
        subject: &Digest,
    ) -> Result<Option<Index>, Error> {
        let ctx = Ctx::new(Operation::PullManifest, &repo.registry)
            .repo(&repo.repository)
            .object(format!("referrers of {subject}"));
        let ep = self.endpoint(&repo.registry, Direction::Pull, &ctx)?;
        let req = Req::new(
            Method::GET,
            Target::Path(format!("v2/{}/referrers/{subject}", repo.repository)),
            vec![Scope::repository(&repo.repository, &["pull"])],
            &[
                StatusCode::OK,
                StatusCode::NOT_FOUND,
                StatusCode::BAD_REQUEST,
                StatusCode::METHOD_NOT_ALLOWED,
            ],
        )
        .header(
            ACCEPT,
            HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
        );
        let resp = ep.call_retrying(&ctx, &req).await?;
        let is_index = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(MediaType::OciIndex.as_str()));
        if resp.status() != StatusCode::OK || !is_index {
            drain(resp).await;
            return Ok(None);
        }
        let bytes = read_limited(resp.into_body(), INDEX_LIMIT)
            .await
            .map_err(|reason| ctx.protocol(format!("reading the referrers index: {reason}")))?;
        Index::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ctx.protocol(format!("invalid referrers index: {e}")))
    }

    /// The referrers of `subject` in `repo`: from the API when the registry
    /// has one, else from the tag schema (empty when the tag does not exist).
    pub async fn referrers(&self, repo: &RepoRef, subject: &Digest) -> Result<Referrers, Error> {
        if let Some(index) = self.referrers_api(repo, subject).await? {
            return Ok(Referrers {
                form: ReferrersForm::Api,
                manifests: index.manifests,
            });
        }
        Ok(Referrers {
            form: ReferrersForm::TagSchema,
            manifests: self
                .referrers_tag_index(repo, subject)
                .await?
                .map(|i| i.manifests)
                .unwrap_or_default(),
        })
    }

    /// Makes `added` (referrer manifests already pushed to `repo`) findable
    /// from `subject`. With the referrers API the registry did it on PUT;
    /// otherwise the tag schema's index is read, the new descriptors merged
    /// in (one entry per digest, existing entries kept first) and PUT back.
    pub async fn add_referrers(
        &self,
        repo: &RepoRef,
        subject: &Digest,
        added: &[Descriptor],
    ) -> Result<ReferrersForm, Error> {
        if self.referrers_api(repo, subject).await?.is_some() {
            return Ok(ReferrersForm::Api);
        }
        let mut index = self
            .referrers_tag_index(repo, subject)
            .await?
            .unwrap_or_else(|| Index::new_oci(Vec::new()));
        let before = index.manifests.len();
        for d in added {
            if !index.manifests.iter().any(|m| m.digest == d.digest) {
                index.manifests.push(d.clone());
            }
        }
        if index.manifests.len() == before && before > 0 {
            return Ok(ReferrersForm::TagSchema);
        }
        let ctx = Ctx::new(Operation::PushManifest, &repo.registry)
            .repo(&repo.repository)
            .object(referrers_tag(subject));
        let (descriptor, bytes) = index
            .to_blob()
            .map_err(|e| ctx.protocol(format!("serialising the referrers index: {e}")))?;
        self.push_manifest(
            repo,
            &ManifestRef::Tag(referrers_tag(subject)),
            &Bytes::from(bytes),
            &descriptor.media_type,
        )
        .await?;
        Ok(ReferrersForm::TagSchema)
    }

    /// The tag schema's index for `subject`, `None` when the tag does not exist.
    async fn referrers_tag_index(
        &self,
        repo: &RepoRef,
        subject: &Digest,
    ) -> Result<Option<Index>, Error> {
        let tag = ManifestRef::Tag(referrers_tag(subject));
        let ctx = Ctx::new(Operation::PullManifest, &repo.registry)
            .repo(&repo.repository)
            .object(&tag);
        if self.head_manifest(repo, &tag).await?.is_none() {
            return Ok(None);
        }
        let doc = self.get_manifest_from(repo, &tag).await?;
        if !doc.media_type.is_index() {
            return Err(ctx.protocol(format!(
                "the referrers tag holds {}, not an image index",
                doc.media_type.as_str()
            )));
        }
        Index::from_slice(&doc.bytes)
            .map(Some)
            .map_err(|e| ctx.protocol(format!("invalid referrers index: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_names_algorithm_and_hex() {
        let d = Digest::sha256_of(b"x");
        assert_eq!(referrers_tag(&d), format!("sha256-{}", d.hex()));
    }
}
