//! The build entry point: options -> context -> Dockerfile plan (one per target
//! platform) -> stages -> final image(s) -> outputs. No manifest is pushed and
//! no output file is written unless every stage of every platform succeeded
//! (the push pipeline may have uploaded layers by then; without a manifest
//! they name no image).
//!
//! With several target platforms (`--custom-platform a,b`) the Dockerfile is
//! planned and built once per platform, in the order given; a stage whose
//! inputs are the same for several targets (pinned to the build platform) is
//! built once and shared ([`crate::platforms::StageKey`]); the outputs are an
//! index over the images (`index_output.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use kiln_dockerfile::model::{Plan, PlanOptions};
use kiln_oci::Platform;

use crate::attest::for_build::Attesting;
use crate::blobs::BlobStore;
use crate::context::BuildContext;
use crate::error::BuildError;
use crate::events::{BuildEvent, BuildObserver};
use crate::image::{Format, ImageState};
use crate::index_output::PlatformImage;
use crate::options::{BuildOptions, Compression, DockerfileSource, ImageFormatChoice};
use crate::outcome::{BuildOutcome, PhaseTimings, PlatformSummary};
use crate::output;
use crate::stage::{BuildEnv, encode_options};
use crate::step_cache::StepCache;
use crate::workdir_cleanup::WorkDir;

/// Builds the image described by `options`, reporting progress to `observer`.
pub async fn build(
    options: &BuildOptions,
    observer: &dyn BuildObserver,
) -> Result<BuildOutcome, BuildError> {
    check_options(options)?;
    let platforms = crate::platforms::target_platforms(options)?;
    crate::platforms::check_outputs(options, &platforms)?;
    // One registry client for the whole build: its sessions, tokens, TLS roots and
    // the blobs it has seen pushed are shared by the layer cache, the permission
    // check, the pulls, the push pipeline and the final push.
    let registry = std::sync::OnceLock::new();
    let cache = StepCache::open(options, &platforms[0], observer, &registry)?;
    let result = build_with(options, observer, &platforms, cache.as_ref(), &registry).await;
    // Steps that ran are worth keeping even when a later one failed.
    if let Some(cache) = cache {
        cache.finish(observer).await;
    }
    result
}

async fn build_with(
    options: &BuildOptions,
    observer: &dyn BuildObserver,
    platforms: &[Platform],
    cache: Option<&StepCache>,
    registry: &std::sync::OnceLock<kiln_registry::Client>,
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
    let plans = platforms
        .iter()
        .map(|platform| {
            dockerfile
                .plan(&PlanOptions {
                    build_args: options.build_args.clone(),
                    target: options.target.clone(),
                    target_platform: crate::platforms::dockerfile_platform(platform),
                    build_platform: kiln_dockerfile::Platform::host(),
                })
                .map_err(|d| BuildError::Dockerfile(d.to_string()))
        })
        .collect::<Result<Vec<Plan>, _>>()?;
    if !plans[0].unused_build_args.is_empty() {
        observer.event(&BuildEvent::Warning {
            message: format!(
                "build args were not consumed by any ARG: {}",
                plans[0].unused_build_args.join(", ")
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
    let has_run = plans[0].stages.iter().any(|s| {
        s.instructions
            .iter()
            .any(|i| matches!(i.command, kiln_dockerfile::Command::Run(_)))
    });
    let mut in_place = None;
    if has_run {
        let chosen = crate::stage::make_sandbox(options);
        if let Ok(sandbox) = &chosen {
            tracing::info!(mode = ?sandbox.mode(), "RUN isolation: {}", sandbox.reason());
        }
        if let Err(e) = &chosen
            && e.starts_with("emulator ")
        {
            // A bad `--emulator` is a usage error: say so before anything is built.
            return Err(BuildError::Options(format!("--emulator: {e}")));
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
    let several = platforms.len() > 1;
    // Layers upload while the build goes on; for one platform only (several go
    // through the index output, which uploads each image's blobs at the end).
    let push_pipeline = match several {
        true => None,
        false => crate::push_pipeline::PushPipeline::start(options, &plans[0], registry)?,
    };
    let recorders: Vec<_> = platforms
        .iter()
        .map(|_| std::sync::Mutex::new(recorder.clone()))
        .collect();
    let envs = plans
        .iter()
        .zip(platforms)
        .zip(&recorders)
        .map(|((plan, platform), recorder)| BuildEnv {
            options,
            observer,
            file: dockerfile_name.clone(),
            plan,
            context: &context,
            blobs: &blobs,
            // Each platform's stage roots apart; a shared stage's stay where it was built.
            work: match several {
                true => work
                    .path()
                    .join(format!("platform-{}", crate::platforms::dir_name(platform))),
                false => work.path().to_path_buf(),
            },
            platform: platform.clone(),
            several_platforms: several,
            created: crate::time::rfc3339(created_secs),
            layer_epoch: reproducible_epoch,
            encode: encode_options(options, reproducible_epoch),
            sandbox: &sandbox,
            in_place: in_place.is_some(),
            in_place_ignore: in_place.clone(),
            cache,
            push_pipeline: push_pipeline.as_ref(),
            recorder,
        })
        .collect::<Vec<_>>();
    timings.prepare = started.elapsed();

    // Checked while the first bases are resolved; no stage runs before it passed.
    let access = crate::push_access::PushAccess::new(registry, options)?;
    let mut built = Vec::new();
    if options.jobs > 1 && in_place.is_none() {
        built = crate::scheduler::build_all(&envs, registry, &access, options.jobs, &mut timings)?;
    } else {
        let mut shared = BTreeMap::new();
        for env in &envs {
            built.push(
                crate::stage_loop::build_stages(env, registry, &access, &mut shared, &mut timings)
                    .await?,
            );
        }
    }
    for (output, env) in built.iter_mut().zip(&envs) {
        finalize(&mut output.image, options, &env.created);
    }
    let attesting = |i: usize, rootfs| Attesting {
        recorder: recorders[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone(),
        rootfs,
        in_place: in_place.is_some(),
        created: &envs[i].created,
        reproducible_epoch,
    };

    let export_start = Instant::now();
    let mut outcome = if several {
        let mut images = Vec::new();
        for (i, (built, platform)) in built.iter().zip(platforms).enumerate() {
            let image = built.image.clone();
            let (format, chosen_by) = output::output_format(&image, options);
            let written = output::write_image(&blobs, &image, format, chosen_by, options)?;
            images.push(PlatformImage {
                platform: platform.clone(),
                image,
                written,
                attesting: attesting(i, built.rootfs.as_deref()),
            });
        }
        let index =
            crate::index_output::write_and_push(registry, &blobs, &images, options, observer)
                .await?;
        let manifests = images.iter().map(|i| i.written.manifest_size).sum::<u64>();
        BuildOutcome {
            digest: index.digest.to_string(),
            media_type: index.media_type.as_str().to_string(),
            size: index.bytes.len() as u64 + manifests,
            layers: Vec::new(),
            pushed: index.pushed.iter().map(|p| p.to_string()).collect(),
            platforms: images
                .iter()
                .map(|i| PlatformSummary {
                    platform: i.platform.to_string(),
                    digest: i.written.digest.to_string(),
                    media_type: i.written.media_type.as_str().to_string(),
                    layers: crate::single_output::layer_summaries(&i.written, &i.image),
                })
                .collect(),
            timings,
        }
    } else {
        let target = &built[0];
        crate::single_output::single_output(
            registry,
            &blobs,
            &crate::single_output::SingleImage {
                image: &target.image,
                platform: &platforms[0],
                push_pipeline: push_pipeline.as_ref(),
                attesting: attesting(0, target.rootfs.as_deref()),
            },
            options,
            observer,
            &mut timings,
        )
        .await?
    };
    outcome.timings.export += export_start.elapsed() - outcome.timings.push;
    if options.cleanup {
        if let Some(ignore) = &in_place {
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
    Ok(outcome)
}

pub(crate) fn registry_client<'a>(
    cell: &'a std::sync::OnceLock<kiln_registry::Client>,
    options: &BuildOptions,
) -> Result<&'a kiln_registry::Client, BuildError> {
    if let Some(c) = cell.get() {
        return Ok(c);
    }
    let client = crate::registry_glue::client(options)?;
    Ok(cell.get_or_init(|| client))
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
