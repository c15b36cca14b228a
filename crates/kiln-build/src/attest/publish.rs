//! Publishing attestations: to a registry repository (artifact blobs and
//! manifests by digest, then the referrers, see [`kiln_registry::ReferrersForm`])
//! and into an OCI layout (blobs, manifests, and `index.json` entries that
//! carry `artifactType`, as the layout spec allows for referrers).

use bytes::Bytes;
use kiln_oci::{Descriptor, MediaType, OciLayoutWriter};
use kiln_registry::{
    BlobSource, BlobToPush, Client, ImageToPush, ManifestRef, PushOutcome, PushTarget,
    ReferrersForm, RepoRef,
};

use super::{Artifact, EMPTY_JSON};

/// Pushes `artifacts` (whose subject is `subject`) to `repo` and makes them
/// findable as its referrers. The subject must already be in `repo`.
pub async fn push_artifacts(
    client: &Client,
    repo: &RepoRef,
    subject: &Descriptor,
    artifacts: &[Artifact],
) -> Result<ReferrersForm, kiln_registry::Error> {
    for a in artifacts {
        let layer = &a.manifest.layers[0];
        let blobs = vec![
            BlobToPush {
                descriptor: Descriptor::for_bytes(MediaType::OciEmpty, EMPTY_JSON),
                source: BlobSource::Bytes(Bytes::from_static(EMPTY_JSON)),
                mount_from: None,
            },
            BlobToPush {
                descriptor: layer.clone(),
                source: BlobSource::Bytes(Bytes::from(a.document.clone())),
                mount_from: None,
            },
        ];
        let request = ImageToPush {
            manifest: Bytes::from(a.manifest_bytes.clone()),
            media_type: MediaType::OciManifest,
            blobs,
        };
        let target = PushTarget {
            repo: repo.clone(),
            reference: ManifestRef::Digest(a.descriptor.digest.clone()),
        };
        client.push_image(&request, &[target]).await?;
        tracing::info!(repo = %repo, kind = a.kind.name(), digest = %a.descriptor.digest, "attestation pushed");
    }
    let added: Vec<Descriptor> = artifacts.iter().map(|a| a.descriptor.clone()).collect();
    let form = client.add_referrers(repo, &subject.digest, &added).await?;
    tracing::debug!(repo = %repo, subject = %subject.digest, ?form, "referrers recorded");
    Ok(form)
}

/// Pushes an image and its attestations in the order that keeps tags
/// honest: per repository the image blobs and manifest by digest, then the
/// attestations; only when every repository has both, each tag. A failure
/// before the tags leaves every tag where it was.
pub async fn push_image_with_artifacts(
    client: &Client,
    image: &ImageToPush,
    targets: &[PushTarget],
    artifacts: &[Artifact],
) -> Result<PushOutcome, kiln_registry::Error> {
    let digest = kiln_oci::Digest::sha256_of(&image.manifest);
    let subject = Descriptor::new(
        image.media_type.clone(),
        digest.clone(),
        image.manifest.len() as u64,
    );
    let mut repos: Vec<RepoRef> = Vec::new();
    for t in targets {
        if !repos.contains(&t.repo) {
            repos.push(t.repo.clone());
        }
    }
    let by_digest: Vec<PushTarget> = repos
        .iter()
        .map(|repo| PushTarget {
            repo: repo.clone(),
            reference: ManifestRef::Digest(digest.clone()),
        })
        .collect();
    let mut outcome = client.push_image(image, &by_digest).await?;
    for repo in &repos {
        push_artifacts(client, repo, &subject, artifacts).await?;
    }
    outcome.pushed.clear();
    for t in targets {
        client
            .push_manifest(&t.repo, &t.reference, &image.manifest, &image.media_type)
            .await?;
        let sep = if matches!(t.reference, ManifestRef::Tag(_)) {
            ':'
        } else {
            '@'
        };
        outcome
            .pushed
            .push(format!("{}{sep}{}", t.repo, t.reference));
    }
    Ok(outcome)
}

/// Writes `artifacts` into an OCI layout whose image they describe is
/// already there: blobs, manifests, and one `index.json` entry each (no ref
/// name; `artifactType` and annotations on the descriptor).
pub fn write_to_layout(
    layout: &mut OciLayoutWriter,
    artifacts: &[Artifact],
) -> Result<(), kiln_oci::LayoutError> {
    for a in artifacts {
        layout.write_bytes(EMPTY_JSON)?;
        layout.write_bytes(&a.document)?;
        let written = layout.write_manifest(&a.manifest)?;
        debug_assert_eq!(written.digest, a.descriptor.digest);
        layout.add_to_index(a.descriptor.clone(), None)?;
    }
    Ok(())
}
