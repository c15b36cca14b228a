//! The engine's side of attestations: gathering [`BuildFacts`] during a
//! build and making the artifacts for the manifests it wrote.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_oci::{Digest, Platform};

use super::image_files::Files;

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

/// What the outputs need to attest one platform's final image.
pub(crate) struct Attesting<'a> {
    /// What the build recorded for this platform.
    pub recorder: Recorder,
    /// The target stage's root filesystem, when it has one of its own.
    pub rootfs: Option<&'a Path>,
    /// In-place isolation (the root filesystem is `/`, not the image's alone).
    pub in_place: bool,
    /// The image's creation time (RFC 3339).
    pub created: &'a str,
    /// `SOURCE_DATE_EPOCH` / `--reproducible`.
    pub reproducible_epoch: Option<i64>,
}

impl Attesting<'_> {
    /// Whether attestations are made at all (asked for, and something receives them).
    fn wanted(options: &BuildOptions) -> bool {
        options.attest.any() && !(options.no_push && options.oci_layout_path.is_none())
    }

    /// The root filesystem the SBOM reads the package databases from, when it holds
    /// exactly what the layers do: chroot isolation, no layer cache (whose hits may
    /// skip laying files out), no `--ignore-path` over a database. `None`: the SBOM
    /// reads the layer blobs, which must then be in the store.
    fn sbom_root(&self, options: &BuildOptions) -> Option<&Path> {
        const DATABASES: [&str; 5] = [
            "var/lib/dpkg/status",
            "var/lib/dpkg/status.d",
            "lib/apk/db/installed",
            "etc/os-release",
            "usr/lib/os-release",
        ];
        let ignored = options.ignore_paths.iter().any(|p| {
            let p = p.to_string_lossy();
            let p = p.trim_matches('/');
            DATABASES.iter().any(|d| {
                p.is_empty()
                    || *d == p
                    || d.starts_with(&format!("{p}/"))
                    || p.starts_with(&format!("{d}/"))
            })
        });
        self.rootfs
            .filter(|_| !self.in_place && !options.cache.enabled && !ignored)
    }

    /// Whether the SBOM reads the image's layer blobs (so the outputs must fetch the
    /// base layers not in the store before [`Attesting::attestor`]).
    pub fn needs_layers(&self, options: &BuildOptions) -> bool {
        Self::wanted(options) && options.attest.sbom && self.sbom_root(options).is_none()
    }

    /// The attestor for `image` of `platform`, or `None` when none is asked for.
    pub fn attestor(
        &self,
        options: &BuildOptions,
        platform: &Platform,
        image: &ImageState,
        blobs: &BlobStore,
    ) -> Result<Option<Attestor>, BuildError> {
        if !options.attest.any() {
            return Ok(None);
        }
        if !Self::wanted(options) {
            tracing::warn!(
                "--sbom/--provenance: nothing is pushed and there is no --oci-layout-path; no attestation is made"
            );
            return Ok(None);
        }
        let recorder = &self.recorder;
        let (dockerfile, dockerfile_digest) = recorder.dockerfile.clone().ok_or_else(|| {
            BuildError::Output("internal: the Dockerfile was not recorded".into())
        })?;
        let epoch = self.reproducible_epoch;
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
            started: crate::time::rfc3339(epoch.unwrap_or(recorder.started_secs)),
            created: self.created.to_string(),
            reproducible_epoch: epoch,
            attest: options.attest.clone(),
        };
        let sbom_error = |e| BuildError::Output(format!("making the SBOM (--sbom): {e}"));
        let files = match (options.attest.sbom, self.sbom_root(options)) {
            (false, _) => Files::new(),
            (true, Some(root)) => super::image_files::read_rootfs(root).map_err(sbom_error)?,
            (true, None) => {
                let paths: Vec<_> = image.layers.iter().map(|l| blobs.path(&l.digest)).collect();
                let layers: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
                super::image_files::read_layers(&layers).map_err(sbom_error)?
            }
        };
        Attestor::new(facts, &files).map(Some).map_err(sbom_error)
    }
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
