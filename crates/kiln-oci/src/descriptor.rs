//! Content descriptors: what a manifest or index says about a blob it points at.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::media_type::MediaType;
use crate::platform::Platform;

/// The annotation naming an image inside an OCI layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI content descriptor (also the shape of Docker v2s2 descriptors).
///
/// Field order is the spec's (and Go's) so that serialisation is stable; fields this
/// type does not model (e.g. `data`) are kept in `extra` and written back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(rename = "mediaType")]
    pub media_type: MediaType,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes of the referenced content.
    pub size: u64,
    /// Alternative download locations (foreign layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Platform of the referenced manifest (in indexes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Artifact type of the referenced manifest.
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<MediaType>,
    /// Fields not modelled above, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Descriptor {
    /// A descriptor with just media type, digest and size.
    pub fn new(media_type: MediaType, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type,
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
            extra: BTreeMap::new(),
        }
    }

    /// A descriptor for `bytes` (digest and size computed here).
    pub fn for_bytes(media_type: MediaType, bytes: &[u8]) -> Descriptor {
        Descriptor::new(media_type, Digest::sha256_of(bytes), bytes.len() as u64)
    }

    /// The value of one annotation.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// Sets one annotation.
    pub fn set_annotation(&mut self, key: &str, value: &str) {
        self.annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value.to_owned());
    }

    /// The `org.opencontainers.image.ref.name` annotation (OCI layout tag).
    pub fn ref_name(&self) -> Option<&str> {
        self.annotation(ANNOTATION_REF_NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_spec_field_names_and_unknown_fields() {
        let json = r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0,"annotations":{"org.opencontainers.image.ref.name":"v1"},"platform":{"architecture":"arm64","os":"linux","variant":"v8"},"artifactType":"application/x.test","data":"","x-custom":[1,2]}"#;
        let descriptor: Descriptor = serde_json::from_str(json).unwrap();
        assert_eq!(descriptor.ref_name(), Some("v1"));
        assert_eq!(descriptor.size, 0);
        assert_eq!(descriptor.extra.len(), 2);
        assert_eq!(serde_json::to_string(&descriptor).unwrap(), json);
    }

    #[test]
    fn for_bytes_computes_digest_and_size() {
        let mut descriptor = Descriptor::for_bytes(MediaType::OciConfig, b"{}");
        assert_eq!(descriptor.size, 2);
        assert!(descriptor.digest.matches(b"{}"));
        descriptor.set_annotation(ANNOTATION_REF_NAME, "latest");
        assert_eq!(descriptor.ref_name(), Some("latest"));
    }
}
