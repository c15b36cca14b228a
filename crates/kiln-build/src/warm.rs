//! kaniko's warmer (`kiln warm`, `/kaniko/warmer`): fills `--cache-dir` with
//! base images so that builds read them from disk instead of the registry.
//!
//! The cache dir is an OCI image layout; each image is listed under its full
//! reference (`docker.io/library/alpine:3.20`), with the manifest bytes and
//! blobs exactly as the registry served them, so the manifest digest (which
//! starts every step key of the layer cache) is the same whether a build
//! reads the base from the cache dir or from the registry.

use std::path::PathBuf;

use kiln_dockerfile::model::{Base as PlanBase, PlanOptions};
use kiln_oci::{OciLayout, OciLayoutWriter, Reference};
use kiln_registry::{ManifestRef, RepoRef};
use nix::fcntl::{Flock, FlockArg};

use crate::error::BuildError;
use crate::options::BuildOptions;

/// What to warm, beyond the registry, platform and build-arg settings of the
/// [`BuildOptions`] it comes with.
#[derive(Debug, Clone, Default)]
pub struct WarmRequest {
    /// `--image`: references to cache.
    pub images: Vec<String>,
    /// `--dockerfile`: cache the base images of this Dockerfile's stages
    /// (with the options' `--build-arg`s and `--target`).
    pub dockerfile: Option<PathBuf>,
    /// `--force`: fetch again even when the image is cached.
    pub force: bool,
}

/// One image the warmer dealt with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warmed {
    /// The reference, normalised (`docker.io/library/alpine:latest`).
    pub reference: String,
    /// Manifest digest.
    pub digest: String,
    /// `true` when it was already in the cache dir and left alone.
    pub already_cached: bool,
}

/// Warms `options.cache.dir` with the images of `request`.
pub async fn warm(
    options: &BuildOptions,
    request: &WarmRequest,
) -> Result<Vec<Warmed>, BuildError> {
    let dir = options
        .cache
        .dir
        .clone()
        .ok_or_else(|| BuildError::Options("kiln warm needs --cache-dir".into()))?;
    let platform = crate::engine::target_platform(options, "kiln warm")?;
    let mut references = request.images.clone();
    if let Some(dockerfile) = &request.dockerfile {
        references.extend(bases_of(dockerfile, options, &platform)?);
    }
    if references.is_empty() {
        return Err(BuildError::Options(
            "nothing to warm: give --image or --dockerfile".into(),
        ));
    }
    let client = crate::registry_glue::client(options)?;
    fs_err::create_dir_all(&dir).map_err(|e| BuildError::io("creating --cache-dir", &dir, e))?;
    let lock_path = dir.join(".kiln-warm.lock");
    let lock_file = fs_err::File::create(&lock_path)
        .map_err(|e| BuildError::io("locking --cache-dir", &lock_path, e))?
        .into_parts()
        .0;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|(_, errno)| {
        BuildError::io(
            "locking --cache-dir",
            &lock_path,
            std::io::Error::from(errno),
        )
    })?;

    let mut warmed = Vec::new();
    for given in references {
        let reference = Reference::parse(&given)
            .map_err(|e| BuildError::Options(format!("--image {given:?}: {e}")))?;
        let name = reference.to_string();
        if warmed.iter().any(|w: &Warmed| w.reference == name) {
            continue;
        }
        if !request.force
            && let Some(digest) = cached_digest(&dir, &name, &platform)
        {
            tracing::info!(image = %name, %digest, "already in the cache dir");
            warmed.push(Warmed {
                reference: name,
                digest,
                already_cached: true,
            });
            continue;
        }
        let fail = |e: String| BuildError::Registry(format!("warming {name}: {e}"));
        let repo = RepoRef::new(reference.registry(), reference.repository());
        let wanted = match reference.digest() {
            Some(d) => ManifestRef::Digest(d.clone()),
            None => ManifestRef::Tag(reference.tag().unwrap_or("latest").to_string()),
        };
        let pulled = client
            .pull_manifest(&repo, &wanted, &platform)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut writer = OciLayoutWriter::create(&dir).map_err(|e| fail(e.to_string()))?;
        for layer in &pulled.manifest.layers {
            let dest = writer.blob_path(&layer.digest);
            if !dest.is_file() {
                client
                    .fetch_blob(&pulled.source, layer, &dest)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
            }
        }
        writer
            .write_bytes(&pulled.config)
            .map_err(|e| fail(e.to_string()))?;
        writer
            .write_bytes(&pulled.manifest_bytes)
            .map_err(|e| fail(e.to_string()))?;
        let config = kiln_oci::ImageConfig::from_slice(&pulled.config)
            .map_err(|e| fail(format!("invalid config: {e}")))?;
        let mut descriptor = pulled.descriptor.clone();
        descriptor.platform = Some(config.platform());
        writer
            .add_to_index(descriptor.clone(), Some(&name))
            .map_err(|e| fail(e.to_string()))?;
        writer.finish().map_err(|e| fail(e.to_string()))?;
        tracing::info!(image = %name, digest = %descriptor.digest, "cached");
        warmed.push(Warmed {
            reference: name,
            digest: descriptor.digest.to_string(),
            already_cached: false,
        });
    }
    Ok(warmed)
}

/// The digest of `name` in the layout when it is there for `platform`.
fn cached_digest(
    dir: &std::path::Path,
    name: &str,
    platform: &kiln_oci::Platform,
) -> Option<String> {
    let layout = OciLayout::open(dir).ok()?;
    let image = layout.image(Some(name), Some(platform)).ok()?;
    platform
        .matches(&image.config.platform())
        .then(|| image.descriptor.digest.to_string())
}

/// The registry images the Dockerfile's needed stages are built on.
fn bases_of(
    path: &std::path::Path,
    options: &BuildOptions,
    platform: &kiln_oci::Platform,
) -> Result<Vec<String>, BuildError> {
    let bytes = fs_err::read(path).map_err(|e| BuildError::Context {
        path: path.to_path_buf(),
        reason: format!("cannot read the Dockerfile: {e}"),
    })?;
    let name = path.display().to_string();
    let dockerfile =
        kiln_dockerfile::parse(&name, &bytes).map_err(|d| BuildError::Dockerfile(d.to_string()))?;
    let plan = dockerfile
        .plan(&PlanOptions {
            build_args: options.build_args.clone(),
            target: options.target.clone(),
            target_platform: kiln_dockerfile::Platform::new(
                &platform.os,
                &platform.architecture,
                platform.variant.as_deref(),
            ),
            build_platform: kiln_dockerfile::Platform::host(),
        })
        .map_err(|d| BuildError::Dockerfile(d.to_string()))?;
    Ok(plan
        .stages
        .iter()
        .filter_map(|s| match &s.base {
            PlanBase::Image(r) => Some(r.clone()),
            _ => None,
        })
        .collect())
}
