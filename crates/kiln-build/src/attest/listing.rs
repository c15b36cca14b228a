//! Reading attestations back (`kiln attestations REF`): an image's referrers
//! in its repository (referrers API or tag schema), and one attestation's
//! document, verified against its digests.

use bytes::Bytes;
use kiln_oci::{Descriptor, Digest, Manifest, Reference};
use kiln_registry::{ManifestRef, ReferrersForm, RepoRef};

use super::Kind;
use crate::error::BuildError;
use crate::options::BuildOptions;

/// Attestation documents larger than this are refused.
const DOCUMENT_LIMIT: u64 = 64 << 20;

/// One referrer of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The kiln kind, when kiln makes this artifact type.
    pub kind: Option<Kind>,
    /// The referrer manifest's descriptor, as the referrers index lists it.
    pub manifest: Descriptor,
}

/// An image's referrers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The repository they were read from.
    pub repo: RepoRef,
    /// The image manifest (or index) `REF` resolves to.
    pub subject: Descriptor,
    /// Where the registry keeps referrers.
    pub form: ReferrersForm,
    /// Every referrer, in the index's order.
    pub referrers: Vec<Listed>,
}

fn registry_error(what: String) -> impl FnOnce(kiln_registry::Error) -> BuildError {
    move |e| BuildError::Registry(format!("{what}: {e}"))
}

/// Lists the referrers of the image `reference` names.
pub async fn list(options: &BuildOptions, reference: &str) -> Result<Listing, BuildError> {
    let r = Reference::parse(reference)
        .map_err(|e| BuildError::Options(format!("image reference {reference:?}: {e}")))?;
    let client = crate::registry_glue::client(options)?;
    let repo = RepoRef::from(&r);
    let subject = client
        .head_manifest(&repo, &ManifestRef::from(&r))
        .await
        .map_err(registry_error(format!("resolving {reference}")))?
        .ok_or_else(|| BuildError::Registry(format!("{reference}: no such image")))?;
    let found = client
        .referrers(&repo, &subject.digest)
        .await
        .map_err(registry_error(format!(
            "listing the referrers of {reference}"
        )))?;
    let referrers = found
        .manifests
        .into_iter()
        .map(|manifest| Listed {
            kind: manifest
                .artifact_type
                .as_ref()
                .and_then(|t| Kind::of_artifact_type(t.as_str())),
            manifest,
        })
        .collect();
    Ok(Listing {
        repo,
        subject,
        form: found.form,
        referrers,
    })
}

/// The document of the referrer `manifest` (its one layer), after checking
/// that the manifest's `subject` is `subject`. Returns the layer's
/// descriptor and bytes.
pub async fn document(
    options: &BuildOptions,
    repo: &RepoRef,
    subject: &Digest,
    manifest: &Descriptor,
) -> Result<(Descriptor, Bytes), BuildError> {
    let client = crate::registry_glue::client(options)?;
    let what = format!("{repo}@{}", manifest.digest);
    let doc = client
        .get_manifest_from(repo, &ManifestRef::Digest(manifest.digest.clone()))
        .await
        .map_err(registry_error(format!("reading {what}")))?;
    let parsed = Manifest::from_slice(&doc.bytes)
        .map_err(|e| BuildError::Registry(format!("{what}: not an artifact manifest: {e}")))?;
    if parsed.subject.as_ref().map(|s| &s.digest) != Some(subject) {
        return Err(BuildError::Registry(format!(
            "{what}: its subject is not {subject}"
        )));
    }
    let [layer] = parsed.layers.as_slice() else {
        return Err(BuildError::Registry(format!(
            "{what}: {} layers, expected one document",
            parsed.layers.len()
        )));
    };
    let bytes = client
        .fetch_blob_bytes(repo, layer, DOCUMENT_LIMIT)
        .await
        .map_err(registry_error(format!("reading the document of {what}")))?;
    Ok((layer.clone(), bytes))
}
