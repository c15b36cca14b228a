//! The state of one stage being built, which every step module reads and
//! edits: what all stages of a build share ([`BuildEnv`]), the stage run
//! itself ([`StageRun`]: config, ENV/ARG scope, cache key chain, its files
//! laid out or pending) and what a finished stage leaves ([`StageOutput`]).
//! Only accessors live here; the modules around it do the work, and this one
//! imports none of them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiln_dockerfile::model::{Plan, PlannedStage, StageEnv};
use kiln_layer::{EncodeOptions, Timestamp};
use kiln_oci::{Digest, History, Platform};

use crate::blobs::BlobStore;
use crate::context::BuildContext;
use crate::events::{BuildEvent, BuildObserver, StepId};
use crate::image::ImageState;
use crate::options::BuildOptions;

/// What every stage of one build shares.
pub struct BuildEnv<'a> {
    /// The options.
    pub options: &'a BuildOptions,
    /// Event receiver.
    pub observer: &'a dyn BuildObserver,
    /// The Dockerfile's name, for messages.
    pub file: String,
    /// The build plan (needed stages in dependency order).
    pub plan: &'a Plan,
    /// The build context.
    pub context: &'a BuildContext,
    /// Blob store.
    pub blobs: &'a BlobStore,
    /// This build's private directory (stage roots, staging).
    pub work: PathBuf,
    /// Target platform (a stage's own is [`StageRun::platform`]).
    pub platform: Platform,
    /// The build is for several platforms: step ids name the stage's platform.
    pub several_platforms: bool,
    /// `created` for config and history (RFC 3339).
    pub created: String,
    /// mtime clamp for layers (`SOURCE_DATE_EPOCH`, 0 when reproducible).
    pub layer_epoch: Option<i64>,
    /// Layer encoding options.
    pub encode: EncodeOptions,
    /// The sandbox for RUN (chosen before the first stage when any RUN exists).
    /// Shared by every platform's build.
    pub sandbox: &'a std::sync::OnceLock<Result<kiln_sandbox::Sandbox, String>>,
    /// kaniko's in-place model: every stage root is `/`.
    pub in_place: bool,
    /// What in-place mode never touches (kiln's dir, mounts, the context).
    pub in_place_ignore: Option<kiln_snapshot::IgnoreList>,
    /// The layer cache (`--cache`).
    pub cache: Option<&'a crate::step_cache::StepCache>,
    /// Uploads of the pushed image's layers while the build goes on.
    pub push_pipeline: Option<&'a crate::push_pipeline::PushPipeline>,
    /// What attestations record of this platform's build (its base images).
    pub recorder: &'a std::sync::Mutex<crate::attest::for_build::Recorder>,
}

/// A finished stage.
#[derive(Debug, Clone)]
pub struct StageOutput {
    /// Config and layers.
    pub image: ImageState,
    /// Its root filesystem, when a step needed one.
    pub rootfs: Option<PathBuf>,
    /// The cache key chain's last value.
    pub cache_key: Digest,
    /// The final ENV/ARG scope: a stage built `FROM` this one starts from it
    /// (BuildKit: ARG values carry over to stages based on this one).
    pub vars: StageEnv,
}

/// A stage being run.
pub struct StageRun<'a, 'b> {
    pub(super) env: &'a BuildEnv<'b>,
    pub(super) stage: &'a PlannedStage,
    /// Earlier stages' outputs, by Dockerfile index.
    pub(super) done: &'a BTreeMap<usize, StageOutput>,
    /// Unpacked images named by `--from` (COPY, RUN --mount), by reference.
    pub(super) images: &'a BTreeMap<String, PathBuf>,
    pub(super) position: usize,
    pub(super) count: usize,
    pub(super) image: ImageState,
    pub(super) vars: StageEnv,
    /// The stage's filesystem once laid out.
    pub(super) rootfs: Option<PathBuf>,
    /// What the filesystem will be made of when a step first needs it.
    pub(super) pending: Option<PendingRoot>,
    pub(super) snapshotter: Option<kiln_snapshot::Snapshotter>,
    pub(super) cmd_set_here: bool,
    pub(super) cache_key: Digest,
    /// The step being run (for events).
    pub(super) current_step: StepId,
    /// Steps folded into the stage's one layer in single-snapshot mode.
    pub(super) single_snapshot_steps: Vec<String>,
}

/// Error text with its cause, for [`BuildError::Step`].
pub(super) type StepResult<T> = Result<T, String>;

/// A stage filesystem not laid out yet: with the cache on, steps that hit add
/// their layers here and nothing is downloaded or unpacked until a step needs
/// the files (a miss, a COPY --from of this stage) — never, in a fully cached
/// build.
#[derive(Debug, Default)]
pub(super) struct PendingRoot {
    /// An earlier stage's laid-out filesystem to start from.
    pub(super) from: Option<PathBuf>,
    /// Layers to apply in order (on `from`, or on an empty root).
    pub(super) layers: Vec<kiln_oci::Descriptor>,
    /// VOLUME directories to create when missing.
    pub(super) volumes: Vec<String>,
    /// WORKDIR steps whose directories are created once the files are laid out
    /// (before a COPY that runs ahead of them), in step order.
    pub(super) workdirs: Vec<DeferredWorkdir>,
}

/// A WORKDIR step run before the stage's files were laid out: its history
/// entry is recorded (empty), its directories and layer come with the files.
#[derive(Debug)]
pub(super) struct DeferredWorkdir {
    /// The directory, absolute, unresolved.
    pub(super) dir: String,
    /// Its step's index in the config's history.
    pub(super) history: usize,
    /// USER at the step (owns the directories it creates).
    pub(super) user: String,
    /// The step's file time.
    pub(super) mtime: Timestamp,
}

/// What RUN needs from the stage.
pub struct RunContext {
    /// SHELL.
    pub shell: Vec<String>,
    /// The process environment (ENV, then ARGs not shadowed by ENV).
    pub run_env: Vec<(String, String)>,
    /// Declared ARGs with values not shadowed by ENV (shown in history as `|N k=v`).
    pub args: Vec<(String, String)>,
    /// WORKDIR.
    pub workdir: String,
    /// USER.
    pub user: String,
}

/// The base of a stage.
pub enum Base {
    /// `FROM scratch`.
    Scratch,
    /// An earlier stage (Dockerfile index).
    Stage(usize),
    /// A pulled image (blobs in the store) and its manifest digest.
    Image {
        /// Config and layers.
        image: Box<ImageState>,
        /// Manifest digest (starts the cache key chain).
        digest: Digest,
        /// The config, when it is still arriving (`image` then holds a default one):
        /// the stage waits for it before it starts, while its layers download.
        config: Option<crate::pull::PendingConfig>,
    },
}

impl<'a, 'b> StageRun<'a, 'b> {
    pub(super) fn step_id(&self, step: usize) -> StepId {
        StepId {
            stage: self.position,
            stage_count: self.count,
            step,
            step_count: self.stage.instructions.len() + 1,
            platform: self
                .env
                .several_platforms
                .then(|| self.platform().to_string()),
        }
    }

    /// The stage's index in the Dockerfile.
    pub(super) fn stage_index(&self) -> usize {
        self.stage.index
    }

    /// The platform this stage is built for (`FROM --platform=...`, else the target).
    pub(super) fn platform(&self) -> Platform {
        crate::platforms::stage_platform(&self.env.platform, self.stage)
    }

    pub(super) fn location_of(&self, line: u32) -> String {
        format!("{}:{line}", self.env.file)
    }

    pub(super) fn workdir(&self) -> String {
        self.image
            .config
            .config
            .as_ref()
            .and_then(|c| c.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into())
    }

    pub(super) fn user(&self) -> String {
        self.image
            .config
            .config
            .as_ref()
            .and_then(|c| c.user.clone())
            .unwrap_or_default()
    }

    pub(super) fn shell(&self) -> Vec<String> {
        self.image
            .config
            .config
            .as_ref()
            .and_then(|c| c.shell.clone())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    pub(super) fn advance_key(&mut self, material: &[u8]) -> Digest {
        let mut hasher = kiln_oci::Hasher::sha256();
        hasher.update(self.cache_key.to_string().as_bytes());
        hasher.update(b"\n");
        hasher.update(self.platform().to_string().as_bytes());
        hasher.update(b"\n");
        // A layer cached as gzip must not land in a zstd build, and back.
        hasher.update(format!("{:?}\n", self.env.options.compression).as_bytes());
        hasher.update(material);
        self.cache_key = hasher.finish();
        tracing::debug!(key = %self.cache_key, "step cache key");
        self.env.observer.event(&BuildEvent::StepKey {
            id: self.current_step.clone(),
            key: self.cache_key.to_string(),
        });
        self.cache_key.clone()
    }

    pub(super) fn history(&self, created_by: String) -> History {
        History {
            created: Some(self.env.created.clone()),
            created_by: Some(created_by),
            comment: Some("buildkit.dockerfile.v0".into()),
            ..History::default()
        }
    }

    pub(super) fn file_time(&self) -> Timestamp {
        Timestamp::from_secs(self.env.layer_epoch.unwrap_or_else(crate::time::now_secs))
    }

    /// Where the stage's filesystem is (or will be) laid out.
    pub(super) fn planned_root(&self) -> PathBuf {
        if self.env.in_place {
            PathBuf::from("/")
        } else {
            self.env
                .work
                .join(format!("stage-{}", self.stage.index))
                .join("rootfs")
        }
    }

    /// What RUN needs from the stage.
    pub(super) fn run_context(&self) -> RunContext {
        RunContext {
            shell: self.shell(),
            run_env: self.vars.run_env(),
            args: self
                .vars
                .args()
                .iter()
                .filter(|(k, _)| !self.vars.env().iter().any(|(e, _)| e == k))
                .cloned()
                .collect(),
            workdir: self.workdir(),
            user: self.user(),
        }
    }

    /// Root of an earlier stage (by name or index), for `--from` and `--mount from=`.
    pub(super) fn stage_root(&self, name: &str) -> Option<PathBuf> {
        match self.env.plan.resolve_stage_ref(name) {
            Some(index) => self.done.get(&index)?.rootfs.clone(),
            None => self.images.get(name).cloned(),
        }
    }

    pub(super) fn build_env(&self) -> &BuildEnv<'b> {
        self.env
    }
}
