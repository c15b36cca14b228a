//! The outputs of a build for one platform: the image pushed to every destination (with
//! its attestations, before any tag moves), the OCI layout, the docker-archive and the
//! digest files.

use std::time::Instant;

use kiln_oci::Platform;

use crate::attest::for_build::Attesting;
use crate::blobs::BlobStore;
use crate::engine::registry_client;
use crate::error::BuildError;
use crate::events::BuildObserver;
use crate::image::{Format, ImageState};
use crate::options::BuildOptions;
use crate::outcome::{BuildOutcome, LayerSummary, PhaseTimings};
use crate::output;
use crate::push_pipeline::push_best_effort;

/// The one platform's image and what comes with it.
pub(crate) struct SingleImage<'a> {
    /// Config and layers, finalized.
    pub image: &'a ImageState,
    /// The platform it was built for.
    pub platform: &'a Platform,
    /// Uploads of its layers already under way, if any.
    pub push_pipeline: Option<&'a crate::push_pipeline::PushPipeline>,
    /// What its attestations are made from.
    pub attesting: Attesting<'a>,
}

/// The outputs of a build for one platform: the image pushed to every destination,
/// the OCI layout, the docker-archive and the digest files.
pub(crate) async fn single_output(
    registry: &std::sync::OnceLock<kiln_registry::Client>,
    blobs: &BlobStore,
    single: &SingleImage<'_>,
    options: &BuildOptions,
    observer: &dyn BuildObserver,
    timings: &mut PhaseTimings,
) -> Result<BuildOutcome, BuildError> {
    let (image, platform, push_pipeline, attesting) = (
        single.image,
        single.platform,
        single.push_pipeline,
        &single.attesting,
    );
    let (format, chosen_by) = output::output_format(image, options);
    let written = output::write_image(blobs, image, format, chosen_by, options)?;
    // An OCI layout holds the OCI form; its manifest digest differs from the
    // pushed one when that is Docker's (the digest files name the pushed one).
    let layout_written = match (&options.oci_layout_path, format) {
        (Some(_), Format::Docker) => Some(output::write_image(
            blobs,
            image,
            Format::Oci,
            "--oci-layout-path",
            options,
        )?),
        _ => None,
    };
    if let Some(layout) = &layout_written {
        tracing::info!(
            layout_digest = %layout.digest,
            image_digest = %written.digest,
            "the OCI layout holds the image as OCI; its manifest digest differs from the Docker-format image's"
        );
    }
    let all_local = image.layers.iter().all(|l| blobs.contains(&l.digest));
    let needs_layers = options.oci_layout_path.is_some()
        || options.tar_path.is_some()
        || attesting.needs_layers(options);
    if needs_layers && !all_local {
        let client = registry_client(registry, options)?;
        crate::pull::ensure_blobs(client, blobs, image, observer)
            .await
            .map_err(BuildError::Registry)?;
    }
    let attestor = attesting.attestor(options, platform, image, blobs)?;
    let artifacts = crate::attest::for_build::artifacts(attestor.as_ref(), &written.descriptor())?;
    let layout_artifacts = match &layout_written {
        Some(layout) => {
            crate::attest::for_build::artifacts(attestor.as_ref(), &layout.descriptor())?
        }
        None => artifacts.clone(),
    };
    output::write_local_outputs(
        blobs,
        &written,
        layout_written.as_ref().unwrap_or(&written),
        &layout_artifacts,
        options,
        platform,
    )?;

    let mut pushed = Vec::new();
    if !options.no_push {
        let push_start = Instant::now();
        let client = registry_client(registry, options)?;
        if let Some(pipeline) = push_pipeline {
            // The config and the base layers go up while the pipeline's last uploads
            // finish, not after them; the final push then finds them in place (the
            // client remembers) and only puts the manifest.
            let request = output::image_to_push(blobs, image, &written);
            let others: Vec<_> = {
                let pipelined = pipeline.layers();
                let blobs: Vec<_> = request
                    .blobs
                    .into_iter()
                    .filter(|b| !pipelined.contains(&b.descriptor.digest))
                    .collect();
                pipeline
                    .repos()
                    .iter()
                    .flat_map(|repo| blobs.iter().map(|b| (repo.clone(), b.clone())))
                    .collect()
            };
            let ahead = crate::pull::progress::reporting(client, observer, |client| async move {
                push_best_effort(&client, others, "pushing ahead").await
            });
            let (finished, ()) = tokio::join!(pipeline.finish(observer), ahead);
            finished?;
        }
        let push = |client| {
            output::push(
                client, blobs, image, &written, &artifacts, options, observer,
            )
        };
        // Sessions the pipeline opened ahead and no blob took are cancelled beside
        // the manifest PUT, not before it.
        let closing = async {
            if let Some(pipeline) = push_pipeline {
                pipeline.close_sessions().await;
            }
        };
        let (first, ()) = tokio::join!(push(client), closing);
        pushed = match first {
            Ok(p) => p,
            Err(first) if !image.layers.iter().all(|l| blobs.contains(&l.digest)) => {
                // A base layer could not be mounted: fetch it and upload it instead.
                tracing::debug!(error = %first, "push without local base layers failed; fetching them");
                crate::pull::ensure_blobs(client, blobs, image, observer)
                    .await
                    .map_err(BuildError::Registry)?;
                push(client).await?
            }
            Err(e) => return Err(e),
        };
        timings.push = push_start.elapsed();
    }
    output::write_digest_files(&written.digest, &pushed, options)?;

    let layers = layer_summaries(&written, image);
    let size =
        written.manifest_size + written.config.size + layers.iter().map(|l| l.size).sum::<u64>();
    Ok(BuildOutcome {
        digest: written.digest.to_string(),
        media_type: written.media_type.as_str().to_string(),
        size,
        layers,
        pushed: pushed.iter().map(|p| p.to_string()).collect(),
        platforms: Vec::new(),
        timings: *timings,
    })
}

pub(crate) fn layer_summaries(written: &output::Written, image: &ImageState) -> Vec<LayerSummary> {
    written
        .manifest
        .layers
        .iter()
        .zip(image.config.rootfs.diff_ids.iter())
        .map(|(d, diff_id)| LayerSummary {
            digest: d.digest.to_string(),
            diff_id: diff_id.to_string(),
            size: d.size,
            media_type: d.media_type.as_str().to_string(),
        })
        .collect()
}
