//! Image data model: digests, media types, descriptors, platforms (more to come).

#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod descriptor;
pub mod digest;
pub mod media_type;
pub mod platform;

pub use descriptor::{ANNOTATION_REF_NAME, Descriptor};
pub use digest::{
    Digest, DigestAlgorithm, DigestError, DigestWriter, Hasher, Sha256Hasher, VerifyingReader,
};
pub use media_type::{LayerCompression, MediaType};
pub use platform::{Platform, PlatformError};
