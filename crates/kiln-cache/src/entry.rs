//! One cached step as an image: a manifest whose single layer (or none, for a
//! step that changed nothing) is the step's layer, and whose config records the
//! step's history line, the layer's diff ID, the key it was stored under and
//! when (for `--cache-ttl`). Registries and `skopeo` see an ordinary image.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kiln_oci::{Descriptor, Digest, History, ImageConfig, Manifest, MediaType, Platform};

/// Config label holding the step key the entry was stored under.
pub const KEY_LABEL: &str = "dev.kiln.cache.key";
/// Config label holding the entry's creation time (Unix seconds).
pub const CREATED_LABEL: &str = "dev.kiln.cache.created";

/// What a step left behind, as the cache keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedStep {
    /// The step's layer and its diff ID; `None` when the step changed nothing.
    pub layer: Option<(Descriptor, Digest)>,
    /// The history `created_by` of the step.
    pub created_by: String,
    /// When the entry was stored.
    pub stored: SystemTime,
}

impl CachedStep {
    /// Age of the entry at `now` (zero for entries from the future).
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.stored).unwrap_or_default()
    }
}

/// The config and manifest that store `step` under `key`.
pub fn encode(
    key: &Digest,
    step: &CachedStep,
    platform: &Platform,
) -> Result<(Manifest, Vec<u8>), String> {
    let mut config = ImageConfig::for_platform(platform);
    config.rootfs.kind = "layers".into();
    let secs = step
        .stored
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    config.created = Some(kiln_oci::rfc3339_utc(secs as i64, 0));
    let labels = config
        .container_config_mut()
        .labels
        .get_or_insert_with(Default::default);
    labels.insert(KEY_LABEL.into(), key.to_string());
    labels.insert(CREATED_LABEL.into(), secs.to_string());
    let history = History {
        created: config.created.clone(),
        created_by: Some(step.created_by.clone()),
        ..History::default()
    };
    let layers = match &step.layer {
        Some((descriptor, diff_id)) => {
            config.push_layer(diff_id.clone(), history);
            vec![descriptor.clone()]
        }
        None => {
            config.push_empty_step(history);
            Vec::new()
        }
    };
    let (config_descriptor, config_bytes) = config
        .to_blob(MediaType::OciConfig)
        .map_err(|e| format!("serialising the entry's config: {e}"))?;
    Ok((Manifest::new_oci(config_descriptor, layers), config_bytes))
}

/// Reads an entry back, checking that it was stored under `key` by kiln.
pub fn decode(key: &Digest, manifest: &Manifest, config: &[u8]) -> Result<CachedStep, String> {
    let config =
        ImageConfig::from_slice(config).map_err(|e| format!("its config does not parse: {e}"))?;
    let labels = config
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .ok_or("its config has no kiln labels")?;
    let stored_key = labels.get(KEY_LABEL).ok_or("its config has no key label")?;
    if *stored_key != key.to_string() {
        return Err(format!("it was stored for key {stored_key}"));
    }
    let secs: u64 = labels
        .get(CREATED_LABEL)
        .and_then(|s| s.parse().ok())
        .ok_or("its config has no valid creation time")?;
    let history = config
        .history
        .as_ref()
        .and_then(|h| h.first())
        .ok_or("its config has no history")?;
    let created_by = history.created_by.clone().unwrap_or_default();
    let layer = match (
        manifest.layers.as_slice(),
        config.rootfs.diff_ids.as_slice(),
    ) {
        ([], []) => None,
        ([layer], [diff_id]) => Some((layer.clone(), diff_id.clone())),
        (l, d) => {
            return Err(format!(
                "it has {} layers and {} diff IDs; a step has at most one",
                l.len(),
                d.len()
            ));
        }
    };
    Ok(CachedStep {
        layer,
        created_by,
        stored: UNIX_EPOCH + Duration::from_secs(secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform() -> Platform {
        "linux/amd64".parse().unwrap()
    }

    #[test]
    fn round_trip_with_and_without_a_layer() {
        let key = Digest::sha256_of(b"key");
        let layer = Descriptor::new(MediaType::OciLayerGzip, Digest::sha256_of(b"layer"), 5);
        for l in [Some((layer, Digest::sha256_of(b"diff"))), None] {
            let step = CachedStep {
                layer: l,
                created_by: "RUN make # buildkit".into(),
                stored: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            };
            let (manifest, config) = encode(&key, &step, &platform()).unwrap();
            assert_eq!(decode(&key, &manifest, &config).unwrap(), step);
        }
    }

    #[test]
    fn an_entry_for_another_key_is_refused() {
        let step = CachedStep {
            layer: None,
            created_by: "RUN x".into(),
            stored: SystemTime::now(),
        };
        let (manifest, config) = encode(&Digest::sha256_of(b"a"), &step, &platform()).unwrap();
        let e = decode(&Digest::sha256_of(b"b"), &manifest, &config).unwrap_err();
        assert!(e.contains("stored for key"), "{e}");
        let e = decode(&Digest::sha256_of(b"a"), &manifest, b"{}").unwrap_err();
        assert!(e.contains("no kiln labels"), "{e}");
    }
}
