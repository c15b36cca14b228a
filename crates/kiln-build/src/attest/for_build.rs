//! The engine's side of attestations: gathering [`BuildFacts`] during a
//! build and making the artifacts for the manifests it wrote.

use std::collections::BTreeMap;

use kiln_oci::{Digest, Platform};

use super::{Artifact, Attestor, BaseImage, BuildFacts};
use crate::blobs::BlobStore;
use crate::error::BuildError;
use crate::image::ImageState;
use crate::options::BuildOptions;

/// What the engine records while it builds.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    /// When the build started (seconds since the epoch).
    pub started_secs: i64,
    /// Base images by digest, each once, first use first.
    pub bases: Vec<BaseImage>,
    /// The Dockerfile's name and digest.
    pub dockerfile: Option<(String, Digest)>,
}

impl Recorder {
    pub fn start() -> Recorder {
        Recorder {
            started_secs: crate::time::now_secs(),
            bases: Vec::new(),
            dockerfile: None,
        }
    }

    pub fn base(&mut self, reference: &str, digest: &Digest) {
        if !self
            .bases
            .iter()
            .any(|b| b.reference == reference && b.digest == *digest)
        {
            self.bases.push(BaseImage {
                reference: reference.to_string(),
                digest: digest.clone(),
            });
        }
    }
}

/// The attestor for the final `image` (its layer blobs must be in `blobs`),
/// or `None` when no attestation is asked for.
pub(crate) fn attestor(
    recorder: &Recorder,
    options: &BuildOptions,
    platform: &Platform,
    image: &ImageState,
    blobs: &BlobStore,
    created: &str,
    reproducible_epoch: Option<i64>,
) -> Result<Option<Attestor>, BuildError> {
    if !options.attest.any() {
        return Ok(None);
    }
    if options.no_push && options.oci_layout_path.is_none() {
        tracing::warn!(
            "--sbom/--provenance: nothing is pushed and there is no --oci-layout-path; no attestation is made"
        );
        return Ok(None);
    }
    let (dockerfile, dockerfile_digest) = recorder
        .dockerfile
        .clone()
        .ok_or_else(|| BuildError::Output("internal: the Dockerfile was not recorded".into()))?;
    let facts = BuildFacts {
        image_name: options
            .destinations
            .first()
            .cloned()
            .unwrap_or_else(|| "image".into()),
        destinations: options.destinations.clone(),
        dockerfile,
        dockerfile_digest,
        target: options.target.clone(),
        platform: platform.clone(),
        build_args: options
            .build_args
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        bases: recorder.bases.clone(),
        started: crate::time::rfc3339(reproducible_epoch.unwrap_or(recorder.started_secs)),
        created: created.to_string(),
        reproducible_epoch,
        attest: options.attest.clone(),
    };
    let paths: Vec<_> = image.layers.iter().map(|l| blobs.path(&l.digest)).collect();
    let layers: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
    Attestor::new(facts, &layers)
        .map(Some)
        .map_err(|e| BuildError::Output(format!("making the SBOM (--sbom): {e}")))
}

/// The artifacts for the manifest `subject`.
pub(crate) fn artifacts(
    attestor: Option<&Attestor>,
    subject: &kiln_oci::Descriptor,
) -> Result<Vec<Artifact>, BuildError> {
    let Some(attestor) = attestor else {
        return Ok(Vec::new());
    };
    let finished = crate::time::rfc3339(
        attestor
            .facts()
            .reproducible_epoch
            .unwrap_or_else(crate::time::now_secs),
    );
    attestor
        .artifacts_for(subject, &finished)
        .map_err(|e| BuildError::Output(format!("serialising the attestations: {e}")))
}
