//! Pulling a base image: manifest for the target platform, config, and every
//! layer blob into the content-addressed store (skipped when already there).

use kiln_oci::{Digest, ImageConfig, Platform, Reference};
use kiln_registry::{Client, ManifestRef, RepoRef};

use crate::blobs::BlobStore;
use crate::events::{BuildEvent, BuildObserver, Transfer};
use crate::image::{Format, ImageState};
use crate::options::BuildOptions;

/// Pulls `reference` for `platform`; returns the image state and manifest digest.
pub async fn pull_base(
    client: &Client,
    blobs: &BlobStore,
    reference: &str,
    platform: &Platform,
    _options: &BuildOptions,
    observer: &dyn BuildObserver,
) -> Result<(ImageState, Digest), String> {
    let parsed = Reference::parse(reference)
        .map_err(|e| format!("invalid base image reference {reference:?}: {e}"))?;
    let repo = RepoRef::new(parsed.registry(), parsed.repository());
    let wanted = match parsed.digest() {
        Some(d) => ManifestRef::Digest(d.clone()),
        None => ManifestRef::Tag(parsed.tag().unwrap_or("latest").to_string()),
    };
    let pulled = client
        .pull_manifest(&repo, &wanted, platform)
        .await
        .map_err(|e| format!("pulling base image {reference}: {e}"))?;
    let config = ImageConfig::from_slice(&pulled.config)
        .map_err(|e| format!("base image {reference}: invalid config: {e}"))?;
    for layer in &pulled.manifest.layers {
        if blobs.contains(&layer.digest) {
            continue;
        }
        let dest = blobs.path(&layer.digest);
        client
            .fetch_blob(&pulled.source, layer, &dest)
            .await
            .map_err(|e| format!("pulling layer {} of {reference}: {e}", layer.digest))?;
        observer.event(&BuildEvent::BlobProgress {
            transfer: Transfer::Pull,
            digest: layer.digest.to_string(),
            done: layer.size,
            total: Some(layer.size),
        });
    }
    let format = if pulled.manifest.effective_media_type().is_docker() {
        Format::Docker
    } else {
        Format::Oci
    };
    let image = ImageState {
        config,
        layers: pulled.manifest.layers.clone(),
        format,
    };
    Ok((image, pulled.descriptor.digest.clone()))
}
