//! The build entry point: options -> context -> Dockerfile plan -> stages ->
//! final image -> outputs. Nothing is pushed and no output file is written
//! unless every stage succeeded.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use kiln_dockerfile::model::{Base as PlanBase, PlanOptions};
use kiln_oci::Platform;

use crate::blobs::BlobStore;
use crate::context::BuildContext;
use crate::error::BuildError;
use crate::events::{BuildEvent, BuildObserver};
use crate::image::{Format, ImageState};
use crate::options::{BuildOptions, Compression, DockerfileSource, ImageFormatChoice};
use crate::outcome::{BuildOutcome, LayerSummary, PhaseTimings};
use crate::output;
use crate::stage::{
    Base, BuildEnv, StageOutput, StageRun, encode_options, images_used_by, stage_needs_rootfs,
};
use crate::step_cache::StepCache;
use crate::workdir_cleanup::WorkDir;

/// Builds the image described by `options`, reporting progress to `observer`.
pub async fn build(
    options: &BuildOptions,
    observer: &dyn BuildObserver,
) -> Result<BuildOutcome, BuildError> {
    check_options(options)?;
    let platform = target_platform(options)?;
    let cache = StepCache::open(options, &platform, observer)?;
    let result = build_with(options, observer, &platform, cache.as_ref()).await;
    // Steps that ran are worth keeping even when a later one failed.
    if let Some(cache) = cache {
        cache.finish(observer).await;
    }
    result
}

/// The target platform: `--custom-platform`, else the host's.
pub(crate) fn target_platform(options: &BuildOptions) -> Result<Platform, BuildError> {
    match &options.custom_platform {
        Some(p) => p
            .parse::<Platform>()
            .map_err(|e| BuildError::Options(format!("--custom-platform {p:?}: {e}"))),
        None => Ok(Platform::host()),
    }
}

async fn build_with(
    options: &BuildOptions,
    observer: &dyn BuildObserver,
    platform: &Platform,
    cache: Option<&StepCache>,
) -> Result<BuildOutcome, BuildError> {
    let mut timings = PhaseTimings::default();
    let started = Instant::now();
    let mut recorder = crate::attest::for_build::Recorder::start();

    // Removed in the background once this function has returned, whatever it returns.
    let mut work = WorkDir::create(&options.kaniko_dir)?;
    let blobs = BlobStore::open(options.kaniko_dir.join("blobs"))?;

    let mut context = BuildContext::open(
        &options.context,
        options.context_sub_path.as_deref(),
        work.path(),
    )?;
    let (dockerfile_name, dockerfile_path, bytes) =
        read_dockerfile(options, &context, work.path())?;
    context.load_ignore(dockerfile_path.as_deref())?;
    recorder.dockerfile = Some((dockerfile_name.clone(), kiln_oci::Digest::sha256_of(&bytes)));
    observer.event(&BuildEvent::ContextLoaded {
        root: context.root().to_path_buf(),
    });

    let dockerfile = kiln_dockerfile::parse(&dockerfile_name, &bytes)
        .map_err(|d| BuildError::Dockerfile(d.to_string()))?;
    let plan_platform = kiln_dockerfile::Platform::new(
        &platform.os,
        &platform.architecture,
        platform.variant.as_deref(),
    );
    let plan = dockerfile
        .plan(&PlanOptions {
            build_args: options.build_args.clone(),
            target: options.target.clone(),
            target_platform: plan_platform.clone(),
            build_platform: kiln_dockerfile::Platform::host(),
        })
        .map_err(|d| BuildError::Dockerfile(d.to_string()))?;
    if !plan.unused_build_args.is_empty() {
        observer.event(&BuildEvent::Warning {
            message: format!(
                "build args were not consumed by any ARG: {}",
                plan.unused_build_args.join(", ")
            ),
        });
    }

    let reproducible_epoch = options
        .source_date_epoch
        .or(options.reproducible.then_some(0));
    let created_secs = reproducible_epoch.unwrap_or_else(crate::time::now_secs);
    // RUN isolation is decided before any stage root is laid out: in-place mode
    // (kaniko's) makes `/` the root of every stage.
    let sandbox = std::sync::OnceLock::new();
    let has_run = plan.stages.iter().any(|s| {
        s.instructions
            .iter()
            .any(|i| matches!(i.command, kiln_dockerfile::Command::Run(_)))
    });
    let mut in_place = None;
    if has_run {
        let chosen = crate::run::make_sandbox(options);
        if let Ok(sandbox) = &chosen {
            tracing::info!(mode = ?sandbox.mode(), "RUN isolation: {}", sandbox.reason());
        }
        if matches!(&chosen, Ok(s) if s.mode() == kiln_sandbox::Mode::InPlace) {
            let mut ignore = crate::inplace::ignore_list(options).map_err(BuildError::Options)?;
            ignore
                .add(context.root())
                .map_err(|e| BuildError::Options(format!("ignoring the context in place: {e}")))?;
            observer.event(&BuildEvent::Warning {
                message: "RUN isolation is in-place: every stage is built in / of this container, as kaniko does".into(),
            });
            in_place = Some(ignore);
        }
        let _ = sandbox.set(chosen);
    }
    let disposable =
        in_place.is_some() || std::path::Path::new(kiln_sandbox::KILN_CONTAINER_MARKER).exists();
    if disposable && !options.cleanup {
        // The container's end discards the build dir: deleting it would only cost time.
        work.keep();
    }
    let env = BuildEnv {
        options,
        observer,
        file: dockerfile_name.clone(),
        plan: &plan,
        context: &context,
        blobs: &blobs,
        work: work.path().to_path_buf(),
        platform: platform.clone(),
        created: crate::time::rfc3339(created_secs),
        layer_epoch: reproducible_epoch,
        encode: encode_options(options, reproducible_epoch),
        sandbox,
        in_place: in_place.is_some(),
        in_place_ignore: in_place,
        cache,
    };
    timings.prepare = started.elapsed();

    let registry = std::sync::OnceLock::new();
    if !options.no_push && !options.skip_push_permission_check {
        check_push_access(registry_client(&registry, options)?, options).await?;
    }
    let mut done: BTreeMap<usize, StageOutput> = BTreeMap::new();
    let mut images: BTreeMap<String, PathBuf> = BTreeMap::new();
    let count = plan.stages.len();
    for (position, stage) in plan.stages.iter().enumerate() {
        let base = match &stage.base {
            PlanBase::Scratch => Base::Scratch,
            PlanBase::Stage(i) => Base::Stage(*i),
            PlanBase::Image(reference) => {
                let pull_start = Instant::now();
                let from_error = |reason: String| BuildError::Step {
                    step: format!("[stage {}/{count}] STEP 1", position + 1),
                    location: format!("{dockerfile_name}:{}", stage.span.start.line),
                    text: format!("FROM {reference}"),
                    reason,
                };
                let cached =
                    options.cache.dir.as_deref().and_then(|dir| {
                        crate::pull::from_cache_dir(dir, &blobs, reference, platform)
                    });
                let (image, digest) = match cached {
                    Some(found) => found.map_err(from_error)?,
                    None => {
                        let client = registry_client(&registry, options)?;
                        crate::pull::pull_base(client, reference, platform)
                            .await
                            .map_err(from_error)?
                    }
                };
                timings.pull += pull_start.elapsed();
                recorder.base(reference, &digest);
                Base::Image {
                    image: Box::new(image),
                    digest,
                }
            }
        };
        if cache.is_none() && stage_needs_rootfs(&env, stage) {
            // The base's layers will be unpacked: fetch the ones not in the store
            // (with the cache on, the stage fetches them if a step misses).
            let base_image = match &base {
                Base::Image { image, .. } => Some(&**image),
                Base::Stage(i) => done.get(i).filter(|o| o.rootfs.is_none()).map(|o| &o.image),
                Base::Scratch => None,
            };
            if let Some(image) =
                base_image.filter(|i| !i.layers.iter().all(|l| blobs.contains(&l.digest)))
            {
                let pull_start = Instant::now();
                let client = registry_client(&registry, options)?;
                crate::pull::ensure_blobs(client, &blobs, image, observer)
                    .await
                    .map_err(|reason| BuildError::Step {
                        step: format!("[stage {}/{count}] STEP 1", position + 1),
                        location: format!("{dockerfile_name}:{}", stage.span.start.line),
                        text: "FROM".into(),
                        reason,
                    })?;
                timings.pull += pull_start.elapsed();
            }
        }
        for reference in images_used_by(&plan, stage) {
            if images.contains_key(&reference) {
                continue;
            }
            let pull_start = Instant::now();
            let client = registry_client(&registry, options)?;
            let root = work
                .path()
                .join(format!("image-{}", images.len()))
                .join("rootfs");
            crate::pull::pull_and_unpack(
                client,
                &blobs,
                &reference,
                platform,
                &root,
                observer,
                options.retries.image_fs_extract_retry,
            )
            .await
            .map_err(|reason| BuildError::Step {
                step: format!("[stage {}/{count}]", position + 1),
                location: format!("{dockerfile_name}:{}", stage.span.start.line),
                text: format!("--from={reference}"),
                reason,
            })?;
            timings.pull += pull_start.elapsed();
            images.insert(reference, root);
        }
        let build_start = Instant::now();
        let output =
            StageRun::new(&env, stage, &done, &images, position + 1, count, base)?.run()?;
        timings.build += build_start.elapsed();
        done.insert(stage.index, output);
    }
    let target = plan.target().index;
    let target_output = done
        .remove(&target)
        .ok_or_else(|| BuildError::Options("internal: the target stage was not built".into()))?;
    drop(done);
    let final_rootfs = target_output.rootfs;
    let mut image = target_output.image;
    finalize(&mut image, options, &env.created);

    let export_start = Instant::now();
    let (format, chosen_by) = output::output_format(&image, options);
    let written = output::write_image(&blobs, &image, format, chosen_by, options)?;
    // An OCI layout holds the OCI form; its manifest digest differs from the
    // pushed one when that is Docker's (the digest files name the pushed one).
    let layout_written = match (&options.oci_layout_path, format) {
        (Some(_), Format::Docker) => Some(output::write_image(
            &blobs,
            &image,
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
        || (options.attest.sbom && !options.no_push);
    if needs_layers && !all_local {
        let client = registry_client(&registry, options)?;
        crate::pull::ensure_blobs(client, &blobs, &image, observer)
            .await
            .map_err(BuildError::Registry)?;
    }
    let attestor = crate::attest::for_build::attestor(
        &recorder,
        options,
        platform,
        &crate::attest::for_build::FinalImage {
            image: &image,
            blobs: &blobs,
            rootfs: final_rootfs.as_deref(),
        },
        env.in_place,
        &env.created,
        reproducible_epoch,
    )?;
    let artifacts = crate::attest::for_build::artifacts(attestor.as_ref(), &written.descriptor())?;
    let layout_artifacts = match &layout_written {
        Some(layout) => {
            crate::attest::for_build::artifacts(attestor.as_ref(), &layout.descriptor())?
        }
        None => artifacts.clone(),
    };
    output::write_local_outputs(
        &blobs,
        &written,
        layout_written.as_ref().unwrap_or(&written),
        &layout_artifacts,
        options,
        platform,
    )?;
    timings.export = export_start.elapsed();

    let mut pushed = Vec::new();
    if !options.no_push {
        let push_start = Instant::now();
        let client = registry_client(&registry, options)?;
        let push = |client| {
            output::push(
                client, &blobs, &image, &written, &artifacts, options, observer,
            )
        };
        pushed = match push(client).await {
            Ok(p) => p,
            Err(first) if !image.layers.iter().all(|l| blobs.contains(&l.digest)) => {
                // A base layer could not be mounted: fetch it and upload it instead.
                tracing::debug!(error = %first, "push without local base layers failed; fetching them");
                crate::pull::ensure_blobs(client, &blobs, &image, observer)
                    .await
                    .map_err(BuildError::Registry)?;
                push(client).await?
            }
            Err(e) => return Err(e),
        };
        timings.push = push_start.elapsed();
    }
    output::write_digest_files(&written.digest, &pushed, options)?;

    let layers = written
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
        .collect::<Vec<_>>();
    let size =
        written.manifest_size + written.config.size + layers.iter().map(|l| l.size).sum::<u64>();
    if options.cleanup {
        if let Some(ignore) = &env.in_place_ignore {
            crate::inplace::reset_root(std::path::Path::new("/"), ignore).map_err(|e| {
                BuildError::Output(format!("clearing / after the build (--cleanup): {e}"))
            })?;
        }
        let store = options.kaniko_dir.join("blobs");
        crate::workdir_cleanup::discard(&options.kaniko_dir, &store)
            .map_err(|e| BuildError::io("removing the blob store (--cleanup)", &store, e))?;
    }
    // The build's own directory (stage roots, staging) goes away when `work` drops,
    // after the outcome is final: renamed into the trash, removed by a detached process.
    Ok(BuildOutcome {
        digest: written.digest.to_string(),
        media_type: written.media_type.as_str().to_string(),
        size,
        layers,
        pushed: pushed.iter().map(|p| p.to_string()).collect(),
        timings,
    })
}

fn registry_client<'a>(
    cell: &'a std::sync::OnceLock<kiln_registry::Client>,
    options: &BuildOptions,
) -> Result<&'a kiln_registry::Client, BuildError> {
    if let Some(c) = cell.get() {
        return Ok(c);
    }
    let client = crate::registry_glue::client(options)?;
    Ok(cell.get_or_init(|| client))
}

/// kaniko's push permission check, before anything is built: each destination
/// repository must answer a push-scoped blob HEAD (reachability, TLS and
/// credentials are all exercised).
async fn check_push_access(
    client: &kiln_registry::Client,
    options: &BuildOptions,
) -> Result<(), BuildError> {
    let probe = kiln_oci::Digest::sha256_of(b"");
    for d in &options.destinations {
        let r = kiln_oci::Reference::parse(d)
            .map_err(|e| BuildError::Options(format!("--destination {d:?}: {e}")))?;
        let repo = kiln_registry::RepoRef::new(r.registry(), r.repository());
        client.blob_exists(&repo, &probe).await.map_err(|e| {
            BuildError::Registry(format!(
                "checking push access to {d} before building (--skip-push-permission-check skips this): {e}"
            ))
        })?;
    }
    Ok(())
}

/// Rejects inconsistent options before any work is done.
fn check_options(options: &BuildOptions) -> Result<(), BuildError> {
    if options.destinations.is_empty() && !options.no_push {
        return Err(BuildError::Options(
            "no --destination given: name one or more, or pass --no-push".into(),
        ));
    }
    for d in &options.destinations {
        kiln_oci::Reference::parse(d)
            .map_err(|e| BuildError::Options(format!("--destination {d:?}: {e}")))?;
    }
    if options.image_format == ImageFormatChoice::Docker {
        if options.compression == Compression::Zstd {
            return Err(BuildError::Options(
                "--image-format docker cannot hold --compression zstd layers: Docker schema 2 has no zstd layer type (use --image-format oci, or gzip)".into(),
            ));
        }
        if !options.annotations.is_empty() {
            return Err(BuildError::Options(
                "--image-format docker cannot hold --annotation: Docker schema 2 manifests have no annotations (use --image-format oci, or drop --annotation)".into(),
            ));
        }
    }
    if let Some(level) = options.compression_level {
        let ok = match options.compression {
            Compression::Gzip => (0..=9).contains(&level),
            Compression::Zstd => (1..=22).contains(&level),
        };
        if !ok {
            return Err(BuildError::Options(format!(
                "--compression-level {level} is out of range for {:?}",
                options.compression
            )));
        }
    }
    Ok(())
}

/// Reads the Dockerfile: relative to the context root, absolute, or a URL
/// (downloaded into the build dir). Returns (name for messages, path for the
/// `<Dockerfile>.dockerignore` lookup, bytes).
fn read_dockerfile(
    options: &BuildOptions,
    context: &BuildContext,
    work: &std::path::Path,
) -> Result<(String, Option<PathBuf>, Vec<u8>), BuildError> {
    let path = match &options.dockerfile {
        DockerfileSource::Path(path) => path,
        DockerfileSource::Url(url) => {
            let dest = work.join("Dockerfile.downloaded");
            crate::download::download_blocking(url, &dest, None).map_err(|reason| {
                BuildError::Context {
                    path: PathBuf::from(url),
                    reason: format!("downloading the Dockerfile: {reason}"),
                }
            })?;
            let bytes = fs_err::read(&dest)
                .map_err(|e| BuildError::io("reading the downloaded Dockerfile", &dest, e))?;
            return Ok((crate::download::url_file_name(url), None, bytes));
        }
    };
    let full = if path.is_absolute() {
        path.clone()
    } else {
        context.root().join(path)
    };
    let bytes = fs_err::read(&full).map_err(|e| BuildError::Context {
        path: full.clone(),
        reason: match e.kind() {
            std::io::ErrorKind::NotFound => "the Dockerfile does not exist".into(),
            _ => format!("cannot read the Dockerfile: {e}"),
        },
    })?;
    Ok((path.display().to_string(), Some(full), bytes))
}

/// Applies `--ci-labels` (below the Dockerfile's labels), `--label`, the compression's
/// manifest format and the final dates.
fn finalize(image: &mut ImageState, options: &BuildOptions, created: &str) {
    if let Some(ci) = &options.ci_labels {
        let created_is_fake = options.reproducible && options.source_date_epoch.is_none();
        let config = image.config.container_config_mut();
        let labels = config.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in ci.for_image(created, created_is_fake) {
            labels.entry(k).or_insert(v);
        }
    }
    if !options.labels.is_empty() {
        let config = image.config.container_config_mut();
        let labels = config.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in &options.labels {
            labels.insert(k.clone(), v.clone());
        }
    }
    if options.compression == Compression::Zstd {
        // Docker schema 2 has no zstd layer type.
        image.format = Format::Oci;
    }
    image.config.created = Some(created.to_string());
}
