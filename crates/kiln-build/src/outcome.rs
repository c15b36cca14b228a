//! What a successful build returns.

use std::time::Duration;

/// The result of a successful build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutcome {
    /// Manifest digest of the final image (`sha256:…`); with several platforms, the
    /// index's digest.
    pub digest: String,
    /// Manifest media type (an index's with several platforms).
    pub media_type: String,
    /// Total size: manifest + config + all layers (compressed), in bytes; with several
    /// platforms, the index and the manifests.
    pub size: u64,
    /// The final image's layers, base first (empty with several platforms: see
    /// `platforms`).
    pub layers: Vec<LayerSummary>,
    /// With several platforms, each platform's image, in the index's order; empty
    /// otherwise.
    pub platforms: Vec<PlatformSummary>,
    /// Destinations pushed to, with the reference written to the digest files.
    pub pushed: Vec<String>,
    /// Time spent in each phase.
    pub timings: PhaseTimings,
}

/// One platform's image in a build for several platforms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSummary {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// Its manifest digest (`sha256:…`), referenced by the index.
    pub digest: String,
    /// Its manifest media type.
    pub media_type: String,
    /// Its layers, base first.
    pub layers: Vec<LayerSummary>,
}

/// One layer of the final image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSummary {
    /// Compressed digest.
    pub digest: String,
    /// Uncompressed digest (the config's diff_id).
    pub diff_id: String,
    /// Compressed size in bytes.
    pub size: u64,
    /// Layer media type.
    pub media_type: String,
}

/// Wall time per phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PhaseTimings {
    /// Loading the context and the Dockerfile.
    pub prepare: Duration,
    /// Pulling base images (manifests, configs, `COPY --from` images); a stage's
    /// own base layers download while it runs, in `build`.
    pub pull: Duration,
    /// Executing steps (including snapshots and layer encoding), and the
    /// download of base layers that overlaps them.
    pub build: Duration,
    /// Writing local outputs (OCI layout, tar, digest files).
    pub export: Duration,
    /// Pushing to destinations.
    pub push: Duration,
}
