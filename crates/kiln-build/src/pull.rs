//! Pulling a base image: manifest for the target platform and config (for a
//! stage's base, the config arrives while the layers download:
//! [`resolve_base_image`]); layer blobs are fetched into the content-addressed
//! store only when something needs their bytes (unpacking, a local output, a
//! push that cannot mount).
//! Transfers report their progress as events ([`progress`]). A stage's base
//! layers download while the stage unpacks them ([`pipeline`]), each applied
//! from its stream as it arrives ([`arrival`]).

pub(crate) mod arrival;
pub(crate) mod pipeline;
pub(crate) mod progress;

use kiln_oci::{Digest, ImageConfig, Platform, Reference};
use kiln_registry::{Client, ManifestRef, RepoRef};

use crate::blobs::BlobStore;
use crate::events::BuildObserver;
use crate::image::{Format, ImageState};

/// Pulls `reference` for `platform`; returns the image state and manifest digest.
pub async fn pull_base(
    client: &Client,
    reference: &str,
    platform: &Platform,
) -> Result<(ImageState, Digest), String> {
    let (repo, wanted) = repo_and_manifest(reference)?;
    let pulled = client
        .pull_manifest(&repo, &wanted, platform)
        .await
        .map_err(|e| pulling(reference, e))?;
    let config = parse_config(reference, &pulled.config)?;
    let image = image_state(config, &pulled.source, &pulled.manifest);
    Ok((image, pulled.descriptor.digest.clone()))
}

/// [`pull_base`] that returns once the manifest is resolved: the config arrives
/// meanwhile ([`PendingConfig`]), so the base's layer downloads start together with
/// it. The returned state's config is the default until [`PendingConfig::wait`]
/// gives the real one.
pub async fn resolve_base_image(
    client: &Client,
    reference: &str,
    platform: &Platform,
) -> Result<(ImageState, Digest, PendingConfig), String> {
    let (repo, wanted) = repo_and_manifest(reference)?;
    let (resolved, arrival) = client
        .resolve_image(&repo, &wanted, platform)
        .await
        .map_err(|e| pulling(reference, e))?;
    let image = image_state(ImageConfig::default(), &resolved.source, &resolved.manifest);
    let pending = PendingConfig {
        arrival,
        reference: reference.to_string(),
    };
    Ok((image, resolved.descriptor.digest, pending))
}

/// A base image's config still on its way ([`resolve_base_image`]).
pub struct PendingConfig {
    arrival: kiln_registry::ConfigArrival,
    reference: String,
}

impl PendingConfig {
    /// Blocks until the config has arrived (verified) and parses it.
    pub fn wait(self) -> Result<ImageConfig, String> {
        let bytes = self
            .arrival
            .wait()
            .map_err(|e| pulling(&self.reference, e))?;
        parse_config(&self.reference, &bytes)
    }
}

fn repo_and_manifest(reference: &str) -> Result<(RepoRef, ManifestRef), String> {
    let parsed = Reference::parse(reference)
        .map_err(|e| format!("invalid base image reference {reference:?}: {e}"))?;
    let repo = RepoRef::new(parsed.registry(), parsed.repository());
    let wanted = match parsed.digest() {
        Some(d) => ManifestRef::Digest(d.clone()),
        None => ManifestRef::Tag(parsed.tag().unwrap_or("latest").to_string()),
    };
    Ok((repo, wanted))
}

fn pulling(reference: &str, e: kiln_registry::Error) -> String {
    format!("pulling base image {reference}: {e}")
}

fn parse_config(reference: &str, bytes: &[u8]) -> Result<ImageConfig, String> {
    ImageConfig::from_slice(bytes)
        .map_err(|e| format!("base image {reference}: invalid config: {e}"))
}

/// The state of an image pulled from `source`, whose layers are fetched from there.
fn image_state(config: ImageConfig, source: &RepoRef, manifest: &kiln_oci::Manifest) -> ImageState {
    let format = if manifest.effective_media_type().is_docker() {
        Format::Docker
    } else {
        Format::Oci
    };
    let origins = manifest
        .layers
        .iter()
        .map(|l| (l.digest.clone(), source.clone()))
        .collect();
    ImageState {
        config,
        layers: manifest.layers.clone(),
        origins,
        format,
    }
}

/// Fetches every layer of `image` missing from the store from its origin.
pub async fn ensure_blobs(
    client: &Client,
    blobs: &BlobStore,
    image: &ImageState,
    observer: &dyn BuildObserver,
) -> Result<(), String> {
    progress::reporting(client, observer, |client| async move {
        for layer in &image.layers {
            if blobs.contains(&layer.digest) {
                continue;
            }
            let origin = image.origins.get(&layer.digest).ok_or_else(|| {
                format!(
                    "layer {} is neither in the blob store nor in a known repository",
                    layer.digest
                )
            })?;
            client
                .fetch_blob(origin, layer, &blobs.path(&layer.digest))
                .await
                .map_err(|e| format!("pulling layer {} from {origin}: {e}", layer.digest))?;
        }
        Ok(())
    })
    .await
}

/// Pulls `reference` and unpacks it into `root` (for `COPY --from=<image>`).
pub async fn pull_and_unpack(
    client: &Client,
    blobs: &BlobStore,
    reference: &str,
    platform: &Platform,
    root: &std::path::Path,
    observer: &dyn BuildObserver,
    extract_retries: u32,
) -> Result<(), String> {
    let (image, _) = pull_base(client, reference, platform).await?;
    let fetch = pipeline::Fetch::plan(client, blobs, &image)?;
    fs_err::create_dir_all(root).map_err(|e| e.to_string())?;
    pipeline::while_fetching(Some(fetch), blobs, observer, || {
        crate::unpack::unpack_layers(blobs, &image.layers, root, extract_retries)
    })
}

/// Looks `reference` up in `--cache-dir` when it is an OCI image layout whose
/// `index.json` names images by reference (as written, full form
/// `docker.io/library/busybox:1.36`, or Docker's short form). A hit copies the
/// layer blobs into the store; `None` means "not cached here, pull it".
pub fn from_cache_dir(
    cache_dir: &std::path::Path,
    blobs: &BlobStore,
    reference: &str,
    platform: &Platform,
) -> Option<Result<(ImageState, Digest), String>> {
    if !cache_dir.join("index.json").is_file() {
        return None;
    }
    let layout = match kiln_oci::OciLayout::open(cache_dir) {
        Ok(l) => l,
        Err(e) => return Some(Err(format!("--cache-dir {}: {e}", cache_dir.display()))),
    };
    let parsed = Reference::parse(reference).ok()?;
    let names = [reference.to_string(), parsed.to_string(), parsed.familiar()];
    let known = layout.ref_names();
    let name = names.iter().find(|n| known.contains(n))?;
    load_cached(&layout, blobs, name, platform).transpose()
}

/// The cached image `name`; `None` when it was warmed for another platform
/// (it is not this build's base: pull it).
fn load_cached(
    layout: &kiln_oci::OciLayout,
    blobs: &BlobStore,
    name: &str,
    platform: &Platform,
) -> Result<Option<(ImageState, Digest)>, String> {
    let shown = format!("{name} in --cache-dir {}", layout.root().display());
    let image = layout
        .image(Some(name), Some(platform))
        .map_err(|e| format!("{shown}: {e}"))?;
    if !platform.matches(&image.config.platform()) {
        tracing::debug!(image = %shown, cached = %image.config.platform(), wanted = %platform, "--cache-dir holds another platform");
        return Ok(None);
    }
    for layer in &image.manifest.layers {
        if !blobs.contains(&layer.digest) {
            let temp = blobs.temp_path();
            fs_err::copy(layout.blob_path(layer), &temp).map_err(|e| format!("{shown}: {e}"))?;
            blobs
                .insert_file(&temp, &layer.digest)
                .map_err(|e| format!("{shown}: {e}"))?;
        }
    }
    tracing::debug!(image = %shown, "base image from the cache dir");
    let format = if image.manifest.effective_media_type().is_docker() {
        Format::Docker
    } else {
        Format::Oci
    };
    let state = ImageState {
        config: image.config,
        layers: image.manifest.layers.clone(),
        origins: Default::default(),
        format,
    };
    Ok(Some((state, image.descriptor.digest)))
}
