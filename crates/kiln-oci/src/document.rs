//! Telling a manifest from an index when fetching by reference.
//!
//! A registry answers `GET /v2/<name>/manifests/<ref>` with either; the body's
//! `mediaType` decides, then the `Content-Type` header, then the shape of the JSON
//! (`manifests` → index, `config` → manifest). Docker schema 1 is refused clearly.

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::index::Index;
use crate::manifest::{DocumentError, Manifest};
use crate::media_type::MediaType;

/// A manifest or an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageDocument {
    /// A single-platform image manifest.
    Manifest(Box<Manifest>),
    /// A multi-platform index / manifest list.
    Index(Box<Index>),
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<IgnoredAny>,
    config: Option<IgnoredAny>,
}

impl ImageDocument {
    /// Parses `bytes`, using `content_type` (an HTTP header value; parameters such as
    /// `; charset=utf-8` are ignored) when the body has no `mediaType`.
    pub fn from_slice(
        bytes: &[u8],
        content_type: Option<&str>,
    ) -> Result<ImageDocument, DocumentError> {
        let probe: Probe = DocumentError::parse("manifest or index", bytes)?;
        if probe.schema_version == Some(1) {
            return Err(DocumentError::SchemaVersion {
                kind: "manifest (Docker schema 1 is obsolete and not supported)",
                version: 1,
            });
        }
        let declared = probe.media_type.as_deref().or_else(|| {
            content_type
                .map(|value| value.split(';').next().unwrap_or_default().trim())
                .filter(|value| !value.is_empty())
        });
        let media_type = declared.map(MediaType::parse);
        let is_index = match &media_type {
            Some(media_type) if media_type.is_index() => true,
            Some(media_type) if media_type.is_manifest() => false,
            _ if probe.manifests.is_some() => true,
            _ if probe.config.is_some() => false,
            _ => {
                return Err(DocumentError::NotAnImageDocument {
                    media_type: declared.map(str::to_owned),
                });
            }
        };
        if is_index {
            Index::from_slice(bytes).map(|i| ImageDocument::Index(Box::new(i)))
        } else {
            Manifest::from_slice(bytes).map(|m| ImageDocument::Manifest(Box::new(m)))
        }
    }

    /// The media type to refer to this document with.
    pub fn media_type(&self) -> MediaType {
        match self {
            ImageDocument::Manifest(manifest) => manifest.effective_media_type(),
            ImageDocument::Index(index) => index.effective_media_type(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0}"#;

    #[test]
    fn body_media_type_then_header_then_shape() {
        let manifest = format!(r#"{{"schemaVersion":2,"config":{CONFIG},"layers":[]}}"#);
        let document = ImageDocument::from_slice(manifest.as_bytes(), None).unwrap();
        assert_eq!(document.media_type(), MediaType::OciManifest);

        let list = r#"{"schemaVersion":2,"manifests":[]}"#;
        let document = ImageDocument::from_slice(
            list.as_bytes(),
            Some("application/vnd.docker.distribution.manifest.list.v2+json; charset=utf-8"),
        )
        .unwrap();
        assert!(matches!(document, ImageDocument::Index(_)));
        assert_eq!(document.media_type(), MediaType::OciIndex);
        assert!(matches!(
            ImageDocument::from_slice(list.as_bytes(), None).unwrap(),
            ImageDocument::Index(_)
        ));

        let docker = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{CONFIG},"layers":[]}}"#
        );
        let document =
            ImageDocument::from_slice(docker.as_bytes(), Some("application/json")).unwrap();
        assert_eq!(document.media_type(), MediaType::DockerManifest);
    }

    #[test]
    fn schema1_and_unknown_documents_are_refused_clearly() {
        let error = ImageDocument::from_slice(br#"{"schemaVersion":1,"fsLayers":[]}"#, None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("schema 1"), "{error}");
        let error = ImageDocument::from_slice(
            br#"{"schemaVersion":2,"mediaType":"application/vnd.example+json"}"#,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("application/vnd.example+json"), "{error}");
    }
}
