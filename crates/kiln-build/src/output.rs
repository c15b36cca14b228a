//! Outputs of a build: config and manifest blobs, the OCI layout, pushes to
//! every destination, and kaniko's three digest files.

use std::collections::BTreeMap;
use std::io::Write;

use kiln_oci::{Descriptor, Digest, Manifest, MediaType, OciLayoutWriter, Platform, Reference};
use kiln_registry::{
    BlobSource, BlobToPush, Client, ImageToPush, ManifestRef, PushTarget, RepoRef,
};

use crate::blobs::BlobStore;
use crate::error::BuildError;
use crate::events::{BuildEvent, BuildObserver};
use crate::image::{Format, ImageState};
use crate::options::{BuildOptions, ImageFormatChoice};

/// The final image's documents, stored in the blob store.
#[derive(Debug, Clone)]
pub struct Written {
    /// Config descriptor.
    pub config: Descriptor,
    /// The manifest.
    pub manifest: Manifest,
    /// Manifest bytes as digested.
    pub manifest_bytes: Vec<u8>,
    /// Manifest size.
    pub manifest_size: u64,
    /// Manifest digest: the image digest.
    pub digest: Digest,
    /// Manifest media type.
    pub media_type: MediaType,
}

impl Written {
    /// The manifest's descriptor.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            self.manifest_size,
        )
    }
}

/// The format of what is pushed, written to `--tar-path` and named by the
/// digest files: `--image-format`, or the default (see
/// [`ImageState::default_format`]); with the choice's name for messages.
pub fn output_format(image: &ImageState, options: &BuildOptions) -> (Format, &'static str) {
    match options.image_format {
        ImageFormatChoice::FollowBase => (image.default_format(), "the base image's format"),
        ImageFormatChoice::Oci => (Format::Oci, "--image-format oci"),
        ImageFormatChoice::Docker => (Format::Docker, "--image-format docker"),
    }
}

/// Serialises config and manifest (with `--annotation`s) in `format` into the
/// store. `purpose` names what asked for the format (a flag), for errors.
pub fn write_image(
    blobs: &BlobStore,
    image: &ImageState,
    format: Format,
    purpose: &str,
    options: &BuildOptions,
) -> Result<Written, BuildError> {
    // The config's bytes are the same in both formats; only its descriptor's
    // media type differs.
    let (config, config_bytes) = image
        .config
        .to_blob(format.config_media_type())
        .map_err(|e| BuildError::Output(format!("serialising the image config: {e}")))?;
    blobs.insert_bytes(&config_bytes)?;
    let mut manifest = image.manifest(format, config.clone()).map_err(|e| {
        BuildError::Output(format!(
            "{purpose}: the image cannot be written as {}: {e}",
            describe(format)
        ))
    })?;
    if !options.annotations.is_empty() {
        let annotations = manifest.annotations.get_or_insert_with(BTreeMap::new);
        for (k, v) in &options.annotations {
            annotations.insert(k.clone(), v.clone());
        }
    }
    if options.ci_labels.is_some() && format == Format::Oci {
        // The CI keys mirror the final labels; `--annotation` keeps its value.
        let labels = image.config.config.as_ref().and_then(|c| c.labels.as_ref());
        for key in crate::ci_labels::KEYS {
            if let Some(value) = labels.and_then(|l| l.get(key)) {
                let annotations = manifest.annotations.get_or_insert_with(BTreeMap::new);
                annotations
                    .entry(key.to_owned())
                    .or_insert_with(|| value.clone());
            }
        }
    }
    let (descriptor, manifest_bytes) = manifest
        .to_blob()
        .map_err(|e| BuildError::Output(format!("serialising the manifest: {e}")))?;
    blobs.insert_bytes(&manifest_bytes)?;
    Ok(Written {
        config,
        manifest,
        manifest_size: descriptor.size,
        digest: descriptor.digest,
        media_type: descriptor.media_type,
        manifest_bytes,
    })
}

/// A format's name in messages.
fn describe(format: Format) -> &'static str {
    match format {
        Format::Oci => "an OCI image",
        Format::Docker => "a Docker schema 2 image",
    }
}

/// `--oci-layout-path` (`layout`: the image in OCI form, with the
/// attestations `layout_artifacts` of that form) and `--tar-path`.
pub fn write_local_outputs(
    blobs: &BlobStore,
    written: &Written,
    layout: &Written,
    layout_artifacts: &[crate::attest::Artifact],
    options: &BuildOptions,
    platform: &Platform,
) -> Result<(), BuildError> {
    write_oci_layout(blobs, layout, layout_artifacts, options, platform)?;
    write_docker_archive(blobs, written, options)
}

/// `--tar-path`: a docker-archive (`docker save` / `podman load` format)
/// tagged with every destination; layers are stored compressed, as kaniko's.
fn write_docker_archive(
    blobs: &BlobStore,
    written: &Written,
    options: &BuildOptions,
) -> Result<(), BuildError> {
    let Some(path) = &options.tar_path else {
        return Ok(());
    };
    let fail = |e: String| {
        BuildError::Output(format!("writing the image tarball {}: {e}", path.display()))
    };
    let tags: Vec<Reference> = options
        .destinations
        .iter()
        .filter_map(|d| Reference::parse(d).ok())
        .collect();
    let config_bytes =
        fs_err::read(blobs.path(&written.config.digest)).map_err(|e| fail(e.to_string()))?;
    let config =
        kiln_oci::ImageConfig::from_slice(&config_bytes).map_err(|e| fail(e.to_string()))?;
    let by_diff_id: BTreeMap<Digest, Descriptor> = config
        .rootfs
        .diff_ids
        .iter()
        .cloned()
        .zip(written.manifest.layers.iter().cloned())
        .collect();
    let temp = path.with_extension("partial");
    let file = fs_err::File::create(&temp).map_err(|e| fail(e.to_string()))?;
    let mut writer = kiln_oci::DockerArchiveWriter::new(
        std::io::BufWriter::new(file),
        kiln_oci::ArchiveLayout::Legacy,
    );
    writer
        .add_image(&config_bytes, &tags, |diff_id| {
            let layer = by_diff_id
                .get(diff_id)
                .ok_or_else(|| std::io::Error::other(format!("no layer for diff ID {diff_id}")))?;
            Ok(kiln_oci::ArchiveLayerBlob {
                reader: std::fs::File::open(blobs.path(&layer.digest))?,
                size: layer.size,
                digest: layer.digest.clone(),
            })
        })
        .map_err(|e| fail(e.to_string()))?;
    let mut out = writer.finish().map_err(|e| fail(e.to_string()))?;
    out.flush().map_err(|e| fail(e.to_string()))?;
    drop(out);
    fs_err::rename(&temp, path).map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// `--oci-layout-path`: the image (`written`, in OCI form) added to the
/// layout (created if needed), named after the first destination's tag (or
/// `latest`).
fn write_oci_layout(
    blobs: &BlobStore,
    written: &Written,
    artifacts: &[crate::attest::Artifact],
    options: &BuildOptions,
    platform: &Platform,
) -> Result<(), BuildError> {
    let Some(path) = &options.oci_layout_path else {
        return Ok(());
    };
    let fail = |e: kiln_oci::LayoutError| {
        BuildError::Output(format!("writing the OCI layout {}: {e}", path.display()))
    };
    let mut layout = OciLayoutWriter::create(path).map_err(fail)?;
    layout
        .write_blob_from_file(&blobs.path(&written.config.digest))
        .map_err(fail)?;
    for layer in &written.manifest.layers {
        if !layout.blob_path(&layer.digest).is_file() {
            layout
                .write_blob_from_file(&blobs.path(&layer.digest))
                .map_err(fail)?;
        }
    }
    let tag = options
        .destinations
        .first()
        .and_then(|d| Reference::parse(d).ok())
        .and_then(|r| r.tag().map(str::to_string))
        .unwrap_or_else(|| "latest".into());
    layout
        .add_image(&written.manifest, Some(&tag), Some(platform.clone()))
        .map_err(fail)?;
    crate::attest::publish::write_to_layout(&mut layout, artifacts).map_err(fail)?;
    layout.finish().map_err(fail)?;
    Ok(())
}

/// Every `--destination` with the tag (or digest) it names; `latest` by default.
pub(crate) fn destinations(
    options: &BuildOptions,
) -> Result<Vec<(Reference, ManifestRef)>, BuildError> {
    options
        .destinations
        .iter()
        .map(|d| {
            let r = Reference::parse(d)
                .map_err(|e| BuildError::Options(format!("--destination {d:?}: {e}")))?;
            let tag = match (r.tag(), r.digest()) {
                (Some(t), _) => ManifestRef::Tag(t.to_string()),
                (None, Some(d)) => ManifestRef::Digest(d.clone()),
                (None, None) => ManifestRef::Tag("latest".into()),
            };
            Ok((r, tag))
        })
        .collect()
}

/// The push request of an image written to the store: config, layers (a base
/// layer not fetched is mounted from its repository) and manifest.
pub(crate) fn image_to_push(
    blobs: &BlobStore,
    image: &ImageState,
    written: &Written,
) -> ImageToPush {
    let mut to_push = vec![BlobToPush {
        descriptor: written.config.clone(),
        source: BlobSource::File(blobs.path(&written.config.digest)),
        mount_from: None,
    }];
    for layer in &written.manifest.layers {
        to_push.push(BlobToPush {
            descriptor: layer.clone(),
            source: BlobSource::File(blobs.path(&layer.digest)),
            mount_from: image.origins.get(&layer.digest).cloned(),
        });
    }
    ImageToPush {
        manifest: written.manifest_bytes.clone().into(),
        media_type: written.media_type.clone(),
        blobs: to_push,
    }
}

/// Pushes to every destination, with `artifacts` (attestations) before any
/// tag; returns the references pushed, each `name:tag`.
pub async fn push(
    client: &Client,
    blobs: &BlobStore,
    image: &ImageState,
    written: &Written,
    artifacts: &[crate::attest::Artifact],
    options: &BuildOptions,
    observer: &dyn BuildObserver,
) -> Result<Vec<Reference>, BuildError> {
    let (references, targets): (Vec<Reference>, Vec<PushTarget>) = destinations(options)?
        .into_iter()
        .map(|(r, reference)| {
            let repo = RepoRef::new(r.registry(), r.repository());
            (r, PushTarget { repo, reference })
        })
        .unzip();
    let request = image_to_push(blobs, image, written);
    let pushed = crate::pull::progress::reporting(client, observer, |client| async move {
        if artifacts.is_empty() {
            client.push_image(&request, &targets).await
        } else {
            crate::attest::publish::push_image_with_artifacts(
                &client, &request, &targets, artifacts,
            )
            .await
        }
    })
    .await;
    let outcome = match pushed {
        Ok(outcome) => outcome,
        Err(e) if ignored_immutable_tag(options, &e, observer) => return Ok(Vec::new()),
        Err(e) => return Err(BuildError::Registry(format!("pushing the image: {e}"))),
    };
    for r in &references {
        observer.event(&BuildEvent::Pushed {
            destination: r.to_string(),
            digest: outcome.digest.to_string(),
        });
    }
    Ok(references)
}

/// `--push-ignore-immutable-tag-errors`: when `e` is a registry refusing to move an
/// immutable tag and the flag is on, reports a warning and says `true` (the caller
/// skips that push and goes on, the build succeeds); else `false` (`e` is an error).
/// Shared by the single-image and the index outputs.
pub(crate) fn ignored_immutable_tag(
    options: &BuildOptions,
    e: &kiln_registry::Error,
    observer: &dyn BuildObserver,
) -> bool {
    if !(options.push_ignore_immutable_tag_errors && is_immutable_tag_error(e)) {
        return false;
    }
    observer.event(&BuildEvent::Warning {
        message: format!("the tag exists and is immutable; not pushed: {e}"),
    });
    true
}

/// A registry refusing to overwrite a tag (distribution's `TAG_INVALID`, ECR's
/// `ImageTagAlreadyExistsException`, Harbor/GAR/Artifactory "immutable" messages).
fn is_immutable_tag_error(e: &kiln_registry::Error) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    e.codes().contains(&"TAG_INVALID")
        || text.contains("imagetagalreadyexistsexception")
        || text.contains("immutable")
}

/// `--digest-file`, `--image-name-with-digest-file`, `--image-name-tag-with-digest-file`
/// and (after a push only) `--dotenv-report`: always the digest of the image in the `--image-format` format (the one
/// pushed), also with `--no-push`; never the OCI layout's own manifest digest.
pub fn write_digest_files(
    digest: &Digest,
    pushed: &[Reference],
    options: &BuildOptions,
) -> Result<(), BuildError> {
    if let Some(path) = &options.digest_file {
        write_file(path, digest.to_string().as_bytes())?;
    }
    let destinations: Vec<Reference> = if pushed.is_empty() {
        options
            .destinations
            .iter()
            .filter_map(|d| Reference::parse(d).ok())
            .collect()
    } else {
        pushed.to_vec()
    };
    if let Some(path) = &options.image_name_with_digest_file {
        let mut text = String::new();
        for r in &destinations {
            text.push_str(&format!("{}@{digest}\n", r.name()));
        }
        write_file(path, text.as_bytes())?;
    }
    if let Some(path) = &options.image_name_tag_with_digest_file {
        let mut text = String::new();
        for r in &destinations {
            text.push_str(&format!(
                "{}:{}@{digest}\n",
                r.name(),
                r.tag().unwrap_or("latest")
            ));
        }
        write_file(path, text.as_bytes())?;
    }
    if let Some(path) = &options.dotenv_report {
        match dotenv_report(digest, pushed) {
            Some(text) => write_file(path, text.as_bytes())?,
            None => tracing::warn!(
                path = %path.display(),
                "--dotenv-report not written: nothing was pushed"
            ),
        }
    }
    Ok(())
}

/// `--dotenv-report`'s text for GitLab's `artifacts: reports: dotenv`: `IMAGE_DIGEST`,
/// `IMAGE_REF` (the first destination as `name@digest`) and `IMAGE_TAGS` (the pushed
/// tags, comma-separated, first seen first). `None` when nothing was pushed
/// (`--no-push`): a later job must not deploy an image no registry holds.
pub fn dotenv_report(digest: &Digest, pushed: &[Reference]) -> Option<String> {
    let first = pushed.first()?;
    let mut tags: Vec<&str> = Vec::new();
    for tag in pushed.iter().filter_map(|r| r.tag()) {
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    Some(format!(
        "IMAGE_DIGEST={digest}\nIMAGE_REF={}@{digest}\nIMAGE_TAGS={}\n",
        first.name(),
        tags.join(",")
    ))
}

fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), BuildError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs_err::create_dir_all(parent)
            .map_err(|e| BuildError::io("creating the directory of a digest file", parent, e))?;
    }
    let mut file =
        fs_err::File::create(path).map_err(|e| BuildError::io("writing a digest file", path, e))?;
    file.write_all(bytes)
        .map_err(|e| BuildError::io("writing a digest file", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_report_names_the_first_destination_and_each_tag_once() {
        let digest: Digest = format!("sha256:{}", "ab".repeat(32))
            .parse()
            .expect("digest");
        let pushed: Vec<Reference> = [
            "reg:5000/g/app:v1",
            "reg:5000/g/app:latest",
            "other.io/app:v1",
        ]
        .iter()
        .map(|r| Reference::parse(r).expect("reference"))
        .collect();
        assert_eq!(
            dotenv_report(&digest, &pushed).expect("report"),
            format!(
                "IMAGE_DIGEST={digest}\nIMAGE_REF=reg:5000/g/app@{digest}\nIMAGE_TAGS=v1,latest\n"
            )
        );
        assert_eq!(
            dotenv_report(&digest, &[]),
            None,
            "nothing pushed, no report"
        );
    }
}
