//! Attestations of a built image (`--sbom`, `--provenance`): an SPDX 2.3
//! SBOM and a SLSA provenance v1 in-toto statement, each published as an
//! OCI 1.1 artifact manifest whose `subject` is the image manifest.
//!
//! # Design
//!
//! - [`BuildFacts`] is what the engine knew about the build (Dockerfile,
//!   args, bases by digest, times); [`image_files`] reads the final image's
//!   package databases once, from the final stage's root filesystem when the
//!   build has one, else from the layer blobs (no unpacking; confined names,
//!   no symlinks followed, bounded sizes), and [`Attestor::new`] parses them
//!   into a [`packages::Inventory`].
//! - [`Attestor::artifacts_for`] makes the documents and artifact manifests
//!   for ONE image manifest descriptor, so a multi-platform build attaches
//!   one set per platform manifest; the documents depend on the subject only
//!   through its digest.
//! - [`publish`] pushes artifacts: image blobs and manifest by digest, then
//!   the artifacts and the referrers (the registry's API, or the referrers
//!   tag schema), and only then the tags, so a tag never points at an image
//!   whose attestations failed; it also writes them into an OCI layout.
//!
//! All documents are canonical JSON, deterministic for the same inputs
//! (with `--reproducible`, every time comes from `SOURCE_DATE_EPOCH`).

pub mod apk;
pub mod dpkg;
pub(crate) mod for_build;
pub mod image_files;
pub mod listing;
pub mod os_release;
pub mod packages;
pub mod provenance;
pub mod publish;
pub mod purl;
pub mod spdx;

use std::collections::BTreeMap;

use kiln_oci::{Descriptor, Digest, Manifest, MediaType, Platform};

/// The base of every URI kiln mints (builder id, build type, SPDX namespace).
pub const KILN_URI: &str = env!("CARGO_PKG_REPOSITORY");
/// The annotation naming an in-toto layer's predicate type.
pub const PREDICATE_ANNOTATION: &str = "in-toto.io/predicate-type";

/// `--sbom`, `--provenance` and what the CI environment tells provenance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttestOptions {
    /// `--sbom`: attach an SPDX 2.3 SBOM.
    pub sbom: bool,
    /// `--provenance`: attach a SLSA provenance v1 statement.
    pub provenance: bool,
    /// The builder id (GitLab: `CI_JOB_URL`); `None`: kiln's own URI.
    pub builder_id: Option<String>,
    /// The context's git commit (GitLab: `CI_COMMIT_SHA`).
    pub source_commit: Option<String>,
    /// Where that commit lives (GitLab: `CI_PROJECT_URL`).
    pub source_repository: Option<String>,
}

impl AttestOptions {
    /// Whether any attestation is asked for.
    pub fn any(&self) -> bool {
        self.sbom || self.provenance
    }
}

/// A base image the build used, as resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImage {
    /// The reference as the Dockerfile names it (after ARG expansion).
    pub reference: String,
    /// The manifest digest it resolved to for the target platform.
    pub digest: Digest,
}

/// What the engine knew about a build, for the documents.
#[derive(Debug, Clone)]
pub struct BuildFacts {
    /// The image's name: the first destination, else `image`.
    pub image_name: String,
    /// Every destination.
    pub destinations: Vec<String>,
    /// The Dockerfile as named (path or URL).
    pub dockerfile: String,
    /// sha256 of its bytes.
    pub dockerfile_digest: Digest,
    /// `--target`.
    pub target: Option<String>,
    /// The target platform.
    pub platform: Platform,
    /// `--build-arg`s (values of secret-looking names are redacted in provenance).
    pub build_args: BTreeMap<String, String>,
    /// Base images, first use first, each once.
    pub bases: Vec<BaseImage>,
    /// When the build started (RFC 3339).
    pub started: String,
    /// The image's creation time (RFC 3339): the SBOM's `created`.
    pub created: String,
    /// `SOURCE_DATE_EPOCH` (or 0) with `--reproducible`: every time is this one.
    pub reproducible_epoch: Option<i64>,
    /// What was asked for.
    pub attest: AttestOptions,
}

/// Which document an artifact holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// SPDX 2.3 JSON.
    Sbom,
    /// in-toto statement with a SLSA provenance v1 predicate.
    Provenance,
}

impl Kind {
    /// The document's media type, also the artifact type.
    pub fn media_type(self) -> &'static str {
        match self {
            Kind::Sbom => "application/spdx+json",
            Kind::Provenance => "application/vnd.in-toto+json",
        }
    }

    /// The name `kiln attestations --show` takes.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sbom => "sbom",
            Kind::Provenance => "provenance",
        }
    }

    /// The kind of an artifact type, if kiln makes it.
    pub fn of_artifact_type(artifact_type: &str) -> Option<Kind> {
        [Kind::Sbom, Kind::Provenance]
            .into_iter()
            .find(|k| k.media_type() == artifact_type)
    }
}

/// One attestation ready to publish: its document and artifact manifest.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// What it is.
    pub kind: Kind,
    /// The document (the manifest's one layer).
    pub document: Vec<u8>,
    /// The artifact manifest (`artifactType`, empty config, `subject`).
    pub manifest: Manifest,
    /// Its bytes, as digested.
    pub manifest_bytes: Vec<u8>,
    /// Its descriptor as a referrers index lists it (`artifactType`, annotations).
    pub descriptor: Descriptor,
}

/// The OCI empty JSON blob `{}`, every artifact's config.
pub const EMPTY_JSON: &[u8] = b"{}";

/// Makes attestations for the manifests of one build.
#[derive(Debug, Clone)]
pub struct Attestor {
    facts: BuildFacts,
    inventory: Option<packages::Inventory>,
}

impl Attestor {
    /// Parses the image's package databases (`files`, from
    /// [`image_files::read_rootfs`] or [`image_files::read_layers`]) when an
    /// SBOM is asked for.
    pub fn new(facts: BuildFacts, files: &image_files::Files) -> Result<Attestor, String> {
        let inventory = if facts.attest.sbom {
            Some(packages::inventory(files)?)
        } else {
            None
        };
        if let Some(inventory) = &inventory {
            tracing::info!(
                packages = inventory.packages.len(),
                "SBOM: OS packages found in the image"
            );
        }
        Ok(Attestor { facts, inventory })
    }

    /// The facts the documents describe.
    pub fn facts(&self) -> &BuildFacts {
        &self.facts
    }

    /// The artifacts for the image manifest `subject` (its media type,
    /// digest and size are used); `finished` is when the build finished.
    pub fn artifacts_for(
        &self,
        subject: &Descriptor,
        finished: &str,
    ) -> serde_json::Result<Vec<Artifact>> {
        let subject = Descriptor::new(
            subject.media_type.clone(),
            subject.digest.clone(),
            subject.size,
        );
        let mut out = Vec::new();
        if let Some(inventory) = &self.inventory {
            let document = spdx::document(&subject, &self.facts, inventory)?;
            out.push(artifact(Kind::Sbom, document, &subject, &self.facts)?);
        }
        if self.facts.attest.provenance {
            let document = provenance::statement(&subject, &self.facts, finished)?;
            out.push(artifact(Kind::Provenance, document, &subject, &self.facts)?);
        }
        Ok(out)
    }
}

fn artifact(
    kind: Kind,
    document: Vec<u8>,
    subject: &Descriptor,
    facts: &BuildFacts,
) -> serde_json::Result<Artifact> {
    let artifact_type = MediaType::parse(kind.media_type());
    let mut layer = Descriptor::for_bytes(artifact_type.clone(), &document);
    if kind == Kind::Provenance {
        layer.set_annotation(PREDICATE_ANNOTATION, provenance::PREDICATE_TYPE);
    }
    let config = Descriptor::for_bytes(MediaType::OciEmpty, EMPTY_JSON);
    let mut manifest = Manifest::new_oci(config, vec![layer]);
    manifest.artifact_type = Some(artifact_type.clone());
    manifest.subject = Some(subject.clone());
    let annotations = BTreeMap::from([(
        "org.opencontainers.image.created".to_string(),
        facts.created.clone(),
    )]);
    manifest.annotations = Some(annotations.clone());
    let (mut descriptor, manifest_bytes) = manifest.to_blob()?;
    descriptor.artifact_type = Some(artifact_type);
    descriptor.annotations = Some(annotations);
    Ok(Artifact {
        kind,
        document,
        manifest,
        manifest_bytes,
        descriptor,
    })
}
