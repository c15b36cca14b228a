//! Image data model: digests, media types, descriptors, platforms (more to come).

#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod canonical_json;
pub mod config;
pub mod descriptor;
pub mod digest;
pub mod docker_archive;
pub mod index;
pub mod manifest;
pub mod media_type;
pub mod oci_layout;
pub mod platform;
pub mod reference;
mod serde_util;

pub use config::{ContainerConfig, ExtraFields, Healthcheck, History, ImageConfig, RootFs};
pub use descriptor::{ANNOTATION_REF_NAME, Descriptor};
pub use digest::{
    Digest, DigestAlgorithm, DigestError, DigestWriter, Hasher, Sha256Hasher, VerifyingReader,
};
pub use docker_archive::{
    ArchiveError, ArchiveLayout, ArchiveManifestEntry, DockerArchive, DockerArchiveWriter,
};
pub use index::Index;
pub use manifest::{DocumentError, Manifest};
pub use media_type::{LayerCompression, MediaType};
pub use oci_layout::{LayoutError, LayoutImage, OciLayout, OciLayoutWriter};
pub use platform::{Platform, PlatformError};
pub use reference::{Reference, ReferenceError, registry_api_host};
pub use serde_util::EmptyObject;
