//! Consistency checks between a manifest and its config, in the spirit of
//! go-containerregistry's `validate`: cheap checks that catch an image that registries
//! or runtimes would reject, before it is pushed or written.

use crate::config::ImageConfig;
use crate::manifest::Manifest;
use crate::media_type::LayerCompression;

/// The problems found in an image; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image is inconsistent: {}", problems.join("; "))]
pub struct ValidationError {
    /// One sentence per problem.
    pub problems: Vec<String>,
}

/// Checks that `manifest` and `config` describe the same image:
///
/// - the config descriptor has a config media type of the manifest's family (OCI
///   manifests may also carry artifacts, whose config type is free);
/// - there are as many layers as `rootfs.diff_ids`;
/// - when there is history, as many entries without `empty_layer` as layers;
/// - an uncompressed layer's digest equals its diff ID;
/// - `rootfs.type` is `layers`, and `os`/`architecture` are set.
pub fn validate_image(manifest: &Manifest, config: &ImageConfig) -> Result<(), ValidationError> {
    let mut problems = Vec::new();
    let config_type = &manifest.config.media_type;
    let manifest_type = manifest.effective_media_type();
    if manifest_type.is_docker() && !(config_type.is_config() && config_type.is_docker()) {
        problems.push(format!(
            "a Docker manifest needs a Docker config, not {config_type}"
        ));
    }
    if !manifest_type.is_docker() && config_type.is_config() && config_type.is_docker() {
        problems.push(format!(
            "an OCI manifest needs an OCI config, not {config_type}"
        ));
    }
    let diff_ids = &config.rootfs.diff_ids;
    if manifest.layers.len() != diff_ids.len() {
        problems.push(format!(
            "the manifest has {} layers but the config lists {} diff_ids",
            manifest.layers.len(),
            diff_ids.len()
        ));
    }
    if let Some(history) = &config.history {
        let with_layer = history.iter().filter(|h| h.has_layer()).count();
        if with_layer != diff_ids.len() {
            problems.push(format!(
                "the history has {with_layer} entries with a layer but rootfs has {} diff_ids",
                diff_ids.len()
            ));
        }
    }
    for (index, (layer, diff_id)) in manifest.layers.iter().zip(diff_ids).enumerate() {
        if layer.media_type.layer_compression() == Some(LayerCompression::None)
            && layer.digest != *diff_id
        {
            problems.push(format!(
                "layer {index} is uncompressed but its digest {} differs from its diff_id {diff_id}",
                layer.digest
            ));
        }
        if manifest_type.is_docker() && !layer.media_type.is_docker() {
            problems.push(format!(
                "layer {index} of a Docker manifest has the non-Docker media type {}",
                layer.media_type
            ));
        }
    }
    if config.rootfs.kind != "layers" {
        problems.push(format!(
            "rootfs.type is {:?}, expected \"layers\"",
            config.rootfs.kind
        ));
    }
    if config_type.is_config() && (config.os.is_empty() || config.architecture.is_empty()) {
        problems.push("the config does not name its os and architecture".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ValidationError { problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Descriptor, Digest, History, MediaType, Platform};

    fn image(layers: usize, gzip: bool) -> (Manifest, ImageConfig) {
        let mut config = ImageConfig::for_platform(&Platform::new("linux", "amd64"));
        let mut descriptors = Vec::new();
        for index in 0..layers {
            let tar = format!("layer {index}");
            let diff_id = Digest::sha256_of(tar.as_bytes());
            descriptors.push(if gzip {
                Descriptor::for_bytes(MediaType::OciLayerGzip, format!("gz {index}").as_bytes())
            } else {
                Descriptor::new(MediaType::OciLayer, diff_id.clone(), tar.len() as u64)
            });
            config.push_layer(diff_id, History::default());
        }
        config.push_empty_step(History::default());
        let (config_descriptor, _) = config.to_blob(MediaType::OciConfig).unwrap();
        (Manifest::new_oci(config_descriptor, descriptors), config)
    }

    #[test]
    fn consistent_images_pass() {
        for (layers, gzip) in [(0, false), (2, false), (3, true)] {
            let (manifest, config) = image(layers, gzip);
            validate_image(&manifest, &config).unwrap();
        }
    }

    #[test]
    fn every_problem_is_reported() {
        let (mut manifest, mut config) = image(2, false);
        manifest.layers[1].digest = Digest::sha256_of(b"other");
        manifest.layers.push(manifest.layers[0].clone());
        config.rootfs.kind = "layer".to_owned();
        config.os.clear();
        let error = validate_image(&manifest, &config).unwrap_err();
        let text = error.to_string();
        assert_eq!(error.problems.len(), 4, "{text}");
        assert!(
            text.contains("3 layers but the config lists 2 diff_ids"),
            "{text}"
        );
        assert!(text.contains("layer 1 is uncompressed"), "{text}");
        assert!(text.contains("rootfs.type is \"layer\""), "{text}");
        assert!(text.contains("os and architecture"), "{text}");

        let (mut manifest, mut config) = image(1, true);
        manifest.media_type = Some(MediaType::DockerManifest);
        config.push_layer(Digest::sha256_of(b"x"), History::default());
        let text = validate_image(&manifest, &config).unwrap_err().to_string();
        assert!(text.contains("needs a Docker config"), "{text}");
        assert!(text.contains("non-Docker media type"), "{text}");
        assert!(text.contains("1 layers but the config lists 2"), "{text}");
    }
}
