//! Cache entries in a registry repository, tagged by the key's hex digest.

use bytes::Bytes;
use kiln_oci::{Digest, Manifest, MediaType, Platform};
use kiln_registry::{
    BlobSource, BlobToPush, CONFIG_LIMIT, Client, ImageToPush, ManifestRef, PushTarget, RepoRef,
};

use crate::entry::{self, CachedStep};
use crate::error::CacheError;
use crate::{LayerSource, StepToStore};

fn registry_error(
    repo: &RepoRef,
    what: &'static str,
    key: &Digest,
) -> impl FnOnce(kiln_registry::Error) -> CacheError {
    let repo = repo.to_string();
    let key = key.to_string();
    move |source| CacheError::Registry {
        repo,
        what,
        key,
        source: Box::new(source),
    }
}

/// The entry stored under `key`, if any.
pub async fn lookup(
    client: &Client,
    repo: &RepoRef,
    key: &Digest,
) -> Result<Option<(CachedStep, LayerSource)>, CacheError> {
    let tag = ManifestRef::Tag(key.hex().to_string());
    let doc = match client.get_manifest_from(repo, &tag).await {
        Ok(doc) => doc,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(registry_error(repo, "looking up", key)(e)),
    };
    let invalid = |reason: String| CacheError::Invalid {
        cache: repo.to_string(),
        key: key.to_string(),
        reason,
    };
    let manifest = Manifest::from_slice(&doc.bytes).map_err(|e| invalid(e.to_string()))?;
    let config = client
        .fetch_blob_bytes(repo, &manifest.config, CONFIG_LIMIT)
        .await
        .map_err(registry_error(repo, "reading the entry's config for", key))?;
    let step = entry::decode(key, &manifest, &config).map_err(invalid)?;
    let source = match step.layer {
        Some(_) => LayerSource::Registry(repo.clone()),
        None => LayerSource::Nothing,
    };
    Ok(Some((step, source)))
}

/// Pushes `step` under `key`: the layer blob (skipped when present), the
/// config, then the tag.
pub async fn store(
    client: &Client,
    repo: &RepoRef,
    step: &StepToStore,
    platform: &Platform,
) -> Result<(), CacheError> {
    let key = &step.key;
    let (manifest, config) =
        entry::encode(key, &step.step, platform).map_err(|reason| CacheError::Invalid {
            cache: repo.to_string(),
            key: key.to_string(),
            reason,
        })?;
    let (_, manifest_bytes) = manifest.to_blob().map_err(|e| CacheError::Invalid {
        cache: repo.to_string(),
        key: key.to_string(),
        reason: format!("serialising the manifest: {e}"),
    })?;
    let mut blobs = vec![BlobToPush {
        descriptor: manifest.config.clone(),
        source: BlobSource::Bytes(Bytes::from(config)),
        mount_from: None,
    }];
    if let (Some((descriptor, _)), Some(path)) = (&step.step.layer, &step.blob) {
        blobs.push(BlobToPush {
            descriptor: descriptor.clone(),
            source: BlobSource::File(path.clone()),
            mount_from: None,
        });
    }
    let image = ImageToPush {
        manifest: Bytes::from(manifest_bytes),
        media_type: MediaType::OciManifest,
        blobs,
    };
    let target = PushTarget {
        repo: repo.clone(),
        reference: ManifestRef::Tag(key.hex().to_string()),
    };
    client
        .push_image(&image, &[target])
        .await
        .map_err(registry_error(repo, "storing", key))?;
    Ok(())
}
