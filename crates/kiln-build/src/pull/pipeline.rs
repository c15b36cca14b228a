//! The pull pipeline: a base image's missing layers download concurrently
//! while the stage unpacks them, each layer applied from its stream as it
//! arrives.
//!
//! ```text
//! registry --GET x CONCURRENT--> blobs/sha256/HEX.<pid>-<n>.partial --rename when verified--> HEX
//!                                      |  (page cache)
//!                                      v
//!                ArrivalReader (layer N) -> decompress + sha256 -> applier -> stage root
//! ```
//!
//! - [`Fetch::plan`] (on the engine's task, before the stage runs) names the
//!   layers missing from the store and their origins; a layer with no origin
//!   is an error there, as before. With the layer cache on, a stage lays its
//!   files out only when a step needs them; it then plans the base and cached
//!   layers it still lacks itself ([`Fetch::plan_layers`], with the cache's
//!   registry client) and unpacks them through [`while_fetching`] the same way.
//! - [`while_fetching`] runs the stage (synchronous code) on the calling
//!   thread while a scoped thread drives the downloads on a private
//!   current-thread runtime: at most [`CONCURRENT`] at once, started in
//!   layer order, each written to a partial file of its own next to the store's `HEX` and renamed into
//!   place only once its size and digest are verified (kiln-registry's blob
//!   download, unchanged: retries, redirects, progress events). Each is
//!   registered in the store as an [`Arrival`] while it runs.
//! - The stage's unpacking (`unpack::unpack_layers`, in layer order) applies a
//!   stored blob from its file and an arriving one through an
//!   `ArrivalReader`, which ends only when the download has verified the
//!   blob. Layer N+1 is applied after N; downloads run ahead into the store.
//!
//! **The root of a stage whose layer turns out corrupt is never used.** The
//! applier hashes exactly the bytes it applied and compares the digest and
//! size when the stream ends, and the reader's end of file waits for the
//! download's own verification, whose failure is a read error. Either way
//! `unpack_layers` returns an error, so the stage never records the root as
//! laid out (`StageRun::root` sets it only on success), no step runs on it,
//! the build fails, nothing is pushed, and the work dir holding the root is
//! removed with the build's other files. A failed stage cancels the
//! downloads still running and removes their partial files.

use std::collections::BTreeMap;
use std::sync::Arc;

use kiln_oci::{Descriptor, Digest};
use kiln_registry::{Client, RepoRef};

use crate::blobs::BlobStore;
use crate::events::BuildObserver;
use crate::image::ImageState;
use crate::pull::arrival::Arrival;

/// Layer downloads running at once.
pub const CONCURRENT: usize = 3;

/// The downloads a stage needs: its layers missing from the store.
pub struct Fetch {
    client: Client,
    layers: Vec<(Descriptor, RepoRef)>,
}

impl Fetch {
    /// The layers of `image` missing from `blobs`, with where to fetch them.
    pub fn plan(client: &Client, blobs: &BlobStore, image: &ImageState) -> Result<Fetch, String> {
        Fetch::plan_layers(client, blobs, &image.layers, &image.origins)
    }

    /// The `layers` missing from `blobs`, fetched from their `origins` (a
    /// stage's base and cached layers, with the layer cache on).
    pub fn plan_layers(
        client: &Client,
        blobs: &BlobStore,
        layers: &[Descriptor],
        origins: &BTreeMap<Digest, RepoRef>,
    ) -> Result<Fetch, String> {
        let mut wanted = Vec::new();
        for layer in layers.iter().filter(|l| !blobs.contains(&l.digest)) {
            let origin = origins.get(&layer.digest).ok_or_else(|| {
                format!(
                    "layer {} is neither in the blob store nor in a known repository",
                    layer.digest
                )
            })?;
            wanted.push((layer.clone(), origin.clone()));
        }
        Ok(Fetch {
            client: client.clone(),
            layers: wanted,
        })
    }
}

/// Runs `work` (which unpacks the planned layers) while `fetch` downloads
/// them; see the module documentation. Returns `work`'s result, after the
/// downloads ended (or were cancelled, when `work` failed).
pub fn while_fetching<T, E>(
    fetch: Option<Fetch>,
    blobs: &BlobStore,
    observer: &dyn BuildObserver,
    work: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let Some(fetch) = fetch else {
        return work();
    };
    // another stage may have fetched some meanwhile, or be fetching them
    let wanted: Vec<(Descriptor, RepoRef, Arc<Arrival>)> = fetch
        .layers
        .into_iter()
        .filter(|(layer, _)| !blobs.contains(&layer.digest))
        .filter_map(|(layer, origin)| {
            let arrival = blobs.expect_arrival(&layer.digest)?;
            Some((layer, origin, arrival))
        })
        .collect();
    if wanted.is_empty() {
        return work();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            // unpacking then reports the download's failure for each layer
            for (layer, _, arrival) in &wanted {
                arrival.finish(Err(format!(
                    "pulling layer {}: cannot start the download runtime: {e}",
                    layer.digest
                )));
            }
            let out = work();
            forget(blobs, &wanted);
            return out;
        }
    };
    let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
    let jobs: Vec<_> = wanted
        .iter()
        .map(|(layer, origin, arrival)| {
            (
                layer.clone(),
                origin.clone(),
                arrival.clone(),
                blobs.path(&layer.digest),
            )
        })
        .collect();
    let client = fetch.client;
    let out = std::thread::scope(|scope| {
        let downloads = scope.spawn(move || {
            runtime.block_on(async move {
                let all = super::progress::reporting(&client, observer, |client| {
                    download_all(client, jobs)
                });
                // a dropped sender (the stage succeeded) lets the downloads finish
                let stop = async {
                    if cancelled.await.is_err() {
                        std::future::pending::<()>().await;
                    }
                };
                tokio::select! {
                    () = all => {}
                    () = stop => tracing::debug!("stage failed: layer downloads cancelled"),
                }
            });
            // dropping the runtime ends the cancelled downloads' tasks
            drop(runtime);
        });
        let out = work();
        if out.is_err() {
            let _ = cancel.send(());
        } else {
            drop(cancel);
        }
        if downloads.join().is_err() {
            tracing::warn!("the layer download thread panicked");
        }
        out
    });
    for (layer, _, arrival) in &wanted {
        arrival.cancel(&format!(
            "the download of layer {} was cancelled: the stage that started it failed",
            layer.digest
        ));
        if !arrival.is_stored() {
            if let Some(partial) = arrival.partial() {
                let _ = std::fs::remove_file(partial);
            }
            if out.is_ok() {
                tracing::warn!(layer = %layer.digest, "a base layer the stage did not unpack failed to download");
            }
        }
    }
    forget(blobs, &wanted);
    out
}

fn forget(blobs: &BlobStore, wanted: &[(Descriptor, RepoRef, Arc<Arrival>)]) {
    for (layer, _, _) in wanted {
        blobs.forget_arrival(&layer.digest);
    }
}

/// Downloads every job, [`CONCURRENT`] at once, started in order.
async fn download_all(
    client: Client,
    jobs: Vec<(Descriptor, RepoRef, Arc<Arrival>, std::path::PathBuf)>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENT));
    let mut running = tokio::task::JoinSet::new();
    for (layer, origin, arrival, dest) in jobs {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let client = client.clone();
        running.spawn(async move {
            let watch = arrival.watch();
            let outcome = client
                .fetch_blob_watched(&origin, &layer, &dest, Some(&watch))
                .await
                // names registry, repository and digest, and says why
                .map_err(|e| e.to_string());
            if let Err(e) = &outcome {
                tracing::debug!(layer = %layer.digest, "download failed: {e}");
            }
            arrival.finish(outcome);
            drop(permit);
        });
    }
    while running.join_next().await.is_some() {}
}
