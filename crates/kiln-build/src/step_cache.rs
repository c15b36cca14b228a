//! The engine's side of the layer cache (`--cache`): lookups made from the
//! synchronous stage code, the registry client its layers (and the base's,
//! fetched lazily) are downloaded with, and stores pushed in the background
//! while the build goes on.
//!
//! The stage code runs on a thread of the caller's runtime and cannot await;
//! the cache therefore owns a small runtime of its own, and talks through the
//! build's one registry client (its connections live on kiln-registry's I/O
//! runtime, whichever runtime drives a request). A lookup is a task on that runtime whose answer comes back on a
//! channel; a store is a task whose handle is kept until [`StepCache::finish`],
//! which waits for every store and turns failures into warnings. Nothing the
//! cache does can fail a build: a lookup error is a miss, a store error a
//! warning.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use kiln_cache::{CacheRepo, LayerCache, LayerSource, Lookup, StepToStore};
use kiln_oci::{Descriptor, Digest, Platform};
use kiln_registry::{Client, RepoRef};

use crate::blobs::BlobStore;
use crate::error::BuildError;
use crate::events::{BuildEvent, BuildObserver};
use crate::options::BuildOptions;

/// What a hit hands to the stage.
pub struct Hit {
    /// The layer and its diff ID (`None`: the step changed nothing).
    pub layer: Option<(Descriptor, Digest)>,
    /// Where a registry-held layer can be fetched or mounted from.
    pub origin: Option<RepoRef>,
}

/// The cache of one build.
pub struct StepCache {
    cache: Arc<LayerCache>,
    client: Arc<Client>,
    runtime: Option<tokio::runtime::Runtime>,
    stores: Mutex<Vec<tokio::task::JoinHandle<Result<(), String>>>>,
    /// `--cache-run-layers`.
    pub run_layers: bool,
    /// `--cache-copy-layers`.
    pub copy_layers: bool,
    push: bool,
}

impl StepCache {
    /// The cache `options` ask for, if any. A cache with nowhere to live
    /// (no `--cache-repo`, no `--destination`) is a warning and no cache, as
    /// kaniko builds on without one.
    pub fn open(
        options: &BuildOptions,
        platform: &Platform,
        observer: &dyn BuildObserver,
        registry: &std::sync::OnceLock<kiln_registry::Client>,
    ) -> Result<Option<StepCache>, BuildError> {
        if !options.cache.enabled {
            return Ok(None);
        }
        let repo = match CacheRepo::from_flags(options.cache.repo.as_deref(), &options.destinations)
        {
            Ok(repo) => repo,
            Err(e @ kiln_cache::CacheError::NoRepo) => {
                warn(observer, format!("{e}; building without the layer cache"));
                return Ok(None);
            }
            Err(e) => return Err(BuildError::Options(e.to_string())),
        };
        let client = Arc::new(crate::engine::registry_client(registry, options)?.clone());
        let cache = match repo {
            CacheRepo::Registry(repo) => {
                LayerCache::in_registry(repo, client.clone(), options.cache.ttl, platform.clone())
            }
            CacheRepo::Layout(dir) => {
                LayerCache::in_layout(dir, options.cache.ttl, platform.clone())
            }
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kiln-cache")
            .enable_all()
            .build()
            .map_err(|e| BuildError::Options(format!("starting the cache's runtime: {e}")))?;
        tracing::info!(cache = %cache.repo(), "layer cache on");
        Ok(Some(StepCache {
            cache: Arc::new(cache),
            client,
            runtime: Some(runtime),
            stores: Mutex::new(Vec::new()),
            run_layers: options.cache.run_layers,
            copy_layers: options.cache.copy_layers,
            push: !options.cache.no_push,
        }))
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives until drop")
    }

    /// Runs `future` on the cache's runtime and waits for it (from synchronous code).
    fn wait<T: Send + 'static>(
        &self,
        future: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.runtime().spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv().ok()
    }

    /// Looks `key` up. Layout-held layers are copied into the blob store;
    /// errors are warnings and count as misses.
    pub fn lookup(
        &self,
        key: &Digest,
        blobs: &BlobStore,
        observer: &dyn BuildObserver,
    ) -> Option<Hit> {
        let cache = self.cache.clone();
        let k = key.clone();
        let answer = self.wait(async move { cache.lookup(&k, SystemTime::now()).await })?;
        match answer {
            Ok(Lookup::Hit { step, source }) => {
                let origin = match source {
                    LayerSource::Registry(repo) => Some(repo),
                    LayerSource::File(path) => {
                        let digest = &step.layer.as_ref()?.0.digest;
                        if !blobs.contains(digest) {
                            let temp = blobs.temp_path();
                            if let Err(e) = fs_err::copy(&path, &temp)
                                .map_err(|e| e.to_string())
                                .and_then(|_| {
                                    blobs.insert_file(&temp, digest).map_err(|e| e.to_string())
                                })
                            {
                                warn(
                                    observer,
                                    format!("layer cache: reading {}: {e}", path.display()),
                                );
                                return None;
                            }
                        }
                        None
                    }
                    LayerSource::Nothing => None,
                };
                Some(Hit {
                    layer: step.layer,
                    origin,
                })
            }
            Ok(Lookup::Absent) => None,
            Ok(Lookup::Expired { age }) => {
                tracing::debug!(%key, age_secs = age.as_secs(), "cache entry older than --cache-ttl");
                None
            }
            Err(e) => {
                warn(observer, format!("{e}; running the step"));
                None
            }
        }
    }

    /// Stores a missed step in the background (unless `--no-push-cache`).
    pub fn store_in_background(&self, step: StepToStore) {
        if !self.push {
            return;
        }
        let cache = self.cache.clone();
        let handle = self
            .runtime()
            .spawn(async move { cache.store(&step).await.map_err(|e| e.to_string()) });
        self.stores.lock().expect("not poisoned").push(handle);
    }

    /// The build's registry client, as the cache holds it: the stage fetches the base and cached
    /// layers it lacks with it, through the pull pipeline
    /// (`pull::pipeline::Fetch::plan_layers`).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Waits for the background stores; a failed one is a warning.
    pub async fn finish(mut self, observer: &dyn BuildObserver) {
        let stores = std::mem::take(&mut *self.stores.lock().expect("not poisoned"));
        let (mut stored, mut failed) = (0, 0);
        for handle in stores {
            match handle.await {
                Ok(Ok(())) => stored += 1,
                Ok(Err(e)) => {
                    failed += 1;
                    warn(observer, format!("pushing to the layer cache failed: {e}"));
                }
                Err(e) => {
                    failed += 1;
                    warn(observer, format!("pushing to the layer cache failed: {e}"));
                }
            }
        }
        tracing::info!(cache = %self.cache.repo(), stored, failed, "layer cache updated");
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for StepCache {
    fn drop(&mut self) {
        // Dropping a runtime may block; never do that on the caller's runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn warn(observer: &dyn BuildObserver, message: String) {
    observer.event(&BuildEvent::Warning { message });
}
