//! The outputs of a build for several platforms: one image per platform and one index
//! referencing each with its platform (an OCI image index, or a Docker manifest list when
//! every image is Docker's; assembled by [`crate::manifest_list::index_of`]).
//!
//! Order, so that no registry ever shows a half-made index: every platform's blobs and
//! manifest are pushed by digest to every destination repository first; only then is the
//! index pushed under each destination's tag ([`crate::manifest_list::push_index`]
//! checks that each manifest it names is there). The digest files name the index.
//! With `--push-ignore-immutable-tag-errors`, a destination whose tag the registry
//! refuses to move (immutable) is a warning, as for a single image: that tag is left
//! as it was, the other destinations get the index, the build succeeds.
//! Attestations (`--sbom`, `--provenance`) are made per platform image and pushed, with
//! its referrers, after every image and before the index.
//! `--oci-layout-path` holds an OCI index of the OCI forms of the images (the same
//! index as pushed when every image is OCI), with every manifest and blob.

use std::sync::OnceLock;

use bytes::Bytes;
use kiln_oci::{Descriptor, Digest, MediaType, OciLayoutWriter, Platform, Reference};
use kiln_registry::{Client, ManifestRef, RepoRef};

use crate::attest::for_build::Attesting;
use crate::blobs::BlobStore;
use crate::error::BuildError;
use crate::events::{BuildEvent, BuildObserver};
use crate::image::{Format, ImageState};
use crate::manifest_list::ManifestListError;
use crate::options::BuildOptions;
use crate::output::{self, Written};

/// One platform's finished image.
pub(crate) struct PlatformImage<'a> {
    /// The target platform.
    pub platform: Platform,
    /// Config and layers.
    pub image: ImageState,
    /// Its config and manifest in the pushed format, in the blob store.
    pub written: Written,
    /// What its attestations (`--sbom`, `--provenance`) are made from.
    pub attesting: Attesting<'a>,
}

/// The index a build for several platforms made.
pub(crate) struct IndexWritten {
    /// Digest of the index (what the digest files name).
    pub digest: Digest,
    /// OCI index or Docker manifest list.
    pub media_type: MediaType,
    /// Its bytes.
    pub bytes: Bytes,
    /// The references pushed (`name:tag`).
    pub pushed: Vec<Reference>,
}

/// Makes the index over `images`, writes the OCI layout, pushes, and writes the digest
/// files.
pub(crate) async fn write_and_push(
    registry: &OnceLock<Client>,
    blobs: &BlobStore,
    images: &[PlatformImage<'_>],
    options: &BuildOptions,
    observer: &dyn BuildObserver,
) -> Result<IndexWritten, BuildError> {
    let descriptors: Vec<Descriptor> = images.iter().map(|i| descriptor(&i.written)).collect();
    let platforms: Vec<Platform> = images.iter().map(|i| i.platform.clone()).collect();
    let (media_type, bytes) =
        crate::manifest_list::index_of(&descriptors, &platforms).map_err(BuildError::Output)?;
    let digest = Digest::sha256_of(&bytes);

    for i in images {
        if options.oci_layout_path.is_some() || i.attesting.needs_layers(options) {
            ensure_local(registry, blobs, &i.image, options, observer).await?;
        }
    }
    let attestors = images
        .iter()
        .map(|i| i.attesting.attestor(options, &i.platform, &i.image, blobs))
        .collect::<Result<Vec<_>, _>>()?;
    if options.oci_layout_path.is_some() {
        write_layout(blobs, images, &attestors, options)?;
    }
    let mut pushed = Vec::new();
    if !options.no_push {
        let client = crate::engine::registry_client(registry, options)?;
        let destinations = output::destinations(options)?;
        for i in images {
            push_by_digest(client, blobs, i, &destinations, observer).await?;
        }
        // Each image's attestations, before the index moves any tag.
        for (i, attestor) in images.iter().zip(&attestors) {
            let subject = descriptor(&i.written);
            let artifacts = crate::attest::for_build::artifacts(attestor.as_ref(), &subject)?;
            if artifacts.is_empty() {
                continue;
            }
            let mut repos: Vec<RepoRef> = Vec::new();
            for (reference, _) in &destinations {
                let repo = repo_of(reference);
                if repos.contains(&repo) {
                    continue;
                }
                crate::attest::publish::push_artifacts(client, &repo, &subject, &artifacts)
                    .await
                    .map_err(|e| {
                        BuildError::Registry(format!(
                            "pushing the attestations of the {} image to {reference}: {e}",
                            i.platform
                        ))
                    })?;
                repos.push(repo);
            }
        }
        let manifests: Vec<(Digest, String)> = images
            .iter()
            .map(|i| {
                (
                    i.written.digest.clone(),
                    format!("the {} image", i.platform),
                )
            })
            .collect();
        for (reference, tag) in &destinations {
            let result = crate::manifest_list::push_index(
                client,
                &repo_of(reference),
                tag,
                &manifests,
                &bytes,
                &media_type,
            )
            .await;
            match result {
                Ok(()) => {}
                Err(ManifestListError::Push(e))
                    if output::ignored_immutable_tag(options, &e, observer) =>
                {
                    continue;
                }
                Err(e) => {
                    return Err(BuildError::Registry(format!(
                        "pushing the index to {reference}: {e}"
                    )));
                }
            }
            observer.event(&BuildEvent::Pushed {
                destination: reference.to_string(),
                digest: digest.to_string(),
            });
            pushed.push(reference.clone());
        }
    }
    output::write_digest_files(&digest, &pushed, options)?;
    Ok(IndexWritten {
        digest,
        media_type,
        bytes,
        pushed,
    })
}

fn descriptor(written: &Written) -> Descriptor {
    Descriptor::new(
        written.media_type.clone(),
        written.digest.clone(),
        written.manifest_size,
    )
}

fn repo_of(reference: &Reference) -> RepoRef {
    RepoRef::new(reference.registry(), reference.repository())
}

/// Fetches the base layers not in the store (they are mounted when pushing, but an OCI
/// layout needs them).
async fn ensure_local(
    registry: &OnceLock<Client>,
    blobs: &BlobStore,
    image: &ImageState,
    options: &BuildOptions,
    observer: &dyn BuildObserver,
) -> Result<(), BuildError> {
    if image.layers.iter().all(|l| blobs.contains(&l.digest)) {
        return Ok(());
    }
    let client = crate::engine::registry_client(registry, options)?;
    crate::pull::ensure_blobs(client, blobs, image, observer)
        .await
        .map_err(BuildError::Registry)
}

/// One platform's blobs and manifest to every destination repository, by digest (no
/// tag moves). A base layer that cannot be mounted is fetched and uploaded.
async fn push_by_digest(
    client: &Client,
    blobs: &BlobStore,
    image: &PlatformImage<'_>,
    destinations: &[(Reference, ManifestRef)],
    observer: &dyn BuildObserver,
) -> Result<(), BuildError> {
    let written = &image.written;
    let targets: Vec<kiln_registry::PushTarget> = destinations
        .iter()
        .map(|(r, _)| kiln_registry::PushTarget {
            repo: repo_of(r),
            reference: ManifestRef::Digest(written.digest.clone()),
        })
        .collect();
    let request = || output::image_to_push(blobs, &image.image, written);
    let push_once = || async {
        let (request, targets) = (request(), targets.clone());
        crate::pull::progress::reporting(client, observer, |client| async move {
            client.push_image(&request, &targets).await
        })
        .await
    };
    let fail = |e: kiln_registry::Error| {
        BuildError::Registry(format!("pushing the {} image: {e}", image.platform))
    };
    match push_once().await {
        Ok(_) => Ok(()),
        Err(first) if !image.image.layers.iter().all(|l| blobs.contains(&l.digest)) => {
            tracing::debug!(error = %first, platform = %image.platform, "push without local base layers failed; fetching them");
            crate::pull::ensure_blobs(client, blobs, &image.image, observer)
                .await
                .map_err(BuildError::Registry)?;
            push_once().await.map(|_| ()).map_err(fail)
        }
        Err(e) => Err(fail(e)),
    }
}

/// `--oci-layout-path`: every platform's image in OCI form, with its blobs, and an OCI
/// index over them named after the first destination's tag (or `latest`).
fn write_layout(
    blobs: &BlobStore,
    images: &[PlatformImage<'_>],
    attestors: &[Option<crate::attest::Attestor>],
    options: &BuildOptions,
) -> Result<(), BuildError> {
    let Some(path) = &options.oci_layout_path else {
        return Ok(());
    };
    let fail = |e: kiln_oci::LayoutError| {
        BuildError::Output(format!("writing the OCI layout {}: {e}", path.display()))
    };
    let mut layout = OciLayoutWriter::create(path).map_err(fail)?;
    let mut manifests = Vec::new();
    for (i, attestor) in images.iter().zip(attestors) {
        let oci = match i.written.media_type {
            MediaType::DockerManifest => {
                output::write_image(blobs, &i.image, Format::Oci, "--oci-layout-path", options)?
            }
            _ => i.written.clone(),
        };
        for blob in std::iter::once(&oci.config).chain(&oci.manifest.layers) {
            if !layout.blob_path(&blob.digest).is_file() {
                layout
                    .write_blob_from_file(&blobs.path(&blob.digest))
                    .map_err(fail)?;
            }
        }
        let d = descriptor(&oci);
        layout
            .write_blob_expecting(&oci.manifest_bytes[..], &d)
            .map_err(fail)?;
        let artifacts = crate::attest::for_build::artifacts(attestor.as_ref(), &d)?;
        crate::attest::publish::write_to_layout(&mut layout, &artifacts).map_err(fail)?;
        manifests.push(d);
    }
    let platforms: Vec<Platform> = images.iter().map(|i| i.platform.clone()).collect();
    let (media_type, bytes) =
        crate::manifest_list::index_of(&manifests, &platforms).map_err(BuildError::Output)?;
    let index = Descriptor::new(media_type, Digest::sha256_of(&bytes), bytes.len() as u64);
    layout
        .write_blob_expecting(&bytes[..], &index)
        .map_err(fail)?;
    let tag = options
        .destinations
        .first()
        .and_then(|d| Reference::parse(d).ok())
        .and_then(|r| r.tag().map(str::to_string))
        .unwrap_or_else(|| "latest".into());
    layout.add_to_index(index, Some(&tag)).map_err(fail)?;
    layout.finish().map_err(fail)?;
    Ok(())
}
