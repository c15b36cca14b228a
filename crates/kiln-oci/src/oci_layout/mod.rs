//! OCI image layout directories (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`):
//! [`OciLayoutWriter`] writes them, [`OciLayout`] reads them.
//!
//! Blobs are streamed: a layer goes from its reader through a sha256 hasher into a
//! temporary file next to its final place, and is renamed to `blobs/sha256/<hex>` once
//! its digest is known, so a layout never holds a blob under a wrong name, even after
//! a crash. Every blob read through [`OciLayout`] is verified against its descriptor.

mod read;
mod write;

use std::io;
use std::path::PathBuf;

pub use read::{LayoutImage, OciLayout};
pub use write::OciLayoutWriter;

use crate::digest::Digest;
use crate::manifest::DocumentError;

/// Contents of the `oci-layout` file kiln writes and accepts.
pub const IMAGE_LAYOUT_VERSION: &str = "1.0.0";
/// JSON documents (manifests, indexes, configs) larger than this are refused.
pub const MAX_DOCUMENT_SIZE: u64 = 16 * 1024 * 1024;

/// What went wrong reading or writing an OCI layout.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// An I/O error; the message names the file (fs-err) and what was being done.
    #[error("{doing}: {source}")]
    Io {
        /// What was being done.
        doing: String,
        /// The error, naming the path.
        #[source]
        source: io::Error,
    },
    /// A JSON document in the layout is invalid.
    #[error("reading {path}: {source}")]
    Document {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: DocumentError,
    },
    /// Serialising a document failed.
    #[error("serialising {what}: {source}")]
    Serialize {
        /// What.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The directory is not an OCI layout kiln understands.
    #[error("{path} is not an OCI image layout: {reason}")]
    NotALayout {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A blob does not have the digest or size its descriptor says.
    #[error("blob {path} does not match its descriptor: {reason}")]
    BlobMismatch {
        /// The blob file.
        path: PathBuf,
        /// Digest or size mismatch, with both values.
        reason: String,
    },
    /// A referenced blob is missing.
    #[error("blob {digest} is not in the layout {layout}")]
    MissingBlob {
        /// The layout directory.
        layout: PathBuf,
        /// The missing blob.
        digest: Digest,
    },
    /// A document is larger than [`MAX_DOCUMENT_SIZE`].
    #[error(
        "blob {digest} in {layout} is {size} bytes, more than the {MAX_DOCUMENT_SIZE} allowed for a JSON document"
    )]
    DocumentTooLarge {
        /// The layout directory.
        layout: PathBuf,
        /// The blob.
        digest: Digest,
        /// Its declared size.
        size: u64,
    },
    /// No image with this `org.opencontainers.image.ref.name`.
    #[error("no image named {name:?} in the OCI layout {layout} (names present: {available:?})")]
    RefNotFound {
        /// The layout directory.
        layout: PathBuf,
        /// The requested name.
        name: String,
        /// The names in `index.json`.
        available: Vec<String>,
    },
    /// No name given and the layout does not hold exactly one image.
    #[error(
        "the OCI layout {layout} holds {count} images; name one (names present: {available:?})"
    )]
    Ambiguous {
        /// The layout directory.
        layout: PathBuf,
        /// Entries in `index.json`.
        count: usize,
        /// The names in `index.json`.
        available: Vec<String>,
    },
    /// An index has no manifest for the requested platform.
    #[error(
        "index {digest} in {layout} has no manifest for platform {platform} (it has: {available})"
    )]
    NoPlatformMatch {
        /// The layout directory.
        layout: PathBuf,
        /// The index.
        digest: Digest,
        /// The requested platform.
        platform: String,
        /// The platforms present.
        available: String,
    },
    /// A descriptor points at something that is neither a manifest nor an index.
    #[error("descriptor {digest} has media type {media_type}, expected an image manifest or index")]
    NotAnImage {
        /// The descriptor's digest.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// An invalid `org.opencontainers.image.ref.name`.
    #[error("invalid OCI layout reference name {name:?}: {reason}")]
    InvalidRefName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
}

fn io_error(doing: impl Into<String>) -> impl FnOnce(io::Error) -> LayoutError {
    let doing = doing.into();
    move |source| LayoutError::Io { doing, source }
}

/// Checks an OCI layout reference name (`org.opencontainers.image.ref.name`):
/// components of `[A-Za-z0-9]+` joined by one of `-._:@+` or `--`, separated by `/`.
pub fn validate_ref_name(name: &str) -> Result<(), LayoutError> {
    let invalid = |reason| LayoutError::InvalidRefName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    for component in name.split('/') {
        let mut previous_separator = true;
        let mut chars = component.chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_ascii_alphanumeric() {
                previous_separator = false;
            } else if matches!(c, '-' | '.' | '_' | ':' | '@' | '+') {
                if previous_separator {
                    return Err(invalid("a separator must sit between letters or digits"));
                }
                if c == '-' && chars.peek() == Some(&'-') {
                    chars.next();
                }
                previous_separator = true;
            } else {
                return Err(invalid(
                    "only letters, digits, '/', '-', '.', '_', ':', '@', '+' are allowed",
                ));
            }
        }
        if previous_separator {
            return Err(invalid(
                "each '/'-separated component must start and end with a letter or digit",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names_follow_the_spec_grammar() {
        for good in ["latest", "v1.0", "a/b", "x--y", "reg:5000/repo:tag", "1"] {
            validate_ref_name(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in ["", "a//b", "-a", "a-", "a b", "a---b", "a/.b", "é"] {
            assert!(validate_ref_name(bad).is_err(), "{bad}");
        }
    }
}
