//! The push pipeline: the final image's layers go to every destination while
//! the build goes on, instead of all at the end.
//!
//! A layer of a stage whose layers end up in the pushed image (the target and
//! the stages it is built `FROM`) is encoded into the blob store through a
//! [`kiln_registry::GrowingBlobWriter`]; for each destination repository an
//! upload task reads the file as it grows (one `PATCH` streaming every byte
//! as it reaches the disk, the closing `PUT` once the digest is known; the
//! finished blob in one `PUT` where the registry refuses chunks). So the upload of the last layer ends
//! shortly after its encoding, and earlier layers upload while later steps
//! run. At most `max_parallel_uploads` uploads of layers over 1 MiB run at
//! once (each holds a few 1 MiB buffers, whatever the layer's size); smaller
//! finished layers go without waiting for a turn.
//!
//! The stage code is synchronous, so the pipeline owns a small runtime to drive
//! its uploads, through the build's registry client (connections live on
//! kiln-registry's own I/O runtime). Upload progress
//! (each layer once its digest is known, and at its end) is queued by the
//! client's hook and reported as `BlobProgress` events by the build's own
//! thread: at each layer the pipeline encodes, and while `finish` waits. Nothing here pushes
//! a manifest: [`PushPipeline::finish`] waits for every upload and reports the
//! first failure, while the build's final output puts the config and base
//! layers in place beside them; the final push then finds every blob in place
//! (the client remembers what it confirmed: no second `HEAD`) and `PUT`s the
//! manifest. The layers of the image a pushed stage is built `FROM` are
//! mounted into each destination (same registry) when the stage is prepared
//! ([`PushPipeline::mount_base_layers`]), not after its last step. From the
//! first layer on, the client keeps [`SESSIONS_AHEAD`]
//! upload sessions open in each destination, so a finished small layer, and
//! the config, go up in one `PUT` with no `POST` before it; the final push
//! cancels the unused ones beside its manifest `PUT`. A build that fails drops
//! the pipeline, which
//! stops its uploads: blobs may be left in the registry, never a manifest or a
//! tag. `--no-push`, a build without destinations, or
//! [`BuildOptions::push_while_building`] off make no pipeline.

use std::collections::BTreeSet;
use std::io::BufWriter;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt as _;
use kiln_dockerfile::model::{Base as PlanBase, Plan};
use kiln_layer::EncodedLayer;
use kiln_oci::{Digest, Reference};
use kiln_registry::{
    BlobOutcome, BlobProgress, BlobSource, BlobToPush, Client, ProgressHook, RepoRef,
};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::blobs::BlobStore;
use crate::error::BuildError;
use crate::events::{BuildEvent, BuildObserver, Transfer};
use crate::image::ImageState;
use crate::options::BuildOptions;

/// A layer at most this big uploads without waiting for a turn (see
/// [`PushPipeline::encode_and_upload`]).
const SMALL_LAYER: u64 = 1 << 20;

/// Upload sessions kept open ahead in each destination once the first layer is
/// encoded: one for the next layer, one for the config, which goes up beside the
/// last layer (see [`kiln_registry::Client::keep_sessions_ahead`]).
const SESSIONS_AHEAD: usize = 2;

/// The sink a pipelined layer is encoded into.
pub type UploadSink = BufWriter<kiln_registry::GrowingBlobWriter>;

/// One layer's upload to one repository.
struct Upload {
    /// Which [`PushPipeline::encode_and_upload`] call started it (one per layer,
    /// shared by the layer's destinations; calls may run on several threads).
    encoding: u64,
    repo: RepoRef,
    /// The layer's digest once encoded (`None` while it is encoded; an encoding that
    /// fails or is stopped removes its uploads).
    layer: Option<Digest>,
    task: JoinHandle<Result<BlobOutcome, kiln_registry::Error>>,
}

/// The uploads of one build.
pub struct PushPipeline {
    client: Arc<Client>,
    repos: Vec<RepoRef>,
    /// Indices of the stages whose layers are in the pushed image.
    stages: BTreeSet<usize>,
    permits: Arc<Semaphore>,
    uploads: Mutex<Vec<Upload>>,
    /// The next [`Upload::encoding`].
    encodings: std::sync::atomic::AtomicU64,
    /// The mounts of base layers started ahead ([`PushPipeline::mount_base_layers`]).
    mounts: Mutex<Vec<JoinHandle<()>>>,
    progress: Mutex<std::sync::mpsc::Receiver<BlobProgress>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl PushPipeline {
    /// The pipeline `options` ask for: `None` with `--no-push`, without
    /// destinations or with `push_while_building` off.
    /// Its uploads go through the build's registry client (`registry`, made here if
    /// not yet), so the final push knows which blobs they put in place.
    pub fn start(
        options: &BuildOptions,
        plan: &Plan,
        registry: &std::sync::OnceLock<Client>,
    ) -> Result<Option<PushPipeline>, BuildError> {
        if options.no_push || options.destinations.is_empty() || !options.push_while_building {
            return Ok(None);
        }
        let mut repos: Vec<RepoRef> = Vec::new();
        for d in &options.destinations {
            let r = Reference::parse(d)
                .map_err(|e| BuildError::Options(format!("--destination {d:?}: {e}")))?;
            let repo = RepoRef::new(r.registry(), r.repository());
            if !repos.contains(&repo) {
                repos.push(repo);
            }
        }
        let (tx, progress) = std::sync::mpsc::channel();
        let hook = ProgressHook::new(move |p: &BlobProgress| {
            let _ = tx.send(p.clone());
        });
        let client =
            Arc::new(crate::engine::registry_client(registry, options)?.with_progress(hook));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(16)
            .thread_name("kiln-push")
            .enable_all()
            .build()
            .map_err(|e| BuildError::Options(format!("starting the push pipeline: {e}")))?;
        let permits = Arc::new(Semaphore::new(client.options().max_parallel_uploads.max(1)));
        Ok(Some(PushPipeline {
            client,
            repos,
            stages: pushed_stages(plan),
            permits,
            uploads: Mutex::new(Vec::new()),
            encodings: std::sync::atomic::AtomicU64::new(0),
            mounts: Mutex::new(Vec::new()),
            progress: Mutex::new(progress),
            runtime: Some(runtime),
        }))
    }

    /// Whether the layers of stage `index` are in the pushed image.
    pub fn uploads_stage(&self, index: usize) -> bool {
        self.stages.contains(&index)
    }

    /// Puts the layers of `base`, the image a pushed stage is built `FROM`, in every
    /// destination on the same registry as their repository now (a cross-repository
    /// mount, or an upload when the registry declines it and the store has the
    /// layer), rather than beside the config once the last step is done. Best effort:
    /// a failure is only logged; the final push tries again, and a blob put in place
    /// here costs it no request.
    pub fn mount_base_layers(&self, blobs: &BlobStore, base: &ImageState) {
        let mut wanted = Vec::new();
        for repo in &self.repos {
            for layer in &base.layers {
                let Some(origin) = base
                    .origins
                    .get(&layer.digest)
                    .filter(|o| o.registry == repo.registry && o.repository != repo.repository)
                else {
                    continue;
                };
                wanted.push((
                    repo.clone(),
                    BlobToPush {
                        descriptor: layer.clone(),
                        source: BlobSource::File(blobs.path(&layer.digest)),
                        mount_from: Some(origin.clone()),
                    },
                ));
            }
        }
        if wanted.is_empty() {
            return;
        }
        let client = self.client.clone();
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        let task = runtime.spawn(async move {
            push_best_effort(&client, wanted, "mounting a base layer ahead").await
        });
        self.mounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    /// Encodes a layer into the blob store through `encode` (as
    /// `encode_into_store` in `stage/layer.rs` does), uploading the blob to every
    /// destination while it is written.
    pub fn encode_and_upload(
        &self,
        blobs: &BlobStore,
        observer: &dyn BuildObserver,
        encode: impl FnOnce(UploadSink) -> Result<(EncodedLayer, UploadSink), String>,
    ) -> Result<EncodedLayer, String> {
        self.report(observer);
        let temp = blobs.temp_path();
        let file = fs_err::File::create(&temp)
            .map_err(|e| format!("writing the layer: {e}"))?
            .into_parts()
            .0;
        let (writer, growing) = kiln_registry::growing_blob(file, &temp)
            .map_err(|e| format!("writing the layer {}: {e}", temp.display()))?;
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        let encoding = self
            .encodings
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for repo in &self.repos {
            self.client.keep_sessions_ahead(repo, SESSIONS_AHEAD);
            let (client, permits, growing, target) = (
                self.client.clone(),
                self.permits.clone(),
                growing.clone(),
                repo.clone(),
            );
            let task = runtime.spawn(async move {
                // A layer that ended small (a RUN writing a file or two) holds no
                // buffers worth bounding and takes no turn: ten such steps upload at
                // once instead of in waves of `max_parallel_uploads` round trips.
                let _permit = match growing.ends_within(SMALL_LAYER).await {
                    true => None,
                    false => Some(permits.acquire_owned().await),
                };
                client.push_growing_blob(&target, &growing).await
            });
            self.lock().push(Upload {
                encoding,
                repo: repo.clone(),
                layer: None,
                task,
            });
        }
        // A failed (or stopped) encoding drops the writer and its uploads, which
        // leave nothing for `finish` to wait for. A half-written blob (a full disk)
        // must not stay behind, taking space; the error names the blob file, so
        // the directory that filled up.
        let discard = |e: String| {
            self.lock().retain(|u| {
                let mine = u.encoding == encoding;
                if mine {
                    u.task.abort();
                }
                !mine
            });
            let _ = fs_err::remove_file(&temp);
            e
        };
        let (layer, sink) = encode(BufWriter::with_capacity(1 << 20, writer))
            .map_err(|e| discard(format!("{e} (into {})", temp.display())))?;
        let writer = sink.into_inner().map_err(|e| {
            discard(format!(
                "writing the layer {}: {}",
                temp.display(),
                e.error()
            ))
        })?;
        writer.finish(layer.digest.clone());
        for upload in self.lock().iter_mut().filter(|u| u.encoding == encoding) {
            upload.layer = Some(layer.digest.clone());
        }
        blobs
            .insert_file(&temp, &layer.digest)
            .map_err(|e| e.to_string())?;
        self.report(observer);
        Ok(layer)
    }

    /// Reports the progress queued so far.
    fn report(&self, observer: &dyn BuildObserver) {
        let queue = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        while let Ok(p) = queue.try_recv() {
            observer.event(&BuildEvent::BlobProgress {
                transfer: Transfer::Push,
                digest: p.digest.to_string(),
                done: p.done,
                total: Some(p.total),
            });
        }
    }

    /// Cancels the upload sessions opened ahead that no blob took.
    pub async fn close_sessions(&self) {
        let closing = self
            .repos
            .iter()
            .map(|repo| self.client.close_sessions_ahead(repo));
        futures_util::future::join_all(closing).await;
    }

    /// The destination repositories.
    pub fn repos(&self) -> &[RepoRef] {
        &self.repos
    }

    /// The layers uploaded (or being uploaded) by the pipeline.
    pub fn layers(&self) -> BTreeSet<Digest> {
        self.lock().iter().filter_map(|u| u.layer.clone()).collect()
    }

    /// Waits for every upload, reporting progress; the first failure is the error.
    pub async fn finish(&self, observer: &dyn BuildObserver) -> Result<(), BuildError> {
        let mounts = std::mem::take(&mut *self.mounts.lock().unwrap_or_else(|e| e.into_inner()));
        for mount in mounts {
            // failures were logged; the final push tries again
            let _ = mount.await;
        }
        let uploads = std::mem::take(&mut *self.lock());
        for upload in uploads {
            let layer = upload
                .layer
                .map_or_else(|| "a layer".to_string(), |d| format!("layer {d}"));
            let failed = |reason: String| {
                BuildError::Registry(format!(
                    "pushing the image: uploading {layer} to {} while building: {reason}",
                    upload.repo
                ))
            };
            let joined = upload.task.await;
            self.report(observer);
            match joined {
                Ok(Ok(outcome)) => {
                    tracing::debug!(%layer, repo = %upload.repo, ?outcome, "layer uploaded while building")
                }
                Ok(Err(e)) => return Err(failed(e.to_string())),
                Err(e) => return Err(failed(format!("the upload task ended: {e}"))),
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Upload>> {
        self.uploads.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for PushPipeline {
    fn drop(&mut self) {
        // Stops unfinished uploads; dropping a runtime may block, which must
        // never happen on the caller's runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Puts each blob in its repository, at most the client's `max_parallel_uploads`
/// at once, ahead of the final push. Best effort: a failure is only logged (as
/// `what` failing); the final push tries again and reports it (or fetches a base
/// layer that could not be mounted).
pub(crate) async fn push_best_effort(
    client: &Client,
    wanted: Vec<(RepoRef, BlobToPush)>,
    what: &str,
) {
    let bound = client.options().max_parallel_uploads.max(1);
    futures_util::stream::iter(wanted)
        .map(|(repo, blob)| async move {
            if let Err(e) = client.push_blob(&repo, &blob).await {
                tracing::debug!(error = %e, %repo, digest = %blob.descriptor.digest, "{what} failed; the final push tries again");
            }
        })
        .buffer_unordered(bound)
        .collect::<Vec<()>>()
        .await;
}

/// The target stage and every stage it is built `FROM`, directly or not.
fn pushed_stages(plan: &Plan) -> BTreeSet<usize> {
    let mut stages = BTreeSet::new();
    let mut next = Some(plan.target().index);
    while let Some(index) = next.filter(|i| stages.insert(*i)) {
        next = plan
            .stages
            .iter()
            .find(|s| s.index == index)
            .and_then(|s| match s.base {
                PlanBase::Stage(base) => Some(base),
                _ => None,
            });
    }
    stages
}
