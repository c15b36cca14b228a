//! An image under construction: config, layer descriptors (blobs in the
//! store), and the manifest format it will be written in.

use std::collections::BTreeMap;

use kiln_oci::{Descriptor, Digest, ImageConfig, LayerCompression, Manifest, MediaType};
use kiln_registry::RepoRef;

/// Manifest family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/vnd.oci.image.manifest.v1+json`.
    Oci,
    /// Docker schema 2.
    Docker,
}

/// Config and layers of a stage.
#[derive(Debug, Clone)]
pub struct ImageState {
    /// The image config (Docker+OCI superset).
    pub config: ImageConfig,
    /// Layer descriptors, base first. Layers made by the build are in the blob
    /// store; base layers are fetched from `origins` only when needed.
    pub layers: Vec<Descriptor>,
    /// Where base layers not yet in the store can be fetched (and mounted from).
    pub origins: BTreeMap<Digest, RepoRef>,
    /// Manifest format (follows the base).
    pub format: Format,
}

impl ImageState {
    /// The manifest for this image with `config` as its config descriptor,
    /// converting layer media types to the manifest's family.
    pub fn manifest(&self, config: Descriptor) -> Manifest {
        let layers = self
            .layers
            .iter()
            .map(|d| {
                let mut d = d.clone();
                d.media_type = layer_media_type(self.format, &d.media_type);
                d
            })
            .collect();
        match self.format {
            Format::Oci => Manifest::new_oci(config, layers),
            Format::Docker => Manifest::new_docker(config, layers),
        }
    }

    /// Config media type for the format.
    pub fn config_media_type(&self) -> MediaType {
        match self.format {
            Format::Oci => MediaType::OciConfig,
            Format::Docker => MediaType::DockerConfig,
        }
    }
}

/// The layer media type `current` becomes in `format`.
pub fn layer_media_type(format: Format, current: &MediaType) -> MediaType {
    match (format, current.layer_compression()) {
        (Format::Docker, Some(LayerCompression::Gzip)) => MediaType::DockerLayerGzip,
        (Format::Oci, Some(c)) => MediaType::oci_layer(c),
        _ => current.clone(),
    }
}
