//! Image indexes: OCI image index and Docker manifest list (same shape).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::canonical_json;
use crate::descriptor::Descriptor;
use crate::manifest::DocumentError;
use crate::media_type::MediaType;
use crate::platform::Platform;
use crate::serde_util::null_as_default;

/// An image index (OCI) or manifest list (Docker). Field order is the OCI Go struct's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// OCI index or Docker manifest list.
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// Artifact type (OCI 1.1).
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<MediaType>,
    /// The manifests (or nested indexes).
    #[serde(default, deserialize_with = "null_as_default")]
    pub manifests: Vec<Descriptor>,
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

impl Index {
    /// An empty OCI index.
    pub fn new_oci(manifests: Vec<Descriptor>) -> Index {
        Index::with_media_type(MediaType::OciIndex, manifests)
    }

    /// An empty Docker manifest list.
    pub fn new_docker(manifests: Vec<Descriptor>) -> Index {
        Index::with_media_type(MediaType::DockerManifestList, manifests)
    }

    fn with_media_type(media_type: MediaType, manifests: Vec<Descriptor>) -> Index {
        Index {
            schema_version: 2,
            media_type: Some(media_type),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: None,
            extra: BTreeMap::new(),
        }
    }

    /// Parses and checks an index (schemaVersion 2, an index media type if any).
    pub fn from_slice(bytes: &[u8]) -> Result<Index, DocumentError> {
        let index: Index = DocumentError::parse("index", bytes)?;
        DocumentError::check_header(
            "index",
            index.schema_version,
            index.media_type.as_ref(),
            MediaType::is_index,
        )?;
        Ok(index)
    }

    /// The media type to use when referring to this index (OCI when unset).
    pub fn effective_media_type(&self) -> MediaType {
        self.media_type.clone().unwrap_or(MediaType::OciIndex)
    }

    /// Canonical JSON bytes and a descriptor for them.
    pub fn to_blob(&self) -> serde_json::Result<(Descriptor, Vec<u8>)> {
        canonical_json::to_blob(self.effective_media_type(), self)
    }

    /// The manifest best suited to `platform` (exact match first, then compatible
    /// variants; see [`Platform::compatibility_rank`]). Entries without a platform
    /// are not candidates.
    pub fn manifest_for_platform(&self, platform: &Platform) -> Option<&Descriptor> {
        let candidates: Vec<&Descriptor> = self
            .manifests
            .iter()
            .filter(|d| d.platform.is_some())
            .collect();
        let best = platform.select_best(candidates.iter().filter_map(|d| d.platform.as_ref()))?;
        Some(candidates[best])
    }

    /// The entry whose `org.opencontainers.image.ref.name` annotation is `name`.
    pub fn manifest_by_ref_name(&self, name: &str) -> Option<&Descriptor> {
        self.manifests.iter().find(|d| d.ref_name() == Some(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":527,"platform":{"architecture":"amd64","os":"linux"}},{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":527,"platform":{"architecture":"arm","os":"linux","variant":"v6"}},{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","size":527,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:4444444444444444444444444444444444444444444444444444444444444444","size":839,"annotations":{"vnd.docker.reference.type":"attestation-manifest"},"platform":{"architecture":"unknown","os":"unknown"}}]}"#;

    #[test]
    fn manifest_list_round_trips_and_selects_platforms() {
        let index = Index::from_slice(LIST.as_bytes()).unwrap();
        assert_eq!(index.to_blob().unwrap().1, LIST.as_bytes());
        let pick = |text: &str| {
            index
                .manifest_for_platform(&text.parse().unwrap())
                .map(|d| d.digest.hex()[..1].to_owned())
        };
        assert_eq!(pick("linux/amd64").as_deref(), Some("1"));
        assert_eq!(pick("linux/aarch64").as_deref(), Some("3"));
        assert_eq!(pick("linux/arm/v7").as_deref(), Some("2"));
        assert_eq!(pick("linux/s390x"), None);
    }

    #[test]
    fn rejects_a_manifest_posing_as_an_index() {
        let json = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[]}"#;
        let error = Index::from_slice(json.as_bytes()).unwrap_err().to_string();
        assert!(
            error.contains("not one of the index media types"),
            "{error}"
        );
    }
}
