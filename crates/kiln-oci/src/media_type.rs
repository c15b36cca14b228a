//! Media types of manifests, indexes, configs and layers (OCI and Docker v2 schema 2).
//!
//! Known values get their own variant so code can `match`; anything else is kept
//! verbatim in [`MediaType::Other`] so that unknown artifacts round-trip unchanged.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How a layer blob is compressed, as declared by its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerCompression {
    /// Plain tar.
    None,
    /// gzip-compressed tar.
    Gzip,
    /// zstd-compressed tar.
    Zstd,
}

macro_rules! media_types {
    ($( $(#[$doc:meta])* $variant:ident => $text:literal, )*) => {
        /// A media type; unknown ones are kept as [`MediaType::Other`].
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum MediaType {
            $( $(#[$doc])* $variant, )*
            /// Any other media type, kept verbatim.
            Other(String),
        }

        impl MediaType {
            /// The media type string.
            pub fn as_str(&self) -> &str {
                match self {
                    $( MediaType::$variant => $text, )*
                    MediaType::Other(text) => text,
                }
            }

            fn from_known(text: &str) -> Option<MediaType> {
                match text {
                    $( $text => Some(MediaType::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

media_types! {
    /// `application/vnd.oci.image.manifest.v1+json`
    OciManifest => "application/vnd.oci.image.manifest.v1+json",
    /// `application/vnd.oci.image.index.v1+json`
    OciIndex => "application/vnd.oci.image.index.v1+json",
    /// `application/vnd.oci.image.config.v1+json`
    OciConfig => "application/vnd.oci.image.config.v1+json",
    /// `application/vnd.oci.image.layer.v1.tar`
    OciLayer => "application/vnd.oci.image.layer.v1.tar",
    /// `application/vnd.oci.image.layer.v1.tar+gzip`
    OciLayerGzip => "application/vnd.oci.image.layer.v1.tar+gzip",
    /// `application/vnd.oci.image.layer.v1.tar+zstd`
    OciLayerZstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    /// `application/vnd.oci.image.layer.nondistributable.v1.tar` (deprecated in OCI 1.1, still read)
    OciNondistributableLayer => "application/vnd.oci.image.layer.nondistributable.v1.tar",
    /// `application/vnd.oci.image.layer.nondistributable.v1.tar+gzip`
    OciNondistributableLayerGzip => "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    /// `application/vnd.oci.image.layer.nondistributable.v1.tar+zstd`
    OciNondistributableLayerZstd => "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    /// `application/vnd.oci.empty.v1+json` (the `{}` config of artifacts)
    OciEmpty => "application/vnd.oci.empty.v1+json",
    /// `application/vnd.docker.distribution.manifest.v2+json`
    DockerManifest => "application/vnd.docker.distribution.manifest.v2+json",
    /// `application/vnd.docker.distribution.manifest.list.v2+json`
    DockerManifestList => "application/vnd.docker.distribution.manifest.list.v2+json",
    /// `application/vnd.docker.container.image.v1+json`
    DockerConfig => "application/vnd.docker.container.image.v1+json",
    /// `application/vnd.docker.image.rootfs.diff.tar.gzip`
    DockerLayerGzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
    /// `application/vnd.docker.image.rootfs.foreign.diff.tar.gzip`
    DockerForeignLayerGzip => "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
}

impl MediaType {
    /// Parses a media type; never fails (unknown values become [`MediaType::Other`]).
    pub fn parse(text: &str) -> MediaType {
        MediaType::from_known(text).unwrap_or_else(|| MediaType::Other(text.to_owned()))
    }

    /// A single-image manifest (OCI or Docker v2s2).
    pub fn is_manifest(&self) -> bool {
        matches!(self, MediaType::OciManifest | MediaType::DockerManifest)
    }

    /// A multi-platform index (OCI index or Docker manifest list).
    pub fn is_index(&self) -> bool {
        matches!(self, MediaType::OciIndex | MediaType::DockerManifestList)
    }

    /// An image config (OCI or Docker).
    pub fn is_config(&self) -> bool {
        matches!(self, MediaType::OciConfig | MediaType::DockerConfig)
    }

    /// The declared compression if this is a known layer media type.
    pub fn layer_compression(&self) -> Option<LayerCompression> {
        match self {
            MediaType::OciLayer | MediaType::OciNondistributableLayer => {
                Some(LayerCompression::None)
            }
            MediaType::OciLayerGzip
            | MediaType::OciNondistributableLayerGzip
            | MediaType::DockerLayerGzip
            | MediaType::DockerForeignLayerGzip => Some(LayerCompression::Gzip),
            MediaType::OciLayerZstd | MediaType::OciNondistributableLayerZstd => {
                Some(LayerCompression::Zstd)
            }
            _ => None,
        }
    }

    /// A known layer media type.
    pub fn is_layer(&self) -> bool {
        self.layer_compression().is_some()
    }

    /// Whether this belongs to the Docker v2s2 family (rather than OCI).
    pub fn is_docker(&self) -> bool {
        self.as_str().starts_with("application/vnd.docker.")
    }

    /// A layer that registries are not meant to hold (Docker's foreign layers,
    /// OCI's non-distributable ones).
    pub fn is_non_distributable(&self) -> bool {
        matches!(
            self,
            MediaType::DockerForeignLayerGzip
                | MediaType::OciNondistributableLayer
                | MediaType::OciNondistributableLayerGzip
                | MediaType::OciNondistributableLayerZstd
        )
    }

    /// The OCI media type for this known layer type (Docker's gzip and foreign
    /// layers become OCI's gzip and non-distributable gzip ones; OCI types are
    /// returned unchanged); `None` for anything that is not a known layer type.
    pub fn oci_layer_equivalent(&self) -> Option<MediaType> {
        let compression = self.layer_compression()?;
        Some(if self.is_non_distributable() {
            match compression {
                LayerCompression::None => MediaType::OciNondistributableLayer,
                LayerCompression::Gzip => MediaType::OciNondistributableLayerGzip,
                LayerCompression::Zstd => MediaType::OciNondistributableLayerZstd,
            }
        } else {
            MediaType::oci_layer(compression)
        })
    }

    /// The Docker schema 2 media type for this known layer type; `None` when
    /// schema 2 has none: it knows gzip layers (plain and foreign) only, no
    /// uncompressed and no zstd ones.
    pub fn docker_layer_equivalent(&self) -> Option<MediaType> {
        match (self.layer_compression()?, self.is_non_distributable()) {
            (LayerCompression::Gzip, false) => Some(MediaType::DockerLayerGzip),
            (LayerCompression::Gzip, true) => Some(MediaType::DockerForeignLayerGzip),
            _ => None,
        }
    }

    /// The OCI layer media type for a compression.
    pub fn oci_layer(compression: LayerCompression) -> MediaType {
        match compression {
            LayerCompression::None => MediaType::OciLayer,
            LayerCompression::Gzip => MediaType::OciLayerGzip,
            LayerCompression::Zstd => MediaType::OciLayerZstd,
        }
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MediaType {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<MediaType, Self::Err> {
        Ok(MediaType::parse(text))
    }
}

impl From<&str> for MediaType {
    fn from(text: &str) -> MediaType {
        MediaType::parse(text)
    }
}

impl Serialize for MediaType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<MediaType, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(MediaType::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_types_parse_to_variants_and_back() {
        for text in [
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "application/vnd.oci.image.layer.nondistributable.v1.tar",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        ] {
            let media_type = MediaType::parse(text);
            assert!(!matches!(media_type, MediaType::Other(_)), "{text}");
            assert_eq!(media_type.as_str(), text);
        }
    }

    #[test]
    fn unknown_types_are_kept_verbatim() {
        let text = "application/vnd.example.thing+json";
        let media_type: MediaType = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        assert_eq!(media_type, MediaType::Other(text.to_owned()));
        assert_eq!(
            serde_json::to_string(&media_type).unwrap(),
            format!("\"{text}\"")
        );
    }

    #[test]
    fn classification() {
        assert!(MediaType::DockerManifest.is_manifest());
        assert!(MediaType::DockerManifestList.is_index());
        assert!(MediaType::DockerConfig.is_config() && MediaType::DockerConfig.is_docker());
        assert_eq!(
            MediaType::DockerLayerGzip.layer_compression(),
            Some(LayerCompression::Gzip)
        );
        assert_eq!(
            MediaType::oci_layer(LayerCompression::Zstd),
            MediaType::OciLayerZstd
        );
        assert!(!MediaType::OciConfig.is_layer());
    }

    #[test]
    fn layer_types_map_between_the_families() {
        use MediaType::*;
        // (type, OCI equivalent, Docker equivalent)
        let table = [
            (DockerLayerGzip, Some(OciLayerGzip), Some(DockerLayerGzip)),
            (
                DockerForeignLayerGzip,
                Some(OciNondistributableLayerGzip),
                Some(DockerForeignLayerGzip),
            ),
            (OciLayerGzip, Some(OciLayerGzip), Some(DockerLayerGzip)),
            (
                OciNondistributableLayerGzip,
                Some(OciNondistributableLayerGzip),
                Some(DockerForeignLayerGzip),
            ),
            (OciLayer, Some(OciLayer), None),
            (OciLayerZstd, Some(OciLayerZstd), None),
            (
                OciNondistributableLayerZstd,
                Some(OciNondistributableLayerZstd),
                None,
            ),
            (OciConfig, None, None),
            (MediaType::parse("application/x-thing"), None, None),
        ];
        for (media_type, oci, docker) in table {
            assert_eq!(media_type.oci_layer_equivalent(), oci, "{media_type}");
            assert_eq!(media_type.docker_layer_equivalent(), docker, "{media_type}");
        }
    }
}
