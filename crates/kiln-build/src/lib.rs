//! The build engine: build context, stage graph, one step per instruction, RUN
//! isolation, snapshots to layers, and outputs (push, OCI layout,
//! docker-archive, digest files).
//!
//! Entry point: [`build`] with [`BuildOptions`] (one field per kaniko executor
//! flag) and a [`BuildObserver`] receiving [`BuildEvent`]s for log lines and
//! progress; it returns a [`BuildOutcome`] or a [`BuildError`] naming what
//! failed and where.
//!
//! # Design
//!
//! 1. The context (a directory, or a tar unpacked into the build dir) and its
//!    `.dockerignore` (moby's rules) are opened; the Dockerfile is parsed and
//!    planned by kiln-dockerfile: only the stages the target needs, in
//!    dependency order.
//! 2. RUN isolation is chosen once (kiln-sandbox): private stage roots under
//!    the build dir (chroot), or `/` itself (kaniko's in-place model, in kiln's
//!    own container).
//! 3. Each stage starts from scratch, an earlier stage or a pulled image. A
//!    root filesystem exists only if a step needs one; base layers are fetched
//!    and unpacked only then. Every instruction is expanded by the stage's
//!    `StageEnv`, gets a deterministic key, and runs: metadata instructions edit
//!    the config, COPY/ADD turn planned entries into a layer directly, RUN runs
//!    in the sandbox and its layer is the snapshot diff.
//! 4. The target stage's config and manifest are written to the blob store,
//!    then to the requested outputs; pushes mount base layers from their
//!    repository where they can (as soon as the pushed stage is prepared, with
//!    the push pipeline). kaniko's push permission check runs beside the first
//!    base's pull, and no stage starts before it passed (`push_access.rs`).
//! 5. With several target platforms (`custom_platform = "linux/amd64,linux/arm64"`)
//!    steps 3 and 4 happen per platform: each stage is built for its `FROM
//!    --platform` or the target (foreign RUN emulated by kiln-sandbox), a stage
//!    whose inputs are the same for several targets is built once, and the outputs
//!    are an index pushed only after every platform's manifest (`platforms.rs`,
//!    `index_output.rs`). Stages that do not depend on each other, of any platform,
//!    run in parallel up to `jobs` (`scheduler.rs`).
//!
//! Invariants: no manifest is pushed and nothing written unless every stage
//! succeeded (layers may upload while the build runs); the
//! context is never modified; untrusted paths never escape a stage root;
//! secrets never reach a layer, the history, an event or a key; the same
//! inputs with `reproducible` give the same digest.
//!
//! # Example: a build in-process, step events printed
//!
//! `examples/build_in_process.rs` is the same as a small program.
//!
//! ```
//! use kiln_build::{BuildEvent, BuildOptions, ContextSource, build};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let temp = tempfile::tempdir()?;
//! # let context = temp.path().join("context");
//! # let (work_dir, layout) = (temp.path().join("work"), temp.path().join("image"));
//! # std::fs::create_dir(&context)?;
//! # std::fs::write(context.join("busybox.tar"), kiln_testkit::busybox::rootfs_tar())?;
//! // The context holds `busybox.tar`, a busybox root filesystem.
//! let dockerfile = "FROM scratch\n\
//!                   ADD busybox.tar /\n\
//!                   RUN echo built by kiln > /greeting && cat /greeting\n\
//!                   CMD [\"cat\", \"/greeting\"]\n";
//! std::fs::write(context.join("Dockerfile"), dockerfile)?;
//!
//! let mut options = BuildOptions::new(ContextSource::Dir(context)); // kaniko's defaults
//! options.kaniko_dir = work_dir; // kiln's work dir, `/kaniko` by default
//! options.no_push = true; // or `destinations`, as `--destination`
//! options.oci_layout_path = Some(layout.clone());
//!
//! // Any `Fn(&BuildEvent) + Send + Sync` is an observer; it must not block.
//! let observer = |event: &BuildEvent| match event {
//!     BuildEvent::StepStarted { id, text } => println!("{id}: {text}"),
//!     BuildEvent::RunOutput { line, .. } => println!("  {line}"),
//!     BuildEvent::StepFinished { id, elapsed, layer: Some(layer) } => {
//!         println!("{id}: layer {layer} in {elapsed:?}")
//!     }
//!     _ => {}
//! };
//! let outcome = build(&options, &observer).await?;
//! println!("{} ({} layers)", outcome.digest, outcome.layers.len());
//!
//! let image = kiln_oci::OciLayout::open(&layout)?.image(None, None)?;
//! assert_eq!(image.descriptor.digest.to_string(), outcome.digest);
//! assert_eq!(image.manifest.layers.len(), 2); // ADD, RUN
//! # Ok(()) }
//! ```

#![warn(clippy::print_stdout, clippy::print_stderr)]

mod add_git;
mod archive;
pub mod attest;
mod blobs;
mod ci_labels;
mod context;
mod copy;
mod dockerignore;
mod download;
mod engine;
mod error;
mod events;
mod glob;
mod image;
mod index_output;
mod inplace;
pub mod manifest_list;
mod options;
mod outcome;
mod output;
mod owner;
mod platforms;
mod pull;
mod push_access;
mod push_pipeline;
mod registry_glue;
mod rootfs_path;
mod scheduler;
mod single_output;
mod stage;
mod stage_loop;
mod step_cache;
#[cfg(test)]
mod test_support;
mod time;
mod tree_copy;
mod unpack;
mod warm;
mod workdir_cleanup;

pub use attest::AttestOptions;
pub use ci_labels::CiLabels;
pub use engine::build;
pub use error::BuildError;
pub use events::{BuildEvent, BuildObserver, NoopObserver, OutputStream, StepId, Transfer};
/// Remote contexts' types, so callers need not depend on kiln-context.
pub use kiln_context::{
    ContextError, GitCredentials, GitOptions, GitSource, HttpTarball, ObjectSource, redact_url,
};
pub use options::{
    BuildOptions, CacheOptions, ClientCert, Compression, ContextSource, DockerfileSource,
    GitContext, ImageFormatChoice, Isolation, RegistryOptions, RetryOptions, SecretSource,
    SnapshotMode,
};
pub use outcome::{BuildOutcome, LayerSummary, PhaseTimings, PlatformSummary};
pub use warm::{WarmRequest, Warmed, warm};
