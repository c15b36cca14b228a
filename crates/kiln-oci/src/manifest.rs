//! Image manifests: OCI image manifest and Docker v2 schema 2 (the same shape; the
//! Docker one names itself in `mediaType`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::canonical_json;
use crate::descriptor::Descriptor;
use crate::media_type::MediaType;
use crate::serde_util::null_as_default;

/// Why a manifest or index document was rejected.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Not valid JSON for the expected shape.
    #[error("parsing {kind} JSON: {source}")]
    Json {
        /// `manifest`, `index`, `image config`, ...
        kind: &'static str,
        /// The parser's error (line and column).
        #[source]
        source: serde_json::Error,
    },
    /// `schemaVersion` other than 2.
    #[error("{kind} has schemaVersion {version}, only 2 is supported")]
    SchemaVersion {
        /// `manifest` or `index`.
        kind: &'static str,
        /// The declared version.
        version: u32,
    },
    /// Neither a manifest nor an index.
    #[error(
        "not an image manifest or index: mediaType {media_type:?}, and neither `config` nor `manifests` is present"
    )]
    NotAnImageDocument {
        /// The declared media type, if any.
        media_type: Option<String>,
    },
    /// `mediaType` says something else than the expected kind of document.
    #[error("{kind} declares mediaType {media_type}, which is not one of the {kind} media types")]
    WrongMediaType {
        /// `manifest` or `index`.
        kind: &'static str,
        /// The declared media type.
        media_type: MediaType,
    },
}

impl DocumentError {
    /// Parses `bytes` as a document of `kind`, naming the kind in the error.
    pub(crate) fn parse<T: serde::de::DeserializeOwned>(
        kind: &'static str,
        bytes: &[u8],
    ) -> Result<T, DocumentError> {
        serde_json::from_slice(bytes).map_err(|source| DocumentError::Json { kind, source })
    }

    /// The checks a manifest and an index share: `schemaVersion` 2 and, when a
    /// media type is declared, one that `is_kind` accepts.
    pub(crate) fn check_header(
        kind: &'static str,
        schema_version: u32,
        media_type: Option<&MediaType>,
        is_kind: fn(&MediaType) -> bool,
    ) -> Result<(), DocumentError> {
        if schema_version != 2 {
            return Err(DocumentError::SchemaVersion {
                kind,
                version: schema_version,
            });
        }
        match media_type {
            Some(media_type) if !is_kind(media_type) => Err(DocumentError::WrongMediaType {
                kind,
                media_type: media_type.clone(),
            }),
            _ => Ok(()),
        }
    }
}

/// An image manifest (OCI or Docker v2s2). Field order is the OCI Go struct's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// OCI: optional but written by kiln; Docker: required.
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// Artifact type (OCI 1.1).
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<MediaType>,
    /// The image config blob.
    pub config: Descriptor,
    /// Layers, base first.
    #[serde(default, deserialize_with = "null_as_default")]
    pub layers: Vec<Descriptor>,
    /// Subject (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Fields not modelled above, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Manifest {
    /// An OCI image manifest.
    pub fn new_oci(config: Descriptor, layers: Vec<Descriptor>) -> Manifest {
        Manifest::with_media_type(MediaType::OciManifest, config, layers)
    }

    /// A Docker v2 schema 2 manifest.
    pub fn new_docker(config: Descriptor, layers: Vec<Descriptor>) -> Manifest {
        Manifest::with_media_type(MediaType::DockerManifest, config, layers)
    }

    fn with_media_type(
        media_type: MediaType,
        config: Descriptor,
        layers: Vec<Descriptor>,
    ) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(media_type),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: None,
            extra: BTreeMap::new(),
        }
    }

    /// Parses and checks a manifest (schemaVersion 2, a manifest media type if any).
    pub fn from_slice(bytes: &[u8]) -> Result<Manifest, DocumentError> {
        let manifest: Manifest = DocumentError::parse("manifest", bytes)?;
        DocumentError::check_header(
            "manifest",
            manifest.schema_version,
            manifest.media_type.as_ref(),
            MediaType::is_manifest,
        )?;
        Ok(manifest)
    }

    /// The media type to use when referring to this manifest (OCI when unset).
    pub fn effective_media_type(&self) -> MediaType {
        self.media_type.clone().unwrap_or(MediaType::OciManifest)
    }

    /// Canonical JSON bytes and a descriptor for them.
    pub fn to_blob(&self) -> serde_json::Result<(Descriptor, Vec<u8>)> {
        canonical_json::to_blob(self.effective_media_type(), self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Digest;

    fn sample_descriptor(media_type: MediaType, content: &[u8]) -> Descriptor {
        Descriptor::for_bytes(media_type, content)
    }

    #[test]
    fn docker_v2s2_manifest_round_trips_byte_for_byte() {
        // As written by Docker/distribution (field order of the Go struct).
        let json = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":1470},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":772788}]}"#;
        let manifest = Manifest::from_slice(json.as_bytes()).unwrap();
        assert_eq!(manifest.effective_media_type(), MediaType::DockerManifest);
        let (descriptor, bytes) = manifest.to_blob().unwrap();
        assert_eq!(String::from_utf8(bytes).unwrap(), json);
        assert_eq!(descriptor.digest, Digest::sha256_of(json.as_bytes()));
    }

    #[test]
    fn oci_manifest_keeps_unknown_fields_and_annotations() {
        let json = r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":2},"layers":null,"annotations":{"b":"2","a":"1"},"zzz":{"k":1}}"#;
        let manifest = Manifest::from_slice(json.as_bytes()).unwrap();
        assert!(manifest.layers.is_empty());
        assert_eq!(manifest.effective_media_type(), MediaType::OciManifest);
        let written = String::from_utf8(canonical_json::to_vec(&manifest).unwrap()).unwrap();
        assert_eq!(
            written,
            r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":2},"layers":[],"annotations":{"a":"1","b":"2"},"zzz":{"k":1}}"#
        );
    }

    #[test]
    fn rejects_wrong_schema_or_media_type() {
        let config = sample_descriptor(MediaType::OciConfig, b"{}");
        let mut manifest = Manifest::new_oci(config, vec![]);
        manifest.schema_version = 1;
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let error = Manifest::from_slice(&bytes).unwrap_err().to_string();
        assert!(error.contains("schemaVersion 1"), "{error}");

        manifest.schema_version = 2;
        manifest.media_type = Some(MediaType::OciIndex);
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let error = Manifest::from_slice(&bytes).unwrap_err().to_string();
        assert!(
            error.contains("not one of the manifest media types"),
            "{error}"
        );

        let error = Manifest::from_slice(b"{\"schemaVersion\":2}")
            .unwrap_err()
            .to_string();
        assert!(error.contains("missing field `config`"), "{error}");
    }
}
