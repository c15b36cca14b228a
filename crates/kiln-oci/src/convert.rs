//! Converting an image manifest between the OCI and Docker schema 2 families.
//!
//! The two families describe the same image with different media types: the
//! manifest's own, the config descriptor's, and each layer descriptor's. The
//! blobs do not change: a layer is the same bytes (same digest) whichever type
//! names it, and an [`ImageConfig`](crate::ImageConfig) serialises to the same
//! bytes as either config type. So a conversion rewrites the manifest only; the
//! caller serialises it through [`canonical_json`](crate::canonical_json), which
//! gives the converted manifest its own digest.
//!
//! Docker schema 2 is the narrower family: it has gzip layers (plain and
//! foreign) only, and no manifest `annotations`, `subject` or `artifactType`.
//! Converting what it cannot express is an error, never a silent loss.

use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::manifest::Manifest;
use crate::media_type::MediaType;

/// A manifest family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// OCI image manifest and config.
    Oci,
    /// Docker image manifest v2 schema 2 and Docker image config.
    Docker,
}

impl ImageFormat {
    /// The family a manifest media type belongs to (OCI unless it is Docker's).
    pub fn of_manifest(media_type: &MediaType) -> ImageFormat {
        if media_type.is_docker() {
            ImageFormat::Docker
        } else {
            ImageFormat::Oci
        }
    }

    /// The manifest media type of the family.
    pub fn manifest_media_type(self) -> MediaType {
        match self {
            ImageFormat::Oci => MediaType::OciManifest,
            ImageFormat::Docker => MediaType::DockerManifest,
        }
    }

    /// The image config media type of the family.
    pub fn config_media_type(self) -> MediaType {
        match self {
            ImageFormat::Oci => MediaType::OciConfig,
            ImageFormat::Docker => MediaType::DockerConfig,
        }
    }

    /// The family's name as users write it (`oci`, `docker`).
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Oci => "oci",
            ImageFormat::Docker => "docker",
        }
    }
}

/// Why a manifest cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversionError {
    /// A layer type without an equivalent in the target family.
    #[error(
        "layer {digest} has media type {media_type}, which has no {} equivalent{}",
        target.name(),
        if *target == ImageFormat::Docker { " (Docker schema 2 has gzip layers only: no zstd, no uncompressed tar)" } else { "" }
    )]
    Layer {
        /// The layer's digest.
        digest: Digest,
        /// Its media type.
        media_type: MediaType,
        /// The family converted to.
        target: ImageFormat,
    },
    /// The config descriptor is not an image config (an artifact's, say).
    #[error("the config {digest} has media type {media_type}, which is not an image config")]
    Config {
        /// The config's digest.
        digest: Digest,
        /// Its media type.
        media_type: MediaType,
    },
    /// A manifest field Docker schema 2 does not have.
    #[error("Docker schema 2 manifests have no `{field}`")]
    DockerField {
        /// `annotations`, `subject` or `artifactType`.
        field: &'static str,
    },
}

/// `manifest` in the `to` family: the manifest's, config's and layers' media
/// types replaced by their equivalents; every other field (descriptor
/// annotations and URLs, unknown fields) kept.
pub fn convert_manifest(manifest: &Manifest, to: ImageFormat) -> Result<Manifest, ConversionError> {
    if !manifest.config.media_type.is_config() {
        return Err(ConversionError::Config {
            digest: manifest.config.digest.clone(),
            media_type: manifest.config.media_type.clone(),
        });
    }
    if to == ImageFormat::Docker {
        let present = [
            ("annotations", manifest.annotations.is_some()),
            ("subject", manifest.subject.is_some()),
            ("artifactType", manifest.artifact_type.is_some()),
        ];
        if let Some((field, _)) = present.into_iter().find(|(_, present)| *present) {
            return Err(ConversionError::DockerField { field });
        }
    }
    let mut converted = manifest.clone();
    converted.media_type = Some(to.manifest_media_type());
    converted.config.media_type = to.config_media_type();
    for layer in &mut converted.layers {
        layer.media_type = layer_in(layer, to)?;
    }
    Ok(converted)
}

fn layer_in(layer: &Descriptor, to: ImageFormat) -> Result<MediaType, ConversionError> {
    let equivalent = match to {
        ImageFormat::Oci => layer.media_type.oci_layer_equivalent(),
        ImageFormat::Docker => layer.media_type.docker_layer_equivalent(),
    };
    match equivalent {
        Some(media_type) => Ok(media_type),
        // A type kiln does not know is kept as it is, unless it names the
        // other family: it could only be wrong there.
        None if !layer.media_type.is_layer()
            && layer.media_type.is_docker() == (to == ImageFormat::Docker) =>
        {
            Ok(layer.media_type.clone())
        }
        None => Err(ConversionError::Layer {
            digest: layer.digest.clone(),
            media_type: layer.media_type.clone(),
            target: to,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn descriptor(media_type: MediaType, content: &[u8]) -> Descriptor {
        Descriptor::for_bytes(media_type, content)
    }

    fn docker_manifest() -> Manifest {
        let mut foreign = descriptor(MediaType::DockerForeignLayerGzip, b"foreign");
        foreign.urls = Some(vec!["https://example.invalid/layer".into()]);
        Manifest::new_docker(
            descriptor(MediaType::DockerConfig, b"{}"),
            vec![descriptor(MediaType::DockerLayerGzip, b"one"), foreign],
        )
    }

    #[test]
    fn docker_to_oci_rewrites_media_types_only() {
        let docker = docker_manifest();
        let oci = convert_manifest(&docker, ImageFormat::Oci).unwrap();
        assert_eq!(oci.media_type, Some(MediaType::OciManifest));
        assert_eq!(oci.config.media_type, MediaType::OciConfig);
        assert_eq!(oci.config.digest, docker.config.digest);
        let types: Vec<_> = oci.layers.iter().map(|l| l.media_type.clone()).collect();
        assert_eq!(
            types,
            [
                MediaType::OciLayerGzip,
                MediaType::OciNondistributableLayerGzip
            ]
        );
        for (a, b) in oci.layers.iter().zip(&docker.layers) {
            assert_eq!((&a.digest, a.size, &a.urls), (&b.digest, b.size, &b.urls));
        }
        // And back again, to the same bytes.
        let back = convert_manifest(&oci, ImageFormat::Docker).unwrap();
        assert_eq!(back.to_blob().unwrap(), docker.to_blob().unwrap());
    }

    #[test]
    fn docker_refuses_what_schema_2_cannot_express() {
        let config = descriptor(MediaType::OciConfig, b"{}");
        for media_type in [MediaType::OciLayerZstd, MediaType::OciLayer] {
            let layer = descriptor(media_type.clone(), b"layer");
            let manifest = Manifest::new_oci(config.clone(), vec![layer.clone()]);
            let error = convert_manifest(&manifest, ImageFormat::Docker).unwrap_err();
            assert_eq!(
                error,
                ConversionError::Layer {
                    digest: layer.digest,
                    media_type: media_type.clone(),
                    target: ImageFormat::Docker
                }
            );
            let text = error.to_string();
            assert!(
                text.contains(media_type.as_str()) && text.contains("gzip layers only"),
                "{text}"
            );
            // OCI expresses it.
            assert!(convert_manifest(&manifest, ImageFormat::Oci).is_ok());
        }
        let mut annotated = Manifest::new_oci(config, vec![]);
        annotated.annotations = Some(BTreeMap::from([("a".into(), "b".into())]));
        assert_eq!(
            convert_manifest(&annotated, ImageFormat::Docker).unwrap_err(),
            ConversionError::DockerField {
                field: "annotations"
            }
        );
    }

    #[test]
    fn unknown_layer_types_stay_in_their_own_family_only() {
        let config = descriptor(MediaType::DockerConfig, b"{}");
        let docker_plain = MediaType::parse("application/vnd.docker.image.rootfs.diff.tar");
        let manifest =
            Manifest::new_docker(config.clone(), vec![descriptor(docker_plain.clone(), b"x")]);
        let kept = convert_manifest(&manifest, ImageFormat::Docker).unwrap();
        assert_eq!(kept.layers[0].media_type, docker_plain);
        assert!(matches!(
            convert_manifest(&manifest, ImageFormat::Oci),
            Err(ConversionError::Layer { .. })
        ));
        let artifact = MediaType::parse("application/vnd.example.blob");
        let manifest = Manifest::new_oci(config, vec![descriptor(artifact.clone(), b"y")]);
        let kept = convert_manifest(&manifest, ImageFormat::Oci).unwrap();
        assert_eq!(kept.layers[0].media_type, artifact);
    }

    #[test]
    fn a_non_image_config_is_refused() {
        let manifest = Manifest::new_oci(descriptor(MediaType::OciEmpty, b"{}"), vec![]);
        assert!(matches!(
            convert_manifest(&manifest, ImageFormat::Docker),
            Err(ConversionError::Config { .. })
        ));
    }
}
