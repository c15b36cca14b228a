//! An image under construction: config, layer descriptors (blobs in the
//! store), and the manifest family its base image uses.

use std::collections::BTreeMap;

use kiln_oci::{ConversionError, Descriptor, Digest, ImageConfig, Manifest};
use kiln_registry::RepoRef;

/// Manifest family (OCI or Docker schema 2).
pub use kiln_oci::ImageFormat as Format;

/// Config and layers of a stage.
#[derive(Debug, Clone)]
pub struct ImageState {
    /// The image config (Docker+OCI superset).
    pub config: ImageConfig,
    /// Layer descriptors, base first, with the media types they came with
    /// (the base's, or OCI for layers the build made). Layers made by the build
    /// are in the blob store; base layers are fetched from `origins` only when
    /// needed.
    pub layers: Vec<Descriptor>,
    /// Where base layers not yet in the store can be fetched (and mounted from).
    pub origins: BTreeMap<Digest, RepoRef>,
    /// The base image's manifest family (OCI on scratch); the default output
    /// format follows it.
    pub format: Format,
}

impl ImageState {
    /// The manifest for this image in `format`, with `config` as its config
    /// descriptor (whose media type is set to the format's). Layer media types
    /// are converted; the blobs are the same whichever the format.
    pub fn manifest(
        &self,
        format: Format,
        config: Descriptor,
    ) -> Result<Manifest, ConversionError> {
        kiln_oci::convert_manifest(&Manifest::new_oci(config, self.layers.clone()), format)
    }

    /// The format used when the user does not choose one: the base's, unless a
    /// layer has no Docker schema 2 type (zstd, uncompressed), then OCI.
    pub fn default_format(&self) -> Format {
        let docker_expressible = self.layers.iter().all(|l| {
            l.media_type.docker_layer_equivalent().is_some()
                || (!l.media_type.is_layer() && l.media_type.is_docker())
        });
        match self.format {
            Format::Docker if docker_expressible => Format::Docker,
            _ => Format::Oci,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_oci::MediaType;

    fn image(format: Format, layer_types: &[MediaType]) -> ImageState {
        ImageState {
            config: ImageConfig::default(),
            layers: layer_types
                .iter()
                .enumerate()
                .map(|(i, t)| Descriptor::for_bytes(t.clone(), i.to_string().as_bytes()))
                .collect(),
            origins: BTreeMap::new(),
            format,
        }
    }

    #[test]
    fn the_default_follows_the_base_unless_docker_cannot_hold_a_layer() {
        let docker_base = [MediaType::DockerLayerGzip, MediaType::OciLayerGzip];
        assert_eq!(
            image(Format::Docker, &docker_base).default_format(),
            Format::Docker
        );
        assert_eq!(
            image(Format::Oci, &docker_base).default_format(),
            Format::Oci
        );
        let with_zstd = [MediaType::DockerLayerGzip, MediaType::OciLayerZstd];
        assert_eq!(
            image(Format::Docker, &with_zstd).default_format(),
            Format::Oci
        );
    }

    #[test]
    fn manifests_in_both_formats_name_the_same_blobs() {
        let state = image(
            Format::Docker,
            &[MediaType::DockerLayerGzip, MediaType::OciLayerGzip],
        );
        let config = Descriptor::for_bytes(MediaType::OciConfig, b"{}");
        let oci = state.manifest(Format::Oci, config.clone()).unwrap();
        let docker = state.manifest(Format::Docker, config).unwrap();
        assert_eq!(oci.config.media_type, MediaType::OciConfig);
        assert_eq!(docker.config.media_type, MediaType::DockerConfig);
        assert!(
            oci.layers
                .iter()
                .all(|l| l.media_type == MediaType::OciLayerGzip)
        );
        assert!(
            docker
                .layers
                .iter()
                .all(|l| l.media_type == MediaType::DockerLayerGzip)
        );
        let digests = |m: &Manifest| {
            m.layers
                .iter()
                .map(|l| l.digest.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(digests(&oci), digests(&docker));
        assert_eq!(oci.config.digest, docker.config.digest);
    }
}
