//! The image data model of kiln, and the two on-disk image formats.
//!
//! # What is here
//!
//! - **Identifiers**: [`Digest`] (validated `sha256:<hex>`, plus the streaming
//!   [`DigestWriter`], [`Sha256Hasher`] and [`VerifyingReader`]), [`MediaType`]
//!   (known OCI/Docker types as variants, anything else kept verbatim),
//!   [`Reference`] (Docker's parsing and `docker.io` normalisation) and [`Platform`]
//!   (containerd's normalisation and matching, arm/arm64 variants included).
//! - **Documents**: [`Descriptor`], [`Manifest`] (OCI and Docker v2s2), [`Index`] (OCI
//!   index and Docker manifest list) and [`ImageConfig`] (a superset of the OCI and
//!   Docker image configs). Every document type keeps the fields it does not model in
//!   an `extra` map and writes them back, so reading and rewriting a base image's
//!   config loses nothing; `Option` separates "absent" from "empty".
//! - **Canonical JSON** ([`canonical_json`]): the one writer for every byte kiln
//!   digests. Struct fields in the Go structs' order, maps sorted (every map is a
//!   `BTreeMap`), no whitespace, Go's HTML-safe escaping. The same value always gives
//!   the same bytes, and documents written by Go tools re-serialise byte for byte.
//! - [`ImageDocument`] tells a manifest from an index (body `mediaType`, then the
//!   `Content-Type` header, then the JSON's shape); [`timestamp`] formats `created`
//!   times exactly as Go does; [`validate_image`] checks a manifest against its
//!   config (layer counts, history, uncompressed digests, media type families).
//! - **Conversion** ([`convert_manifest`]): a manifest in the other family
//!   ([`ImageFormat`]: OCI or Docker schema 2). Only media types change; layers
//!   and config bytes stay the same blobs, and what schema 2 cannot express is an
//!   error.
//! - **Formats**: the OCI image layout ([`OciLayoutWriter`], [`OciLayout`]) and
//!   docker-archive, the `docker save` tarball ([`DockerArchiveWriter`],
//!   [`DockerArchive`]).
//!
//! # Example: write an OCI layout, read it back
//!
//! ```
//! use kiln_oci::{
//!     Descriptor, History, ImageConfig, Manifest, MediaType, OciLayout, OciLayoutWriter,
//!     Platform, validate_image,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let temp = tempfile::tempdir()?;
//! # let dir = temp.path().join("image");
//! // Write a one-layer image under the name `latest`. The layer is an empty tar
//! // archive (two zero blocks); kiln-layer makes real ones.
//! let layer = vec![0u8; 1024];
//! let mut writer = OciLayoutWriter::create(&dir)?;
//! let (layer_digest, layer_size) = writer.write_blob(layer.as_slice())?;
//!
//! let mut config = ImageConfig::for_platform(&Platform::new("linux", "amd64"));
//! let history = History { created_by: Some("example".into()), ..History::default() };
//! config.push_layer(layer_digest.clone(), history); // uncompressed: diff_id == digest
//! let (config_descriptor, config_bytes) = config.to_blob(MediaType::OciConfig)?;
//! writer.write_bytes(&config_bytes)?;
//!
//! let layers = vec![Descriptor::new(MediaType::OciLayer, layer_digest, layer_size)];
//! let manifest = Manifest::new_oci(config_descriptor, layers);
//! writer.add_image(&manifest, Some("latest"), None)?;
//! writer.finish()?; // writes index.json
//!
//! // Read it back: every document and blob is checked against its digest.
//! let layout = OciLayout::open(&dir)?;
//! let image = layout.image(Some("latest"), None)?;
//! validate_image(&image.manifest, &image.config)?;
//! assert_eq!(layout.verify_layers(&image)?, 1024);
//! println!("{} {}", image.descriptor.digest, image.config.platform());
//! # Ok(()) }
//! ```
//!
//! # Design rules
//!
//! - Synchronous and policy-free: no tokio, no network, no printing (tracing events
//!   only). Callers decide where images come from and go to.
//! - Blobs stream. Layers pass through a hasher into a temporary file (or a tar
//!   entry) and are never held whole in memory; only JSON documents (capped at
//!   [`oci_layout::MAX_DOCUMENT_SIZE`]) are.
//! - Nothing read is trusted: every blob read from a layout is checked against its
//!   descriptor's digest and size ([`VerifyingReader`] fails at end of stream), and
//!   docker-archive layers against their diff IDs; archive member names are confined
//!   to the archive.
//! - Errors are `thiserror` enums that say what was being done, to which file, and
//!   name the offending part (the tag of a reference, the variant of a platform).

#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod canonical_json;
pub mod config;
pub mod convert;
pub mod descriptor;
pub mod digest;
pub mod docker_archive;
pub mod document;
pub mod index;
pub mod manifest;
pub mod media_type;
pub mod oci_layout;
pub mod platform;
pub mod reference;
mod serde_util;
pub mod timestamp;
pub mod validate;

pub use config::{ContainerConfig, ExtraFields, Healthcheck, History, ImageConfig, RootFs};
pub use convert::{ConversionError, ImageFormat, convert_manifest};
pub use descriptor::{ANNOTATION_REF_NAME, Descriptor};
pub use digest::{
    Digest, DigestAlgorithm, DigestError, DigestWriter, Hasher, Sha256Hasher, VerifyingReader,
};
pub use docker_archive::{
    ArchiveError, ArchiveLayerBlob, ArchiveLayerReader, ArchiveLayout, ArchiveManifestEntry,
    DockerArchive, DockerArchiveWriter,
};
pub use document::ImageDocument;
pub use index::Index;
pub use manifest::{DocumentError, Manifest};
pub use media_type::{LayerCompression, MediaType};
pub use oci_layout::{LayoutError, LayoutImage, OciLayout, OciLayoutWriter};
pub use platform::{Platform, PlatformError};
pub use reference::{Reference, ReferenceError, registry_api_host};
pub use serde_util::EmptyObject;
pub use timestamp::{rfc3339_from_system_time, rfc3339_utc};
pub use validate::{ValidationError, validate_image};
