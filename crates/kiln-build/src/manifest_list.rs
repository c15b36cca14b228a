//! `kiln manifest create`: one image index from images pushed by separate
//! per-architecture jobs, and `kiln manifest inspect`.
//!
//! Each source's manifest and config are read through the same registry client as a build
//! (credentials, TLS, insecure and mirror options from [`BuildOptions`]); its platform comes
//! from its config (`os`, `architecture`, `variant`). The index is an OCI image index, or a
//! Docker manifest list when every source manifest is Docker's, written with
//! `kiln_oci::canonical_json`. For every destination, each source's blobs and manifest are
//! made present in the destination repository first (a cross-repository mount on the same
//! registry, a copy otherwise); the index is pushed only after every manifest it names has
//! been checked to exist there. With `--oci-layout-path` the index, manifests and blobs
//! are also written to an OCI layout.

use bytes::Bytes;
use kiln_oci::{Descriptor, Digest, ImageConfig, Index, Manifest, MediaType, Platform, Reference};
use kiln_registry::{BlobSource, BlobToPush, CONFIG_LIMIT, Client, ManifestRef, RepoRef};

use crate::options::BuildOptions;

/// Why an index could not be made or pushed.
#[derive(Debug, thiserror::Error)]
pub enum ManifestListError {
    /// A reference could not be parsed.
    #[error("{what} {reference:?}: {reason}")]
    Reference {
        /// "source" or "destination".
        what: &'static str,
        /// The reference as given.
        reference: String,
        /// The parse error.
        reason: String,
    },
    /// A source cannot be part of an index.
    #[error("source {reference}: {reason}")]
    Source {
        /// The source reference.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A registry operation failed (the message names registry, repository and object).
    #[error("{0}")]
    Registry(String),
    /// The registry refused the index itself (kept whole, for its error codes).
    #[error("{0}")]
    Push(kiln_registry::Error),
    /// Writing the OCI layout failed (the message names it).
    #[error("{0}")]
    Layout(String),
    /// Nothing to do.
    #[error("{0}")]
    Usage(String),
}

/// One source image as read from its registry.
#[derive(Debug, Clone)]
struct SourceImage {
    reference: Reference,
    repo: RepoRef,
    manifest_bytes: Bytes,
    media_type: MediaType,
    digest: Digest,
    manifest: Manifest,
    platform: Platform,
}

/// The index that was pushed.
#[derive(Debug, Clone)]
pub struct ManifestListOutcome {
    /// Its digest (what `--digest-file` names).
    pub digest: Digest,
    /// OCI index or Docker manifest list.
    pub media_type: MediaType,
    /// The index bytes exactly as pushed.
    pub bytes: Bytes,
    /// The platforms it references, in source order (`linux/arm64/v8`).
    pub platforms: Vec<String>,
}

fn registry_err(e: impl std::fmt::Display) -> ManifestListError {
    ManifestListError::Registry(e.to_string())
}

fn parse(what: &'static str, reference: &str) -> Result<Reference, ManifestListError> {
    Reference::parse(reference).map_err(|e| ManifestListError::Reference {
        what,
        reference: reference.to_owned(),
        reason: e.to_string(),
    })
}

fn platform_text(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

async fn read_source(client: &Client, text: &str) -> Result<SourceImage, ManifestListError> {
    let reference = parse("source", text)?;
    let source_err = |reason: String| ManifestListError::Source {
        reference: text.to_owned(),
        reason,
    };
    let (repo, doc) = client
        .get_manifest(&RepoRef::from(&reference), &ManifestRef::from(&reference))
        .await
        .map_err(registry_err)?;
    if doc.media_type.is_index() {
        return Err(source_err(
            "it is already an index or manifest list; give single-platform images".into(),
        ));
    }
    let manifest: Manifest = serde_json::from_slice(&doc.bytes)
        .map_err(|e| source_err(format!("its manifest is not valid: {e}")))?;
    let config_bytes = client
        .fetch_blob_bytes(&repo, &manifest.config, CONFIG_LIMIT)
        .await
        .map_err(registry_err)?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| source_err(format!("its config is not valid: {e}")))?;
    if config.os.is_empty() || config.architecture.is_empty() {
        return Err(source_err(
            "its config names no os or architecture, so its platform is unknown".into(),
        ));
    }
    let platform = Platform {
        architecture: config.architecture.clone(),
        os: config.os.clone(),
        variant: config.variant.clone(),
        ..Platform::default()
    };
    Ok(SourceImage {
        reference,
        repo,
        manifest_bytes: doc.bytes,
        media_type: doc.media_type,
        digest: doc.digest,
        manifest,
        platform,
    })
}

/// The index over `sources`, canonical JSON; Docker's manifest list when every source is
/// a Docker manifest. Two sources of one platform are an error naming both.
fn make_index(sources: &[SourceImage]) -> Result<(MediaType, Bytes), ManifestListError> {
    for (i, a) in sources.iter().enumerate() {
        if let Some(b) = sources[..i].iter().find(|b| b.platform == a.platform) {
            return Err(ManifestListError::Source {
                reference: a.reference.to_string(),
                reason: format!(
                    "its platform {} is also that of {}; an index holds one image per platform",
                    platform_text(&a.platform),
                    b.reference
                ),
            });
        }
    }
    let entries: Vec<Descriptor> = sources
        .iter()
        .map(|s| {
            Descriptor::new(
                s.media_type.clone(),
                s.digest.clone(),
                s.manifest_bytes.len() as u64,
            )
        })
        .collect();
    let platforms: Vec<Platform> = sources.iter().map(|s| s.platform.clone()).collect();
    index_of(&entries, &platforms).map_err(ManifestListError::Usage)
}

/// The index referencing `manifests` (each with its platform, same order), canonical
/// JSON: Docker's manifest list when every manifest is a Docker manifest, else an OCI
/// image index. Used by `kiln manifest create` and by a build for several platforms.
pub(crate) fn index_of(
    manifests: &[Descriptor],
    platforms: &[Platform],
) -> Result<(MediaType, Bytes), String> {
    let descriptors: Vec<Descriptor> = manifests
        .iter()
        .zip(platforms)
        .map(|(m, p)| {
            let mut d = Descriptor::new(m.media_type.clone(), m.digest.clone(), m.size);
            d.platform = Some(p.clone());
            d
        })
        .collect();
    let docker = manifests
        .iter()
        .all(|m| m.media_type == MediaType::DockerManifest);
    let index = if docker {
        Index::new_docker(descriptors)
    } else {
        Index::new_oci(descriptors)
    };
    let media_type = index.media_type.clone().unwrap_or(MediaType::OciIndex);
    let bytes =
        kiln_oci::canonical_json::to_vec(&index).map_err(|e| format!("writing the index: {e}"))?;
    Ok((media_type, Bytes::from(bytes)))
}

/// Pushes an index to `repo` as `reference` after checking that every manifest it
/// names (`manifests`: digest and what it is, for the message) is in that repository.
pub(crate) async fn push_index(
    client: &Client,
    repo: &RepoRef,
    reference: &ManifestRef,
    manifests: &[(Digest, String)],
    bytes: &Bytes,
    media_type: &MediaType,
) -> Result<(), ManifestListError> {
    for (digest, what) in manifests {
        let present = client
            .head_manifest(repo, &ManifestRef::Digest(digest.clone()))
            .await
            .map_err(registry_err)?;
        if present.is_none() {
            return Err(ManifestListError::Registry(format!(
                "{repo}: manifest {digest} of {what} is missing; not pushing the index"
            )));
        }
    }
    client
        .push_manifest(repo, reference, bytes, media_type)
        .await
        .map(|_| ())
        .map_err(ManifestListError::Push)
}

/// Makes `source`'s blobs and manifest present in `dest` (its repository).
async fn copy_into(
    client: &Client,
    source: &SourceImage,
    dest: &RepoRef,
    scratch: &std::path::Path,
) -> Result<(), ManifestListError> {
    if source.repo == *dest {
        return Ok(());
    }
    let blobs = std::iter::once(&source.manifest.config).chain(&source.manifest.layers);
    for blob in blobs {
        if client
            .blob_exists(dest, &blob.digest)
            .await
            .map_err(registry_err)?
        {
            continue;
        }
        let same_registry = source.repo.registry == dest.registry;
        if same_registry
            && client
                .mount_blob(dest, &blob.digest, &source.repo)
                .await
                .map_err(registry_err)?
        {
            continue;
        }
        let file = scratch.join(blob.digest.hex());
        client
            .fetch_blob(&source.repo, blob, &file)
            .await
            .map_err(registry_err)?;
        let pushed = client
            .push_blob(
                dest,
                &BlobToPush {
                    descriptor: blob.clone(),
                    source: BlobSource::File(file.clone()),
                    mount_from: None,
                },
            )
            .await
            .map_err(registry_err);
        let _ = std::fs::remove_file(&file);
        pushed?;
    }
    client
        .push_manifest(
            dest,
            &ManifestRef::Digest(source.digest.clone()),
            &source.manifest_bytes,
            &source.media_type,
        )
        .await
        .map_err(registry_err)?;
    Ok(())
}

/// Writes the index, the source manifests (as served) and their blobs to the OCI layout at
/// `path`, the index listed in `index.json` as `ref_name`.
async fn write_layout(
    client: &Client,
    path: &std::path::Path,
    images: &[SourceImage],
    index: &Bytes,
    media_type: &MediaType,
    ref_name: &str,
) -> Result<(), ManifestListError> {
    let fail = |e: kiln_oci::LayoutError| {
        ManifestListError::Layout(format!("writing the OCI layout {}: {e}", path.display()))
    };
    let mut layout = kiln_oci::OciLayoutWriter::create(path).map_err(fail)?;
    for image in images {
        for blob in std::iter::once(&image.manifest.config).chain(&image.manifest.layers) {
            let dest = layout.blob_path(&blob.digest);
            if !dest.is_file() {
                client
                    .fetch_blob(&image.repo, blob, &dest)
                    .await
                    .map_err(registry_err)?;
            }
        }
        let descriptor = Descriptor::new(
            image.media_type.clone(),
            image.digest.clone(),
            image.manifest_bytes.len() as u64,
        );
        layout
            .write_blob_expecting(&image.manifest_bytes[..], &descriptor)
            .map_err(fail)?;
    }
    let descriptor = Descriptor::new(
        media_type.clone(),
        Digest::sha256_of(index),
        index.len() as u64,
    );
    layout
        .write_blob_expecting(&index[..], &descriptor)
        .map_err(fail)?;
    layout
        .add_to_index(descriptor, Some(ref_name))
        .map_err(fail)?;
    layout.finish().map_err(fail)?;
    Ok(())
}

/// Reads every source, makes the index, and pushes it to every destination after the
/// manifests it references are present there; with `options.oci_layout_path`, also
/// writes it (with every manifest and blob) to that OCI layout, named by the first
/// destination's tag (`latest` without one). `options` supplies the registry flags and
/// credentials exactly as for a build.
pub async fn create(
    options: &BuildOptions,
    sources: &[String],
    destinations: &[String],
) -> Result<ManifestListOutcome, ManifestListError> {
    if sources.is_empty() {
        return Err(ManifestListError::Usage(
            "no source images: name the per-platform images to combine".into(),
        ));
    }
    if destinations.is_empty() && options.oci_layout_path.is_none() {
        return Err(ManifestListError::Usage(
            "no destination: give --destination or --oci-layout-path".into(),
        ));
    }
    let destinations: Vec<Reference> = destinations
        .iter()
        .map(|d| parse("destination", d))
        .collect::<Result<_, _>>()?;
    let client = crate::registry_glue::client(options).map_err(registry_err)?;
    let mut images = Vec::new();
    for s in sources {
        images.push(read_source(&client, s).await?);
    }
    let (media_type, bytes) = make_index(&images)?;
    let digest = Digest::sha256_of(&bytes);
    let scratch = tempfile::Builder::new()
        .prefix("kiln-manifest-")
        .tempdir_in(&options.kaniko_dir)
        .or_else(|_| tempfile::tempdir())
        .map_err(|e| ManifestListError::Usage(format!("creating a scratch dir: {e}")))?;
    for dest in &destinations {
        let repo = RepoRef::from(dest);
        for image in &images {
            copy_into(&client, image, &repo, scratch.path()).await?;
        }
        let manifests: Vec<(Digest, String)> = images
            .iter()
            .map(|i| (i.digest.clone(), i.reference.to_string()))
            .collect();
        push_index(
            &client,
            &repo,
            &ManifestRef::from(dest),
            &manifests,
            &bytes,
            &media_type,
        )
        .await?;
        tracing::info!(destination = %dest, %digest, "pushed the index");
    }
    if let Some(path) = &options.oci_layout_path {
        let ref_name = destinations
            .first()
            .and_then(|d| d.tag().map(str::to_owned))
            .unwrap_or_else(|| "latest".to_owned());
        write_layout(&client, path, &images, &bytes, &media_type, &ref_name).await?;
        tracing::info!(layout = %path.display(), %digest, "wrote the index");
    }
    Ok(ManifestListOutcome {
        digest,
        media_type,
        bytes,
        platforms: images.iter().map(|i| platform_text(&i.platform)).collect(),
    })
}

/// The manifest or index `reference` names, exactly as the registry serves it.
pub async fn inspect(
    options: &BuildOptions,
    reference: &str,
) -> Result<(MediaType, Digest, Bytes), ManifestListError> {
    let r = parse("reference", reference)?;
    let client = crate::registry_glue::client(options).map_err(registry_err)?;
    let (_, doc) = client
        .get_manifest(&RepoRef::from(&r), &ManifestRef::from(&r))
        .await
        .map_err(registry_err)?;
    Ok((doc.media_type, doc.digest, doc.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(media_type: MediaType, n: u8) -> Descriptor {
        Descriptor::new(media_type, Digest::sha256_of(&[n]), 100 + u64::from(n))
    }

    #[test]
    fn the_index_is_dockers_only_when_every_manifest_is() {
        let platforms: Vec<Platform> = ["linux/amd64", "linux/arm64"]
            .iter()
            .map(|p| p.parse().expect("platform"))
            .collect();
        let docker = [
            manifest(MediaType::DockerManifest, 1),
            manifest(MediaType::DockerManifest, 2),
        ];
        let (media_type, bytes) = index_of(&docker, &platforms).expect("index");
        assert_eq!(media_type, MediaType::DockerManifestList);
        let index: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(index["mediaType"], media_type.as_str());
        assert_eq!(index["manifests"][1]["platform"]["architecture"], "arm64");
        assert_eq!(
            index["manifests"][0]["digest"],
            docker[0].digest.to_string().as_str()
        );
        let mixed = [
            manifest(MediaType::DockerManifest, 1),
            manifest(MediaType::OciManifest, 2),
        ];
        let (media_type, _) = index_of(&mixed, &platforms).expect("index");
        assert_eq!(media_type, MediaType::OciIndex);
    }
}
