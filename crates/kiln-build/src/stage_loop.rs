//! The sequential stage loop (`--jobs 1`, in-place isolation) and the registry work a
//! stage needs before it runs, which the parallel scheduler shares ([`resolve_base`],
//! which touches nothing shared, then [`prepare_stage`] in plan order).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use kiln_dockerfile::model::{Base as PlanBase, PlannedStage};
use kiln_oci::Platform;

use crate::engine::registry_client;
use crate::error::BuildError;
use crate::outcome::PhaseTimings;
use crate::platforms::StageKey;
use crate::pull::pipeline::Fetch;
use crate::push_access::PushAccess;
use crate::stage::{Base, BuildEnv, StageOutput, StageRun, images_used_by, stage_needs_rootfs};

/// Builds the stages of one platform's plan, one after another, and returns its target
/// stage (image, and root filesystem when it has one). No stage runs before `access`
/// passed. `shared` holds every stage built so far by any platform, by
/// [`StageKey`]: a stage whose key is there is not built again.
pub(crate) async fn build_stages(
    env: &BuildEnv<'_>,
    registry: &std::sync::OnceLock<kiln_registry::Client>,
    access: &PushAccess<'_>,
    shared: &mut BTreeMap<StageKey, StageOutput>,
    timings: &mut PhaseTimings,
) -> Result<StageOutput, BuildError> {
    let plan = env.plan;
    let mut done: BTreeMap<usize, StageOutput> = BTreeMap::new();
    let mut keys: BTreeMap<usize, StageKey> = BTreeMap::new();
    let mut images: BTreeMap<String, PathBuf> = BTreeMap::new();
    let count = plan.stages.len();
    for (position, stage) in plan.stages.iter().enumerate() {
        let platform = crate::platforms::stage_platform(&env.platform, stage);
        let key = StageKey::of(stage, &platform, &keys);
        keys.insert(stage.index, key.clone());
        if let Some(output) = shared.get(&key) {
            tracing::info!(
                stage = position + 1,
                %platform,
                "{} already built for another target platform; shared",
                stage_label(env, position, &platform)
            );
            done.insert(stage.index, output.clone());
            continue;
        }
        let pull_start = Instant::now();
        // The push permission check (once per build) runs beside the first base's
        // pull, and fails the build before any stage runs.
        let (checked, base) = tokio::join!(
            access.passed(),
            resolve_base(env, position, stage, registry)
        );
        checked?;
        let base = base?;
        let (base, fetch) =
            prepare_stage(env, position, stage, base, registry, &done, &mut images).await?;
        timings.pull += pull_start.elapsed();
        let build_start = Instant::now();
        let output = crate::pull::pipeline::while_fetching(fetch, env.blobs, env.observer, || {
            StageRun::new(env, stage, &done, &images, position + 1, count, base)?.run()
        })?;
        timings.build += build_start.elapsed();
        if env.several_platforms {
            shared.insert(key, output.clone());
        }
        done.insert(stage.index, output);
    }
    let target = plan.target().index;
    done.remove(&target)
        .ok_or_else(|| BuildError::Options("internal: the target stage was not built".into()))
}

/// `[stage 2/3]`, or `[stage 2/3 linux/arm64/v8]` with several platforms.
pub(crate) fn stage_label(env: &BuildEnv<'_>, position: usize, platform: &Platform) -> String {
    let count = env.plan.stages.len();
    match env.several_platforms {
        true => format!("[stage {}/{count} {platform}]", position + 1),
        false => format!("[stage {}/{count}]", position + 1),
    }
}

/// A stage's base: its image pulled for the stage's platform (the manifest, the config
/// still arriving, see [`crate::pull::resolve_base_image`]; or read from `--cache-dir`),
/// a stage, or scratch. Touches nothing shared but the
/// registry client, so the parallel scheduler resolves several bases at once.
pub(crate) async fn resolve_base(
    env: &BuildEnv<'_>,
    position: usize,
    stage: &PlannedStage,
    registry: &std::sync::OnceLock<kiln_registry::Client>,
) -> Result<Base, BuildError> {
    let (options, blobs) = (env.options, env.blobs);
    let platform = crate::platforms::stage_platform(&env.platform, stage);
    Ok(match &stage.base {
        PlanBase::Scratch => Base::Scratch,
        PlanBase::Stage(i) => Base::Stage(*i),
        PlanBase::Image(reference) => {
            let from_error = |reason: String| BuildError::Step {
                step: format!("{} STEP 1", stage_label(env, position, &platform)),
                location: format!("{}:{}", env.file, stage.span.start.line),
                text: format!("FROM {reference}"),
                reason,
            };
            let cached = options
                .cache
                .dir
                .as_deref()
                .and_then(|dir| crate::pull::from_cache_dir(dir, blobs, reference, &platform));
            let (image, digest, config) = match cached {
                Some(found) => {
                    let (image, digest) = found.map_err(from_error)?;
                    (image, digest, None)
                }
                None => {
                    let client = registry_client(registry, options)?;
                    // The config arrives while the stage's layers download.
                    let (image, digest, config) =
                        crate::pull::resolve_base_image(client, reference, &platform)
                            .await
                            .map_err(from_error)?;
                    (image, digest, Some(config))
                }
            };
            Base::Image {
                image: Box::new(image),
                digest,
                config,
            }
        }
    })
}

/// The rest of what a stage needs from registries before it runs, given its resolved
/// `base` ([`resolve_base`]): the base recorded (for attestations, in plan order), the
/// plan of the base layers it will unpack (fetched while the stage unpacks them, see
/// [`crate::pull::pipeline`]), the base's layers mounted into the destinations when
/// the stage is pushed ([`crate::push_pipeline::PushPipeline::mount_base_layers`]),
/// and the images its `COPY --from`/`RUN --mount from=`
/// name (unpacked once per platform into `images`). `done` holds the stages built
/// before it (a stage base without a root filesystem needs its layers).
pub(crate) async fn prepare_stage(
    env: &BuildEnv<'_>,
    position: usize,
    stage: &PlannedStage,
    base: Base,
    registry: &std::sync::OnceLock<kiln_registry::Client>,
    done: &BTreeMap<usize, StageOutput>,
    images: &mut BTreeMap<String, PathBuf>,
) -> Result<(Base, Option<Fetch>), BuildError> {
    let (options, observer, blobs) = (env.options, env.observer, env.blobs);
    let platform = crate::platforms::stage_platform(&env.platform, stage);
    let label = stage_label(env, position, &platform);
    let location = format!("{}:{}", env.file, stage.span.start.line);
    if let (PlanBase::Image(reference), Base::Image { digest, .. }) = (&stage.base, &base) {
        env.recorder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .base(reference, digest);
    }
    let mut fetch = None;
    if env.cache.is_none() && stage_needs_rootfs(env, stage) {
        // The base's layers will be unpacked: fetch the ones not in the store
        // while the stage unpacks them (with the cache on, the stage fetches
        // them if a step misses).
        let base_image = match &base {
            Base::Image { image, .. } => Some(&**image),
            Base::Stage(i) => done.get(i).filter(|o| o.rootfs.is_none()).map(|o| &o.image),
            Base::Scratch => None,
        };
        if let Some(image) =
            base_image.filter(|i| !i.layers.iter().all(|l| blobs.contains(&l.digest)))
        {
            let client = registry_client(registry, options)?;
            let planned = Fetch::plan(client, blobs, image);
            fetch = Some(planned.map_err(|reason| BuildError::Step {
                step: format!("{label} STEP 1"),
                location: location.clone(),
                text: "FROM".into(),
                reason,
            })?);
        }
    }
    if let (Some(pipeline), Base::Image { image, .. }) = (env.push_pipeline, &base)
        && pipeline.uploads_stage(stage.index)
    {
        // The base's layers are the pushed image's first: put them in place now,
        // not beside the config once the last step is done.
        pipeline.mount_base_layers(blobs, image);
    }
    for reference in images_used_by(env.plan, stage) {
        if images.contains_key(&reference) {
            continue;
        }
        let client = registry_client(registry, options)?;
        let root = env
            .work
            .join(format!("image-{}", images.len()))
            .join("rootfs");
        crate::pull::pull_and_unpack(
            client,
            blobs,
            &reference,
            &platform,
            &root,
            observer,
            options.retries.image_fs_extract_retry,
        )
        .await
        .map_err(|reason| BuildError::Step {
            step: label.clone(),
            location: location.clone(),
            text: format!("--from={reference}"),
            reason,
        })?;
        images.insert(reference, root);
    }
    Ok((base, fetch))
}
