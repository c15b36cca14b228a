//! kaniko's warmer (`kiln warm`, `/kaniko/warmer`): fills `--cache-dir` with
//! base images so that builds read them from disk instead of the registry.
//!
//! The cache dir is an OCI image layout; each image is listed under its full
//! reference (`docker.io/library/alpine:3.20`), with the manifest bytes and
//! blobs exactly as the registry served them, so the manifest digest (which
//! starts every step key of the layer cache) is the same whether a build
//! reads the base from the cache dir or from the registry.
//!
//! With several target platforms (`--custom-platform linux/amd64,linux/arm64`)
//! each image is warmed once per platform, and its name lists an OCI index
//! (written by kiln) over the manifests of every platform warmed so far; a build
//! reading the cache dir picks its platform's manifest from it. An image warmed
//! for one platform is listed as its manifest, as before. Warming another
//! platform later adds to the index; warming one again replaces its entry.

use std::path::{Path, PathBuf};

use kiln_dockerfile::model::{Base as PlanBase, PlanOptions};
use kiln_oci::{Descriptor, Index, OciLayout, OciLayoutWriter, Platform, Reference};
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
    /// The platform it was warmed for.
    pub platform: Platform,
    /// Manifest digest.
    pub digest: String,
    /// `true` when it was already in the cache dir and left alone.
    pub already_cached: bool,
}

/// Warms `options.cache.dir` with the images of `request`, for every target platform
/// (`--custom-platform a,b`: each image once per platform; a Dockerfile's stage pinned
/// with `FROM --platform=` for the platform it names).
pub async fn warm(
    options: &BuildOptions,
    request: &WarmRequest,
) -> Result<Vec<Warmed>, BuildError> {
    let dir = options
        .cache
        .dir
        .clone()
        .ok_or_else(|| BuildError::Options("kiln warm needs --cache-dir".into()))?;
    let platforms = crate::platforms::target_platforms(options)?;
    let mut wanted: Vec<(String, Platform)> = Vec::new();
    for given in &request.images {
        wanted.extend(platforms.iter().map(|p| (given.clone(), p.clone())));
    }
    if let Some(dockerfile) = &request.dockerfile {
        for platform in &platforms {
            wanted.extend(bases_of(dockerfile, options, platform)?);
        }
    }
    if wanted.is_empty() {
        return Err(BuildError::Options(
            "nothing to warm: give --image or --dockerfile".into(),
        ));
    }
    let images = by_reference(wanted)?;
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
    for (reference, platforms) in images {
        let name = reference.to_string();
        let fail = |e: String| BuildError::Registry(format!("warming {name}: {e}"));
        // What the cache dir lists under this name, one manifest per platform.
        let mut entries = cached_entries(&dir, &name);
        let mut changed = false;
        for platform in &platforms {
            if !request.force
                && let Some(digest) = cached_digest(&dir, &name, platform)
            {
                tracing::info!(image = %name, %platform, %digest, "already in the cache dir");
                warmed.push(Warmed {
                    reference: name.clone(),
                    platform: platform.clone(),
                    digest,
                    already_cached: true,
                });
                continue;
            }
            let descriptor = fetch(&client, &dir, &reference, platform)
                .await
                .map_err(|e| fail(format!("{platform}: {e}")))?;
            let fetched = descriptor.platform.clone().unwrap_or(platform.clone());
            entries.retain(|d| d.platform.as_ref().is_some_and(|p| !fetched.matches(p)));
            entries.push(descriptor.clone());
            changed = true;
            tracing::info!(image = %name, %platform, digest = %descriptor.digest, "cached");
            warmed.push(Warmed {
                reference: name.clone(),
                platform: platform.clone(),
                digest: descriptor.digest.to_string(),
                already_cached: false,
            });
        }
        if changed {
            list(&dir, &name, entries).map_err(|e| fail(e.to_string()))?;
        }
    }
    Ok(warmed)
}

/// `wanted` grouped by normalised reference, in first-seen order, each with its
/// platforms once.
fn by_reference(
    wanted: Vec<(String, Platform)>,
) -> Result<Vec<(Reference, Vec<Platform>)>, BuildError> {
    let mut images: Vec<(Reference, Vec<Platform>)> = Vec::new();
    for (given, platform) in wanted {
        let reference = Reference::parse(&given)
            .map_err(|e| BuildError::Options(format!("--image {given:?}: {e}")))?;
        match images.iter_mut().find(|(r, _)| *r == reference) {
            Some((_, platforms)) if platforms.contains(&platform) => {}
            Some((_, platforms)) => platforms.push(platform),
            None => images.push((reference, vec![platform])),
        }
    }
    Ok(images)
}

/// Pulls `reference`'s manifest for `platform` with its config and layers into the
/// layout `dir` (blobs only; [`list`] names it); returns the manifest's descriptor with
/// the platform its config declares.
async fn fetch(
    client: &kiln_registry::Client,
    dir: &Path,
    reference: &Reference,
    platform: &Platform,
) -> Result<Descriptor, String> {
    let repo = RepoRef::new(reference.registry(), reference.repository());
    let wanted = match reference.digest() {
        Some(d) => ManifestRef::Digest(d.clone()),
        None => ManifestRef::Tag(reference.tag().unwrap_or("latest").to_string()),
    };
    let pulled = client
        .pull_manifest(&repo, &wanted, platform)
        .await
        .map_err(|e| e.to_string())?;
    let writer = OciLayoutWriter::create(dir).map_err(|e| e.to_string())?;
    for layer in &pulled.manifest.layers {
        let dest = writer.blob_path(&layer.digest);
        if !dest.is_file() {
            client
                .fetch_blob(&pulled.source, layer, &dest)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    writer
        .write_bytes(&pulled.config)
        .map_err(|e| e.to_string())?;
    writer
        .write_bytes(&pulled.manifest_bytes)
        .map_err(|e| e.to_string())?;
    let config = kiln_oci::ImageConfig::from_slice(&pulled.config)
        .map_err(|e| format!("invalid config: {e}"))?;
    let mut descriptor = pulled.descriptor.clone();
    descriptor.platform = Some(config.platform());
    Ok(descriptor)
}

/// Names `entries` (manifests already in the layout `dir`) `name` in its
/// `index.json`: the manifest itself when there is one, else an OCI index over them
/// (which a build reading the cache dir picks its platform from).
fn list(dir: &Path, name: &str, entries: Vec<Descriptor>) -> Result<(), kiln_oci::LayoutError> {
    let mut writer = OciLayoutWriter::create(dir)?;
    let listed = match <[Descriptor; 1]>::try_from(entries) {
        Ok([only]) => only,
        Err(entries) => writer.write_index(&Index::new_oci(entries))?,
    };
    writer.add_to_index(listed, Some(name))?;
    writer.finish()?;
    Ok(())
}

/// The manifests the layout `dir` lists under `name` (the manifest, or the entries of
/// the index warmed for several platforms), each with its platform (read from its
/// config when the entry does not say); none when absent or unreadable (warming then
/// lists only what it fetches).
fn cached_entries(dir: &Path, name: &str) -> Vec<Descriptor> {
    let Ok(layout) = OciLayout::open(dir) else {
        return Vec::new();
    };
    let Ok(entry) = layout.entry(Some(name)) else {
        return Vec::new();
    };
    let listed = match entry.media_type.is_index() {
        true => match layout.read_index(entry) {
            Ok(index) => index.manifests,
            Err(_) => return Vec::new(),
        },
        false => vec![entry.clone()],
    };
    listed
        .into_iter()
        .filter(|d| d.media_type.is_manifest())
        .filter_map(|d| {
            let platform = match d.platform.clone() {
                Some(p) => p,
                None => {
                    let manifest = layout.read_manifest(&d).ok()?;
                    layout.read_config(&manifest.config).ok()?.0.platform()
                }
            };
            let mut clean = Descriptor::new(d.media_type, d.digest, d.size);
            clean.platform = Some(platform);
            Some(clean)
        })
        .collect()
}

/// The digest of `name` in the layout when it is there for `platform`.
fn cached_digest(dir: &Path, name: &str, platform: &Platform) -> Option<String> {
    let layout = OciLayout::open(dir).ok()?;
    let image = layout.image(Some(name), Some(platform)).ok()?;
    platform
        .matches(&image.config.platform())
        .then(|| image.descriptor.digest.to_string())
}

/// The registry images the Dockerfile's needed stages are built on, each with the
/// platform its stage is built for when the target is `platform`.
fn bases_of(
    path: &Path,
    options: &BuildOptions,
    platform: &Platform,
) -> Result<Vec<(String, Platform)>, BuildError> {
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
            target_platform: crate::platforms::dockerfile_platform(platform),
            build_platform: kiln_dockerfile::Platform::host(),
        })
        .map_err(|d| BuildError::Dockerfile(d.to_string()))?;
    Ok(plan
        .stages
        .iter()
        .filter_map(|s| match &s.base {
            PlanBase::Image(r) => Some((r.clone(), crate::platforms::stage_platform(platform, s))),
            _ => None,
        })
        .collect())
}
