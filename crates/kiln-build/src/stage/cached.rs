//! The layer cache (`--cache`) seen from a stage: whether a kind of step is
//! served by it, a step's lookup (a hit adds its layer to the image, and to
//! the files only once they are laid out) and the background store of a
//! step that missed.

use kiln_oci::Digest;

use crate::events::BuildEvent;

use super::state::{StageRun, StepResult};

/// Kinds of cacheable steps (`--cache-run-layers`, `--cache-copy-layers`;
/// WORKDIR is always cached so that it never forces the filesystem out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cacheable {
    Run,
    Copy,
    Workdir,
}

impl<'a, 'b> StageRun<'a, 'b> {
    /// Whether steps of `kind` are looked up in (and stored into) a cache.
    pub(super) fn caches_steps(&self, kind: Cacheable) -> bool {
        self.caches(kind).is_some()
    }

    /// The cache that serves steps of `kind` in this build, if any.
    fn caches(&self, kind: Cacheable) -> Option<&'b crate::step_cache::StepCache> {
        let cache = self.env.cache?;
        let on = match kind {
            Cacheable::Run => cache.run_layers,
            Cacheable::Copy => cache.copy_layers,
            Cacheable::Workdir => true,
        };
        (on && !self.env.options.single_snapshot).then_some(cache)
    }

    /// The cached result of the step with `key`, applied to the stage: its
    /// layer is added to the image, and to the files only once they are laid
    /// out. `None`: not cached, run the step.
    pub(super) fn cached(
        &mut self,
        kind: Cacheable,
        key: &Digest,
        created_by: &str,
    ) -> StepResult<Option<Option<Digest>>> {
        let Some(cache) = self.caches(kind) else {
            return Ok(None);
        };
        let hit = cache.lookup(key, self.env.blobs, self.env.observer);
        tracing::debug!(%key, hit = hit.is_some(), "cache lookup");
        self.env.observer.event(&BuildEvent::CacheLookup {
            id: self.current_step.clone(),
            key: key.to_string(),
            hit: hit.is_some(),
        });
        let Some(hit) = hit else {
            return Ok(None);
        };
        let history = self.history(created_by.to_string());
        let Some((layer, diff_id)) = hit.layer else {
            self.image.config.push_empty_step(history);
            return Ok(Some(None));
        };
        if let Some(origin) = hit.origin {
            self.image.origins.insert(layer.digest.clone(), origin);
        }
        if let Some(root) = &self.rootfs {
            let layers = std::slice::from_ref(&layer);
            self.while_fetching(layers, || {
                crate::unpack::unpack_layers(
                    self.env.blobs,
                    layers,
                    root,
                    self.env.options.retries.image_fs_extract_retry,
                )
            })?;
            // The next RUN takes a fresh baseline.
            self.snapshotter = None;
        } else if let Some(pending) = &mut self.pending {
            pending.layers.push(layer.clone());
        } else {
            return Err("internal: a cached layer for a stage without files".into());
        }
        self.image.config.push_layer(diff_id, history);
        let digest = layer.digest.clone();
        self.image.layers.push(layer);
        Ok(Some(Some(digest)))
    }

    /// Stores what a step that missed left, in the background.
    pub(super) fn remember(
        &self,
        kind: Cacheable,
        key: Digest,
        created_by: String,
        layer: Option<&Digest>,
    ) {
        let Some(cache) = self.caches(kind) else {
            return;
        };
        let layer = layer.and_then(|digest| {
            let descriptor = self.image.layers.last().filter(|d| d.digest == *digest)?;
            let diff_id = self.image.config.rootfs.diff_ids.last()?;
            Some((descriptor.clone(), diff_id.clone()))
        });
        cache.store_in_background(kiln_cache::StepToStore {
            key,
            blob: layer.as_ref().map(|(d, _)| self.env.blobs.path(&d.digest)),
            step: kiln_cache::CachedStep {
                layer,
                created_by,
                stored: std::time::SystemTime::now(),
            },
        });
    }
}
