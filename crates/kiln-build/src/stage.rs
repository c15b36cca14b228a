//! Running one stage: its base, then one step per instruction, with Docker's
//! semantics: kiln-dockerfile's [`StageEnv`] expands each instruction and
//! tracks ENV/ARG scope; WORKDIR, USER and the metadata instructions edit
//! the config; COPY/ADD make layers straight from the planned entries; RUN
//! goes through kiln-sandbox and kiln-snapshot. Each filesystem-changing
//! step becomes one layer; metadata-only steps add an `empty_layer` history
//! entry. Every step advances a deterministic cache key before it runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kiln_dockerfile::instructions::{CommandLine, CopyCmd, Healthcheck};
use kiln_dockerfile::model::{Base as PlanBase, Plan, PlannedStage, StageEnv};
use kiln_dockerfile::{Command, Instruction};
use kiln_layer::{EncodeOptions, Entry, LayerPath, Metadata, TarOptions, Timestamp};
use kiln_oci::{Digest, History, ImageConfig, Platform};

use crate::blobs::BlobStore;
use crate::context::BuildContext;
use crate::copy::{CopyRequest, SourceTree, plan_copy};
use crate::error::BuildError;
use crate::events::{BuildEvent, BuildObserver, StepId};
use crate::image::{Format, ImageState};
use crate::options::BuildOptions;
use crate::owner::{Chmod, Owner, resolve_chown};
use crate::rootfs_path::{host_of, join_workdir, resolve_in_root};
use crate::run::RunStep;

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
    env: &'a BuildEnv<'b>,
    stage: &'a PlannedStage,
    /// Earlier stages' outputs, by Dockerfile index.
    done: &'a BTreeMap<usize, StageOutput>,
    /// Unpacked images named by `--from` (COPY, RUN --mount), by reference.
    images: &'a BTreeMap<String, PathBuf>,
    position: usize,
    count: usize,
    image: ImageState,
    vars: StageEnv,
    /// The stage's filesystem once laid out.
    rootfs: Option<PathBuf>,
    /// What the filesystem will be made of when a step first needs it.
    pending: Option<PendingRoot>,
    snapshotter: Option<kiln_snapshot::Snapshotter>,
    cmd_set_here: bool,
    cache_key: Digest,
    /// The step being run (for events).
    current_step: StepId,
    /// Steps folded into the stage's one layer in single-snapshot mode.
    single_snapshot_steps: Vec<String>,
}

/// Error text with its cause, for [`BuildError::Step`].
type StepResult<T> = Result<T, String>;

/// A stage filesystem not laid out yet: with the cache on, steps that hit add
/// their layers here and nothing is downloaded or unpacked until a step needs
/// the files (a miss, a COPY --from of this stage) — never, in a fully cached
/// build.
#[derive(Debug, Default)]
struct PendingRoot {
    /// An earlier stage's laid-out filesystem to start from.
    from: Option<PathBuf>,
    /// Layers to apply in order (on `from`, or on an empty root).
    layers: Vec<kiln_oci::Descriptor>,
    /// VOLUME directories to create when missing.
    volumes: Vec<String>,
}

/// What a COPY/ADD reads, gathered once for its key and its layer.
struct CopySources<'c> {
    cmd: &'c CopyCmd,
    local: &'c [String],
    downloads: &'c [crate::download::Downloaded],
    /// Checkouts of git sources (ADD only), each copied like a directory.
    git_checkouts: &'c [PathBuf],
    chmod: Option<&'c Chmod>,
    extract: bool,
}

/// Kinds of cacheable steps (`--cache-run-layers`, `--cache-copy-layers`;
/// WORKDIR is always cached so that it never forces the filesystem out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cacheable {
    Run,
    Copy,
    Workdir,
}
impl<'a, 'b> StageRun<'a, 'b> {
    /// Prepares a stage from its base (pulled by the caller for images).
    pub fn new(
        env: &'a BuildEnv<'b>,
        stage: &'a PlannedStage,
        done: &'a BTreeMap<usize, StageOutput>,
        images: &'a BTreeMap<String, PathBuf>,
        position: usize,
        count: usize,
        base: Base,
    ) -> Result<Self, BuildError> {
        let mut vars = stage.env.clone();
        let (image, rootfs_from, key) = match base {
            Base::Scratch => {
                let platform = crate::platforms::stage_platform(&env.platform, stage);
                let mut config = ImageConfig::for_platform(&platform);
                config.rootfs.kind = "layers".into();
                // BuildKit gives an image built on scratch the default PATH
                // and the working dir `/` (its dockerfile2llb `emptyImage`).
                let container = config.container_config_mut();
                container.env = Some(vec![format!("PATH={}", kiln_sandbox::DEFAULT_PATH)]);
                container.working_dir = Some("/".into());
                let image = ImageState {
                    config,
                    layers: Vec::new(),
                    origins: BTreeMap::new(),
                    format: Format::Oci,
                };
                (image, None, Digest::sha256_of(b"scratch"))
            }
            Base::Stage(index) => {
                let out = &done[&index];
                vars.inherit(&out.vars);
                (out.image.clone(), out.rootfs.clone(), out.cache_key.clone())
            }
            Base::Image { image, digest } => (*image, None, digest),
        };
        let base_env = image
            .config
            .config
            .as_ref()
            .and_then(|c| c.env.clone())
            .unwrap_or_default();
        vars.set_image_env(&base_env);
        let mut run = StageRun {
            env,
            stage,
            done,
            images,
            position,
            count,
            image,
            vars,
            rootfs: None,
            pending: None,
            snapshotter: None,
            cmd_set_here: false,
            cache_key: key,
            current_step: StepId {
                stage: position,
                stage_count: count,
                step: 1,
                step_count: stage.instructions.len() + 1,
                platform: env
                    .several_platforms
                    .then(|| crate::platforms::stage_platform(&env.platform, stage).to_string()),
            },
            single_snapshot_steps: Vec::new(),
        };
        let from_error = |run: &StageRun<'_, '_>, reason: String| BuildError::Step {
            step: run.step_id(1).to_string(),
            location: run.location_of(stage.span.start.line),
            text: format!("FROM {}", describe_base(&stage.base)),
            reason,
        };
        if run.needs_rootfs() {
            run.pending = Some(PendingRoot {
                layers: match &rootfs_from {
                    Some(_) => Vec::new(),
                    None => run.image.layers.clone(),
                },
                from: rootfs_from,
                volumes: Vec::new(),
            });
            // Without the cache every step needs the files: lay them out now.
            if env.cache.is_none() || env.options.single_snapshot {
                run.root().map_err(|reason| from_error(&run, reason))?;
            }
        }
        if env.options.single_snapshot {
            run.ensure_snapshotter()
                .map_err(|reason| from_error(&run, reason))?;
        }
        Ok(run)
    }

    /// The stage's filesystem, laid out on first use: the base (an earlier
    /// stage's tree or the base image's layers) then every cached layer since.
    fn root(&mut self) -> StepResult<PathBuf> {
        if let Some(root) = &self.rootfs {
            return Ok(root.clone());
        }
        let pending = self
            .pending
            .take()
            .ok_or("internal: a stage without a filesystem")?;
        if let Some(cache) = self.env.cache {
            cache.fetch_blobs(self.env.blobs, &pending.layers, &self.image.origins)?;
        }
        let root = if self.env.in_place {
            let root = self.prepare_in_place(pending.from, &pending.layers)?;
            for volume in &pending.volumes {
                make_volume_dir(&root, &self.workdir(), volume)?;
            }
            root
        } else {
            self.lay_out_at(pending, self.planned_root())?
        };
        self.rootfs = Some(root.clone());
        Ok(root)
    }

    /// Lays a pending filesystem out in the private directory `root`.
    fn lay_out_at(&self, pending: PendingRoot, root: PathBuf) -> StepResult<PathBuf> {
        fs_err::create_dir_all(&root).map_err(|e| format!("creating the stage root: {e}"))?;
        if let Some(from) = &pending.from {
            copy_tree(from, &root)
                .map_err(|reason| format!("copying the base stage's filesystem: {reason}"))?;
        }
        crate::unpack::unpack_layers(
            self.env.blobs,
            &pending.layers,
            &root,
            self.env.options.retries.image_fs_extract_retry,
        )?;
        for volume in &pending.volumes {
            make_volume_dir(&root, &self.workdir(), volume)?;
        }
        Ok(root)
    }

    /// Whether a later stage reads this stage's files (`COPY --from`,
    /// `RUN --mount from=`; a reference with a variable counts).
    fn files_used_by_later(&self) -> bool {
        let refers = |name: &str| {
            name.contains('$') || self.env.plan.resolve_stage_ref(name) == Some(self.stage.index)
        };
        self.env
            .plan
            .stages
            .iter()
            .filter(|s| s.index != self.stage.index)
            .flat_map(|s| &s.instructions)
            .any(|ins| match &ins.command {
                Command::Copy(c) | Command::Add(c) => c.from.as_deref().is_some_and(refers),
                Command::Run(r) => r
                    .mounts
                    .iter()
                    .filter_map(|m| m.from.as_deref())
                    .any(refers),
                _ => false,
            })
    }

    /// Where the stage's filesystem is (or will be) laid out.
    fn planned_root(&self) -> PathBuf {
        if self.env.in_place {
            PathBuf::from("/")
        } else {
            self.env
                .work
                .join(format!("stage-{}", self.stage.index))
                .join("rootfs")
        }
    }

    fn needs_rootfs(&self) -> bool {
        stage_needs_rootfs(self.env, self.stage)
    }

    /// In-place mode: clear `/` (all but the ignore list) and lay the base onto it.
    /// Layers are unpacked into the work dir first and copied over without the
    /// ignored paths (a runtime's bind-mounted /etc/hosts cannot be replaced).
    fn prepare_in_place(
        &self,
        saved_base: Option<PathBuf>,
        layers: &[kiln_oci::Descriptor],
    ) -> StepResult<PathBuf> {
        let ignore = self
            .env
            .in_place_ignore
            .as_ref()
            .ok_or("internal: in-place mode without an ignore list")?;
        let root = PathBuf::from("/");
        crate::inplace::reset_root(&root, ignore)?;
        let source = match saved_base {
            Some(saved) if layers.is_empty() => Some(saved),
            saved => {
                let staging = self.env.work.join(format!("base-{}", self.stage.index));
                fs_err::create_dir_all(&staging).map_err(|e| e.to_string())?;
                if let Some(saved) = saved {
                    copy_tree(&saved, &staging)?;
                }
                crate::unpack::unpack_layers(
                    self.env.blobs,
                    layers,
                    &staging,
                    self.env.options.retries.image_fs_extract_retry,
                )?;
                Some(staging)
            }
        };
        if let Some(source) = source {
            copy_tree_filtered(&source, &root, &|rel| ignore.is_ignored(rel))?;
        }
        Ok(root)
    }

    fn used_by_later(&self) -> bool {
        self.env
            .plan
            .stages
            .iter()
            .any(|s| s.index != self.stage.index && s.depends_on.contains(&self.stage.index))
    }

    fn step_id(&self, step: usize) -> StepId {
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
    pub(crate) fn stage_index(&self) -> usize {
        self.stage.index
    }

    /// The platform this stage is built for (`FROM --platform=...`, else the target).
    pub(crate) fn platform(&self) -> Platform {
        crate::platforms::stage_platform(&self.env.platform, self.stage)
    }

    fn location_of(&self, line: u32) -> String {
        format!("{}:{line}", self.env.file)
    }

    /// Runs every step and returns the stage's image.
    pub fn run(mut self) -> Result<StageOutput, BuildError> {
        let from_id = self.step_id(1);
        let from_text = format!(
            "FROM {}{}",
            describe_base(&self.stage.base),
            self.stage
                .name
                .as_ref()
                .map(|n| format!(" AS {n}"))
                .unwrap_or_default()
        );
        self.env.observer.event(&BuildEvent::StepStarted {
            id: from_id.clone(),
            text: from_text.clone(),
        });
        let start = Instant::now();
        self.run_onbuild_triggers(&from_id, &from_text)?;
        self.env.observer.event(&BuildEvent::StepFinished {
            id: from_id,
            elapsed: start.elapsed(),
            layer: None,
        });
        let stage = self.stage;
        for (i, ins) in stage.instructions.iter().enumerate() {
            let id = self.step_id(i + 2);
            self.current_step = id.clone();
            let text = ins.original.trim().to_string();
            self.env.observer.event(&BuildEvent::StepStarted {
                id: id.clone(),
                text: text.clone(),
            });
            let start = Instant::now();
            let layer = self.step(ins, &id).map_err(|reason| BuildError::Step {
                step: id.to_string(),
                location: self.location_of(ins.span.start.line),
                text,
                reason,
            })?;
            self.env.observer.event(&BuildEvent::StepFinished {
                id,
                elapsed: start.elapsed(),
                layer: layer.map(|d| d.to_string()),
            });
        }
        if self.env.options.single_snapshot {
            let last = self.step_id(stage.instructions.len() + 1);
            self.finish_single_snapshot()
                .map_err(|reason| BuildError::Step {
                    step: last.to_string(),
                    location: self.location_of(stage.span.start.line),
                    text: "(single snapshot of the stage)".into(),
                    reason,
                })?;
        }
        // Files never laid out (every step hit the cache) are laid out now,
        // privately, only if a later stage reads them.
        if self.rootfs.is_none()
            && self.files_used_by_later()
            && let Some(pending) = self.pending.take()
        {
            let last = self.step_id(stage.instructions.len() + 1);
            let fail = |reason: String| BuildError::Step {
                step: last.to_string(),
                location: self.location_of(stage.span.start.line),
                text: "(laying out the stage for later stages)".into(),
                reason,
            };
            if let Some(cache) = self.env.cache {
                cache
                    .fetch_blobs(self.env.blobs, &pending.layers, &self.image.origins)
                    .map_err(fail)?;
            }
            let dir = self
                .env
                .work
                .join(format!("stage-{}", stage.index))
                .join("files");
            let root = self.lay_out_at(pending, dir).map_err(fail)?;
            return Ok(StageOutput {
                image: self.image,
                rootfs: Some(root),
                cache_key: self.cache_key,
                vars: self.vars,
            });
        }
        let rootfs = match (&self.env.in_place_ignore, self.rootfs.take()) {
            // In place, `/` is about to be reused: keep a copy only if a later
            // stage builds on or copies from this one.
            (Some(ignore), Some(root)) if self.used_by_later() => {
                let dest = self
                    .env
                    .work
                    .join(format!("stage-{}", stage.index))
                    .join("saved");
                let saved = crate::inplace::save_root(&root, ignore, &dest).map_err(|reason| {
                    BuildError::Step {
                        step: self.step_id(stage.instructions.len() + 1).to_string(),
                        location: self.location_of(stage.span.start.line),
                        text: "(saving the stage for later stages)".into(),
                        reason,
                    }
                })?;
                Some(saved)
            }
            (Some(_), _) => None,
            (None, root) => root,
        };
        Ok(StageOutput {
            image: self.image,
            rootfs,
            cache_key: self.cache_key,
            vars: self.vars,
        })
    }

    /// A base image's ONBUILD triggers run right after FROM, then are cleared.
    fn run_onbuild_triggers(&mut self, id: &StepId, from_text: &str) -> Result<(), BuildError> {
        let triggers = self
            .image
            .config
            .config
            .as_mut()
            .and_then(|c| c.on_build.take())
            .unwrap_or_default();
        let location = self.location_of(self.stage.span.start.line);
        for trigger in triggers {
            let fail = |reason: String| BuildError::Step {
                step: id.to_string(),
                location: location.clone(),
                text: format!("{from_text} (ONBUILD {trigger})"),
                reason,
            };
            let ins = kiln_dockerfile::instructions::parse_trigger(&trigger)
                .map_err(|d| fail(format!("the base image's trigger does not parse: {d}")))?;
            self.step(&ins, id).map_err(fail)?;
        }
        Ok(())
    }

    // ---- state ----

    fn workdir(&self) -> String {
        self.image
            .config
            .config
            .as_ref()
            .and_then(|c| c.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into())
    }

    fn user(&self) -> String {
        self.image
            .config
            .config
            .as_ref()
            .and_then(|c| c.user.clone())
            .unwrap_or_default()
    }

    fn shell(&self) -> Vec<String> {
        self.image
            .config
            .config
            .as_ref()
            .and_then(|c| c.shell.clone())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    fn advance_key(&mut self, material: &[u8]) -> Digest {
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

    fn history(&self, created_by: String) -> History {
        History {
            created: Some(self.env.created.clone()),
            created_by: Some(created_by),
            comment: Some("buildkit.dockerfile.v0".into()),
            ..History::default()
        }
    }

    fn metadata_step(&mut self, created_by: String) {
        self.advance_key(created_by.as_bytes());
        let history = self.history(created_by);
        self.image.config.push_empty_step(history);
    }

    fn sync_env_to_config(&mut self) {
        let env: Vec<String> = self
            .vars
            .env()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        self.image.config.container_config_mut().env = Some(env);
    }

    // ---- steps ----

    fn step(&mut self, raw: &Instruction, id: &StepId) -> StepResult<Option<Digest>> {
        let ins = self.vars.expand(raw).map_err(|d| d.message.clone())?;
        let result = self.dispatch(&ins, id);
        self.vars.apply(&ins);
        if matches!(ins.command, Command::Env(_)) {
            self.sync_env_to_config();
        }
        result
    }

    fn dispatch(&mut self, ins: &Instruction, id: &StepId) -> StepResult<Option<Digest>> {
        match &ins.command {
            Command::Arg(a) => {
                let names: Vec<&str> = a.args.iter().map(|d| d.name.as_str()).collect();
                self.advance_key(format!("ARG {}", names.join(" ")).as_bytes());
                Ok(None)
            }
            Command::Env(kv) => {
                for p in &kv.pairs {
                    if p.key.is_empty() {
                        return Err("ENV names can not be blank".into());
                    }
                }
                let text = pairs_text(&kv.pairs);
                self.metadata_step(format!("ENV {text}"));
                Ok(None)
            }
            Command::Label(kv) => {
                let config = self.image.config.container_config_mut();
                let labels = config.labels.get_or_insert_with(BTreeMap::new);
                for p in &kv.pairs {
                    if p.key.is_empty() {
                        return Err("LABEL names can not be blank".into());
                    }
                    labels.insert(p.key.clone(), p.value.clone());
                }
                let text = pairs_text(&kv.pairs);
                self.metadata_step(format!("LABEL {text}"));
                Ok(None)
            }
            Command::Workdir(w) => self.workdir_step(&w.value),
            Command::User(u) => {
                self.image.config.container_config_mut().user = Some(u.value.clone());
                self.metadata_step(format!("USER {}", u.value));
                Ok(None)
            }
            Command::Expose(words) => {
                let ports: Vec<String> = words
                    .values
                    .iter()
                    .map(|w| {
                        if w.contains('/') {
                            w.to_ascii_lowercase()
                        } else {
                            format!("{w}/tcp")
                        }
                    })
                    .collect();
                let config = self.image.config.container_config_mut();
                let map = config.exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in &ports {
                    map.insert(p.clone(), kiln_oci::EmptyObject {});
                }
                let shown: Vec<String> = ports.iter().map(|p| format!("{p}:{{}}")).collect();
                self.metadata_step(format!("EXPOSE map[{}]", shown.join(" ")));
                Ok(None)
            }
            Command::Volume(words) => {
                if words.values.iter().any(String::is_empty) {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                let config = self.image.config.container_config_mut();
                let map = config.volumes.get_or_insert_with(BTreeMap::new);
                for v in &words.values {
                    map.insert(v.clone(), kiln_oci::EmptyObject {});
                }
                // As Docker's classic builder and kaniko: the directory exists for
                // later steps (a later RUN's snapshot captures it).
                let workdir = self.workdir();
                for v in &words.values {
                    match (&self.rootfs, &mut self.pending) {
                        (Some(root), _) => make_volume_dir(root, &workdir, v)?,
                        (None, Some(pending)) => pending.volumes.push(join_workdir(&workdir, v)),
                        (None, None) => {}
                    }
                }
                self.metadata_step(format!("VOLUME {}", go_list(&words.values)));
                Ok(None)
            }
            Command::Cmd(line) => {
                let argv = self.command_argv(line);
                self.image.config.container_config_mut().cmd = Some(argv.clone());
                self.cmd_set_here = true;
                self.metadata_step(format!("CMD {}", go_json_list(&argv)));
                Ok(None)
            }
            Command::Entrypoint(line) => {
                let argv = self.command_argv(line);
                let inherited_cmd = !self.cmd_set_here;
                let config = self.image.config.container_config_mut();
                config.entrypoint = Some(argv.clone());
                if inherited_cmd {
                    // Docker: ENTRYPOINT resets a CMD inherited from the base.
                    config.cmd = None;
                }
                self.metadata_step(format!("ENTRYPOINT {}", go_json_list(&argv)));
                Ok(None)
            }
            Command::Shell(words) => {
                self.image.config.container_config_mut().shell = Some(words.values.clone());
                self.metadata_step(format!("SHELL {}", go_json_list(&words.values)));
                Ok(None)
            }
            Command::Stopsignal(w) => {
                self.image.config.container_config_mut().stop_signal = Some(w.value.clone());
                self.metadata_step(format!("STOPSIGNAL {}", w.value));
                Ok(None)
            }
            Command::Maintainer(w) => {
                self.image.config.author = Some(w.value.clone());
                self.metadata_step(format!("MAINTAINER {}", w.value));
                Ok(None)
            }
            Command::Healthcheck(h) => {
                let mut check = kiln_oci::Healthcheck::default();
                match h {
                    Healthcheck::None => check.test = Some(vec!["NONE".into()]),
                    Healthcheck::Cmd(c) => {
                        let nanos = |d: &Option<std::time::Duration>| {
                            d.map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
                        };
                        check.test = Some(c.test.clone());
                        check.interval = nanos(&c.interval);
                        check.timeout = nanos(&c.timeout);
                        check.start_period = nanos(&c.start_period);
                        check.start_interval = nanos(&c.start_interval);
                        check.retries = c.retries.map(i64::from);
                    }
                }
                let shown = go_list(check.test.as_deref().unwrap_or(&[]));
                self.image.config.container_config_mut().healthcheck = Some(check);
                self.metadata_step(format!("HEALTHCHECK &{{{shown}}}"));
                Ok(None)
            }
            Command::Onbuild(o) => {
                self.image
                    .config
                    .container_config_mut()
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(o.trigger.clone());
                self.metadata_step(format!("ONBUILD {}", o.trigger));
                Ok(None)
            }
            Command::Copy(c) => self.copy_step(c, false),
            Command::Add(c) => self.copy_step(c, true),
            Command::Run(_) => self.run_step(ins, id),
            Command::From(_) => Err("FROM inside a stage".into()),
        }
    }

    /// CMD/ENTRYPOINT argv: exec form as is, shell form through SHELL.
    fn command_argv(&self, line: &CommandLine) -> Vec<String> {
        match line {
            CommandLine::Exec(argv) => argv.clone(),
            CommandLine::Shell(text) => {
                let mut argv = self.shell();
                argv.push(text.clone());
                argv
            }
        }
    }

    fn workdir_step(&mut self, raw: &str) -> StepResult<Option<Digest>> {
        if raw.is_empty() {
            return Err("WORKDIR can not be empty".into());
        }
        let dir = join_workdir(&self.workdir(), raw);
        self.image.config.container_config_mut().working_dir = Some(dir.clone());
        let created_by = format!("WORKDIR {dir}");
        let key = self.advance_key(created_by.as_bytes());
        if self.rootfs.is_none()
            && let Some(result) = self.cached(Cacheable::Workdir, &key, &created_by)?
        {
            return Ok(result);
        }
        // Create the directory, owned by USER as BuildKit does, when missing.
        let mut entries = Vec::new();
        let root = match (&self.rootfs, &self.pending) {
            (None, None) => None,
            _ => Some(self.root()?),
        };
        if let Some(root) = root {
            let resolved = resolve_in_root(&root, &dir);
            let (uid, gid) = self.user_ids(&root);
            let mut path = String::new();
            for part in resolved.split('/').filter(|p| !p.is_empty()) {
                path.push('/');
                path.push_str(part);
                if std::fs::symlink_metadata(host_of(&root, &path)).is_err() {
                    entries.push(Entry::dir(
                        LayerPath::new(&path).map_err(|e| e.to_string())?,
                        Metadata {
                            mode: 0o755,
                            uid,
                            gid,
                            mtime: self.file_time(),
                            ..Metadata::default()
                        },
                    ));
                }
            }
        }
        let layer = if entries.is_empty() {
            let history = self.history(created_by.clone());
            self.image.config.push_empty_step(history);
            None
        } else {
            self.commit_entries(entries, created_by.clone())?
        };
        self.remember(Cacheable::Workdir, key, created_by, layer.as_ref());
        Ok(layer)
    }

    /// Owner of directories WORKDIR creates: USER resolved as BuildKit's file
    /// operations do (a name through /etc/passwd, `0:0` when it is not there;
    /// a bare uid is also the gid).
    fn user_ids(&self, root: &Path) -> (u64, u64) {
        let user = self.user();
        if user.is_empty() {
            return (0, 0);
        }
        crate::owner::resolve_chown(&user, Some(root)).map_or((0, 0), |o| (o.uid, o.gid))
    }

    fn file_time(&self) -> Timestamp {
        Timestamp::from_secs(self.env.layer_epoch.unwrap_or_else(crate::time::now_secs))
    }

    fn copy_step(&mut self, c: &CopyCmd, is_add: bool) -> StepResult<Option<Digest>> {
        let keyword = if is_add { "ADD" } else { "COPY" };
        let mut git_sources = Vec::new();
        let mut other = Vec::new();
        for source in &c.sources {
            match crate::add_git::parse(source)? {
                Some(git) => git_sources.push(git),
                None => other.push(source.clone()),
            }
        }
        let is_url = |s: &String| s.starts_with("http://") || s.starts_with("https://");
        let (urls, local): (Vec<String>, Vec<String>) = other.into_iter().partition(is_url);
        let has_remote = !urls.is_empty() || !git_sources.is_empty();
        if !is_add && has_remote {
            return Err("COPY does not accept URLs; use ADD".into());
        }
        if c.checksum.is_some() && (urls.len() + git_sources.len() != 1 || !local.is_empty()) {
            return Err("ADD --checksum needs exactly one URL or git source".into());
        }
        if local.iter().any(|s| s.starts_with("git@")) {
            return Err(NOT_YET_GIT.into());
        }
        let chmod = c.chmod.as_deref().map(Chmod::parse).transpose()?;
        let staging = self.env.work.join("staging").join(format!(
            "{}-{}",
            self.stage.index,
            self.cache_key.hex()
        ));
        // URLs (ADD only): downloaded first, their content is part of the key.
        let mut downloads = Vec::new();
        for (n, url) in urls.iter().enumerate() {
            fs_err::create_dir_all(&staging).map_err(|e| e.to_string())?;
            let file = staging.join(format!("url-{n}"));
            downloads.push(crate::download::download_blocking(
                url,
                &file,
                c.checksum.as_deref(),
            )?);
        }
        // git repositories (ADD only): checked out first, likewise.
        let mut git_checkouts = Vec::new();
        let git_context = match &self.env.options.context {
            crate::ContextSource::Git(g) => Some(&**g),
            _ => None,
        };
        for (n, git) in git_sources.iter().enumerate() {
            git_checkouts.push(crate::add_git::checkout(
                git,
                git_context,
                c.keep_git_dir == Some(true),
                c.checksum.as_deref(),
                &staging.join(format!("git-{n}")),
            )?);
        }
        let sources = CopySources {
            cmd: c,
            local: &local,
            downloads: &downloads,
            git_checkouts: &git_checkouts,
            chmod: chmod.as_ref(),
            extract: is_add && c.unpack != Some(false),
        };
        let mut shown: Vec<String> = c.sources.clone();
        if let Some(sum) = &c.checksum {
            shown.insert(0, format!("--checksum={sum}"));
        }
        shown.extend(c.inline.iter().map(|i| format!("<<{}", i.path)));
        let created_by = format!("{keyword} {} {} # buildkit", shown.join(" "), c.dest);
        // Cache key: the instruction and the content, mode and owner of every
        // source as it would land in an empty root (so the key never depends on
        // whether the stage's files are laid out yet).
        let unresolved = self.copy_entries(&sources, None, None, &staging.join("key"))?;
        let mut material = format!(
            "{created_by}\nfrom={:?} chown={:?} chmod={:?} exclude={:?} parents={}\n",
            c.from, c.chown, c.chmod, c.exclude, c.parents
        )
        .into_bytes();
        material.extend(entries_digest(&unresolved)?.as_bytes());
        drop(unresolved);
        let key = self.advance_key(&material);
        if let Some(result) = self.cached(Cacheable::Copy, &key, &created_by)? {
            return Ok(result);
        }
        let root = self.root()?;
        let owner = match &c.chown {
            Some(spec) => Some(resolve_chown(spec, Some(&root))?),
            None => None,
        };
        let entries = self.copy_entries(&sources, Some(&root), owner, &staging)?;
        let layer = self.commit_entries(entries, created_by.clone())?;
        self.remember(Cacheable::Copy, key, created_by, layer.as_ref());
        Ok(layer)
    }

    /// The entries of a COPY/ADD landing in `root` (`None`: an empty root).
    fn copy_entries(
        &self,
        sources: &CopySources<'_>,
        root: Option<&Path>,
        owner: Option<Owner>,
        staging: &Path,
    ) -> StepResult<Vec<Entry>> {
        let c = sources.cmd;
        let request = CopyRequest {
            sources: sources.local.to_vec(),
            dest: c.dest.clone(),
            workdir: self.workdir(),
            chown: owner,
            chmod: sources.chmod.cloned(),
            excludes: c.exclude.clone(),
            parents: c.parents,
            extract_archives: sources.extract,
            created: self.file_time(),
        };
        let mut entries = Vec::new();
        if !sources.local.is_empty() {
            let source_root;
            let tree = match &c.from {
                None => SourceTree::Context {
                    root: self.env.context.root(),
                    ignore: self.env.context.ignore(),
                },
                Some(name) => {
                    source_root = self.stage_root(name).ok_or_else(|| {
                        format!("--from={name}: neither an earlier stage nor an image reference")
                    })?;
                    SourceTree::Stage { root: &source_root }
                }
            };
            entries = plan_copy(&request, tree, root, staging)?;
        }
        // git checkouts: their contents land in the destination directory.
        for checkout in sources.git_checkouts {
            let git_request = CopyRequest {
                sources: vec![".".into()],
                excludes: Vec::new(),
                parents: false,
                extract_archives: false,
                dest: if c.dest.ends_with('/') {
                    c.dest.clone()
                } else {
                    format!("{}/", c.dest)
                },
                ..request.clone()
            };
            entries.extend(plan_copy(
                &git_request,
                SourceTree::Stage { root: checkout },
                root,
                staging,
            )?);
        }
        // URLs: mode 0600, never extracted.
        let many = sources.downloads.len() + sources.local.len() + c.inline.len() > 1;
        for got in sources.downloads {
            let dest_abs = join_workdir(&self.workdir(), &c.dest);
            let target = if c.dest.ends_with('/') || many {
                format!("{dest_abs}/{}", got.file_name)
            } else {
                dest_abs
            };
            let owner = owner.unwrap_or(Owner { uid: 0, gid: 0 });
            let path = LayerPath::new(&target).map_err(|e| e.to_string())?;
            push_parents(&mut entries, &path, owner, self.file_time(), root)?;
            entries.push(Entry::file(
                path,
                got.path.clone(),
                Metadata {
                    mode: sources.chmod.map_or(0o600, |m| m.apply(0o600, false)),
                    uid: owner.uid,
                    gid: owner.gid,
                    mtime: got
                        .last_modified
                        .map_or_else(|| self.file_time(), Timestamp::from_secs),
                    ..Metadata::default()
                },
            ));
        }
        // Heredoc sources (`COPY <<EOF /dest`) become files.
        if !c.inline.is_empty() {
            let dest_is_dir = c.dest.ends_with('/') || c.inline.len() + c.sources.len() > 1;
            let dest_abs = join_workdir(&self.workdir(), &c.dest);
            let owner = owner.unwrap_or(Owner { uid: 0, gid: 0 });
            let mode = sources.chmod.map_or(0o644, |m| m.apply(0o644, false));
            for inline in &c.inline {
                let target = if dest_is_dir {
                    format!("{dest_abs}/{}", inline.path)
                } else {
                    dest_abs.clone()
                };
                let path = LayerPath::new(&target).map_err(|e| e.to_string())?;
                push_parents(&mut entries, &path, owner, self.file_time(), root)?;
                entries.push(Entry::bytes(
                    path,
                    inline.data.clone().into_bytes(),
                    Metadata {
                        mode,
                        uid: owner.uid,
                        gid: owner.gid,
                        mtime: self.file_time(),
                        ..Metadata::default()
                    },
                ));
            }
        }
        Ok(entries)
    }

    /// Applies entries to the rootfs (so later steps see them) and makes a layer,
    /// unless in single-snapshot mode.
    fn commit_entries(
        &mut self,
        entries: Vec<Entry>,
        created_by: String,
    ) -> StepResult<Option<Digest>> {
        let options = kiln_layer::ApplyOptions {
            preserve_owners: crate::archive::running_as_root(),
            xattrs: true,
        };
        if let Some(root) = self.rootfs.clone() {
            if !self.env.options.single_snapshot {
                // The next RUN takes a fresh baseline.
                self.snapshotter = None;
                if !entries.is_empty() {
                    // Root and layer from one read of the sources.
                    return self.push_layer_applying(entries, created_by, Some((&root, &options)));
                }
            }
            kiln_layer::apply_entries(entries.clone(), &root, &options)
                .map_err(|e| format!("writing the step's files into the stage root: {e}"))?;
        }
        if self.env.options.single_snapshot {
            self.single_snapshot_steps.push(created_by);
            return Ok(None);
        }
        self.push_layer(entries, created_by)
    }

    fn push_layer(
        &mut self,
        entries: Vec<Entry>,
        created_by: String,
    ) -> StepResult<Option<Digest>> {
        self.push_layer_applying(entries, created_by, None)
    }

    /// [`StageRun::push_layer`], also writing the entries into a root from the
    /// same read of their sources when `apply_to` names one.
    fn push_layer_applying(
        &mut self,
        entries: Vec<Entry>,
        created_by: String,
        apply_to: Option<(&Path, &kiln_layer::ApplyOptions)>,
    ) -> StepResult<Option<Digest>> {
        if entries.is_empty() {
            let history = self.history(created_by);
            self.image.config.push_empty_step(history);
            return Ok(None);
        }
        let encode = &self.env.encode;
        let layer = match self
            .env
            .push_pipeline
            .filter(|p| p.uploads_stage(self.stage.index))
        {
            Some(p) => p.encode_and_upload(self.env.blobs, self.env.observer, |sink| {
                encode_entries(encode, entries, sink, apply_to)
            })?,
            None => encode_into_store(self.env, |sink| {
                encode_entries(encode, entries, sink, apply_to)
            })?,
        };
        let history = self.history(created_by);
        self.image.config.push_layer(layer.diff_id.clone(), history);
        let digest = layer.digest.clone();
        self.image.layers.push(layer.descriptor());
        Ok(Some(digest))
    }

    fn ensure_snapshotter(&mut self) -> StepResult<()> {
        if self.snapshotter.is_some() {
            return Ok(());
        }
        let root = self
            .rootfs
            .clone()
            .ok_or("internal: a snapshot of a stage without a filesystem")?;
        let ignore = match &self.env.in_place_ignore {
            Some(list) => list.clone(),
            None => {
                let mut ignore = kiln_snapshot::IgnoreList::new();
                for p in ["/proc", "/sys", "/dev", "/etc/mtab"] {
                    ignore.add(p).map_err(|e| e.to_string())?;
                }
                if self.env.options.ignore_var_run {
                    ignore.add("/var/run").map_err(|e| e.to_string())?;
                }
                for p in &self.env.options.ignore_paths {
                    ignore.add(p).map_err(|e| e.to_string())?;
                }
                ignore
            }
        };
        let mode = match self.env.options.snapshot_mode {
            crate::options::SnapshotMode::Full => kiln_snapshot::SnapshotMode::Full,
            crate::options::SnapshotMode::Redo => kiln_snapshot::SnapshotMode::Redo,
            crate::options::SnapshotMode::Time => kiln_snapshot::SnapshotMode::Time,
        };
        // An overlay over the stage root where mounts are allowed (its upper
        // dir is the change, whatever the size of the root); a walk in place
        // (`/` cannot be overlaid under ourselves), for single-snapshot stages
        // (one baseline for all steps) and wherever overlay cannot be mounted.
        let backend = if self.env.in_place || self.env.options.single_snapshot {
            kiln_snapshot::BackendChoice::Walk
        } else {
            kiln_snapshot::BackendChoice::Auto
        };
        let options = kiln_snapshot::SnapshotOptions {
            mode,
            ignore,
            backend,
            scratch: Some(self.env.work.join(format!("overlay-{}", self.stage.index))),
            overlay_over_root: true,
        };
        let snap = kiln_snapshot::Snapshotter::new(root, options)
            .map_err(|e| format!("preparing the filesystem snapshots: {e}"))?;
        tracing::debug!(backend = ?snap.backend(), "snapshot backend");
        self.snapshotter = Some(snap);
        Ok(())
    }

    fn run_step(&mut self, ins: &Instruction, id: &StepId) -> StepResult<Option<Digest>> {
        let Command::Run(cmd) = &ins.command else {
            return Err("internal: not a RUN".into());
        };
        // The key comes before the files: a hit needs no filesystem.
        let step = RunStep::prepare(self, cmd, ins.span.start.line, &self.planned_root())?;
        let created_by = step.created_by.clone();
        let key = self.advance_key(step.key_material.as_bytes());
        if let Some(result) = self.cached(Cacheable::Run, &key, &created_by)? {
            return Ok(result);
        }
        self.root()?;
        self.ensure_snapshotter()?;
        if self.env.options.single_snapshot {
            // The stage's one baseline stays; the diff comes at its end.
            step.execute(self.env, id)?;
            self.single_snapshot_steps.push(created_by);
            return Ok(None);
        }
        let snap = self
            .snapshotter
            .as_mut()
            .ok_or("internal: no snapshotter")?;
        let running = snap
            .begin()
            .map_err(|e| format!("preparing the RUN's snapshot: {e}"))?;
        step.execute(self.env, id)?;
        let changes = running
            .finish()
            .map_err(|e| format!("snapshotting the RUN's changes: {e}"))?;
        let layer = self.push_layer(changes.into_entries(), created_by.clone())?;
        self.remember(Cacheable::Run, key, created_by, layer.as_ref());
        Ok(layer)
    }

    /// Whether the cache serves steps of `kind` in this build.
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
    fn cached(
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
        match (&self.rootfs, &mut self.pending) {
            (Some(root), _) => {
                let layers = std::slice::from_ref(&layer);
                cache.fetch_blobs(self.env.blobs, layers, &self.image.origins)?;
                crate::unpack::unpack_layers(
                    self.env.blobs,
                    layers,
                    root,
                    self.env.options.retries.image_fs_extract_retry,
                )?;
                // The next RUN takes a fresh baseline.
                self.snapshotter = None;
            }
            (None, Some(pending)) => pending.layers.push(layer.clone()),
            (None, None) => return Err("internal: a cached layer for a stage without files".into()),
        }
        self.image.config.push_layer(diff_id, history);
        let digest = layer.digest.clone();
        self.image.layers.push(layer);
        Ok(Some(Some(digest)))
    }

    /// Stores what a step that missed left, in the background.
    fn remember(&self, kind: Cacheable, key: Digest, created_by: String, layer: Option<&Digest>) {
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

    fn finish_single_snapshot(&mut self) -> StepResult<()> {
        let changes = self
            .snapshotter
            .as_mut()
            .ok_or("internal: no snapshotter")?
            .begin()
            .and_then(|s| s.finish())
            .map_err(|e| format!("snapshotting the stage: {e}"))?;
        let steps = std::mem::take(&mut self.single_snapshot_steps);
        let created_by = if steps.is_empty() {
            "single snapshot".to_string()
        } else {
            steps.join(" && ")
        };
        self.push_layer(changes.into_entries(), created_by)?;
        Ok(())
    }

    /// What RUN needs from the stage.
    pub(crate) fn run_context(&self) -> RunContext {
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
    pub(crate) fn stage_root(&self, name: &str) -> Option<PathBuf> {
        match self.env.plan.resolve_stage_ref(name) {
            Some(index) => self.done.get(&index)?.rootfs.clone(),
            None => self.images.get(name).cloned(),
        }
    }

    pub(crate) fn build_env(&self) -> &BuildEnv<'b> {
        self.env
    }
}

/// Image references a stage names with `COPY --from` or `RUN --mount from=`
/// (not earlier stages; values with variables are resolved at the step).
pub fn images_used_by(plan: &Plan, stage: &PlannedStage) -> Vec<String> {
    let mut out = Vec::new();
    for ins in &stage.instructions {
        let froms: Vec<&str> = match &ins.command {
            Command::Copy(c) | Command::Add(c) => c.from.as_deref().into_iter().collect(),
            Command::Run(r) => r.mounts.iter().filter_map(|m| m.from.as_deref()).collect(),
            _ => Vec::new(),
        };
        for from in froms {
            if !from.contains('$')
                && plan.resolve_stage_ref(from).is_none()
                && !out.iter().any(|o| o == from)
            {
                out.push(from.to_string());
            }
        }
    }
    out
}

/// Whether a stage needs a root filesystem: single-snapshot mode, a RUN,
/// COPY/ADD or WORKDIR step, or a later stage that builds on or copies from it.
pub fn stage_needs_rootfs(env: &BuildEnv<'_>, stage: &PlannedStage) -> bool {
    if env.options.single_snapshot {
        return true;
    }
    let fs_step = stage.instructions.iter().any(|i| {
        matches!(
            i.command,
            Command::Run(_) | Command::Copy(_) | Command::Add(_) | Command::Workdir(_)
        )
    });
    let used_by_later = env
        .plan
        .stages
        .iter()
        .any(|s| s.index != stage.index && s.depends_on.contains(&stage.index));
    fs_step || used_by_later
}

fn describe_base(base: &PlanBase) -> String {
    match base {
        PlanBase::Scratch => "scratch".into(),
        PlanBase::Image(r) => r.clone(),
        PlanBase::Stage(i) => format!("stage {i}"),
    }
}

fn pairs_text(pairs: &[kiln_dockerfile::instructions::KeyValue]) -> String {
    pairs
        .iter()
        .map(|p| format!("{}={}", p.key, p.value))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Go's `%q`-style JSON list as BuildKit writes CMD/ENTRYPOINT history: `["a" "b"]`.
fn go_json_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", quoted.join(" "))
}

const NOT_YET_GIT: &str = "ADD from a git repository over SSH (git@HOST:PATH) is not supported by kiln; use its https://HOST/PATH.git URL";

/// Adds the missing parent directories of `path` to `entries`: from the stage
/// root when they exist there (unchanged metadata), else new (0755, `owner`).
fn push_parents(
    entries: &mut Vec<Entry>,
    path: &LayerPath,
    owner: Owner,
    mtime: Timestamp,
    root: Option<&Path>,
) -> StepResult<()> {
    let mut parent = path.parent();
    while let Some(p) = parent {
        if !entries.iter().any(|e| e.path == p) {
            let host = root.map(|r| host_of(r, &format!("/{p}")));
            let meta = match host.as_deref().map(std::fs::symlink_metadata) {
                Some(Ok(m)) if m.is_dir() => {
                    use std::os::unix::fs::MetadataExt;
                    Metadata {
                        mode: m.mode() & 0o7777,
                        uid: u64::from(m.uid()),
                        gid: u64::from(m.gid()),
                        mtime: Timestamp::from_secs(m.mtime()),
                        ..Metadata::default()
                    }
                }
                _ => Metadata {
                    mode: 0o755,
                    uid: owner.uid,
                    gid: owner.gid,
                    mtime,
                    ..Metadata::default()
                },
            };
            entries.push(Entry::dir(p.clone(), meta));
        }
        parent = p.parent();
    }
    Ok(())
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
    },
}

/// Encodes a layer blob into the store through `encode`, which writes it into
/// the sink it is given and hands the sink back.
pub fn encode_into_store(
    env: &BuildEnv<'_>,
    encode: impl FnOnce(BlobFile) -> StepResult<(kiln_layer::EncodedLayer, BlobFile)>,
) -> StepResult<kiln_layer::EncodedLayer> {
    let temp = env.blobs.temp_path();
    let file = fs_err::File::create(&temp).map_err(|e| format!("writing the layer: {e}"))?;
    // A half-written blob (a full disk) must not stay behind, taking space.
    let discard = |e: String| {
        let _ = fs_err::remove_file(&temp);
        e
    };
    // The encoder's error names what it wrote; the blob file names the directory on
    // this machine (the one that filled up, when the disk is full).
    let (layer, sink) = encode(std::io::BufWriter::with_capacity(
        1 << 20,
        file.into_parts().0,
    ))
    .map_err(|e| discard(format!("{e} (into {})", temp.display())))?;
    sink.into_inner().map_err(|e| {
        discard(format!(
            "writing the layer {}: {}",
            temp.display(),
            e.error()
        ))
    })?;
    env.blobs
        .insert_file(&temp, &layer.digest)
        .map_err(|e| e.to_string())?;
    Ok(layer)
}

/// The sink a layer blob is written into.
pub type BlobFile = std::io::BufWriter<std::fs::File>;

/// Encodes entries into `sink`; with `apply_to`, also writes them into that
/// root from the same read of their sources (kiln-layer's tee).
pub fn encode_entries<W: std::io::Write + Send>(
    encode: &EncodeOptions,
    entries: Vec<Entry>,
    sink: W,
    apply_to: Option<(&Path, &kiln_layer::ApplyOptions)>,
) -> StepResult<(kiln_layer::EncodedLayer, W)> {
    match apply_to {
        None => kiln_layer::encode_layer(entries, encode, sink)
            .map_err(|e| format!("writing the layer: {e}")),
        Some((root, options)) => {
            let (layer, sink, _) =
                kiln_layer::encode_layer_applying(entries, encode, sink, root, options).map_err(
                    |e| format!("writing the layer and the step's files into the stage root: {e}"),
                )?;
            Ok((layer, sink))
        }
    }
}

/// Layer encoding options from the build options.
pub fn encode_options(options: &BuildOptions, layer_epoch: Option<i64>) -> EncodeOptions {
    let compression = match options.compression {
        crate::options::Compression::Gzip => kiln_layer::Compression::Gzip {
            level: options
                .compression_level
                .map_or(6, |l| l.clamp(0, 9) as u32),
        },
        crate::options::Compression::Zstd => kiln_layer::Compression::Zstd {
            level: options.compression_level.unwrap_or(3),
        },
    };
    EncodeOptions {
        compression,
        tar: TarOptions {
            source_date_epoch: layer_epoch,
        },
        threads: None,
    }
}

/// A digest over entry paths, kinds, modes, owners and file contents (not
/// mtimes), for cache keys.
fn entries_digest(entries: &[Entry]) -> StepResult<String> {
    let mut hasher = kiln_oci::Hasher::sha256();
    for e in entries {
        hasher.update(e.path.as_bytes());
        hasher.update(
            format!(
                "\0{}\0{:o}\0{}:{}\0",
                e.kind.name(),
                e.meta.mode,
                e.meta.uid,
                e.meta.gid
            )
            .as_bytes(),
        );
        match &e.kind {
            kiln_layer::EntryKind::File(kiln_layer::FileSource::Path(p)) => {
                let mut file = fs_err::File::open(p).map_err(|e| e.to_string())?;
                let mut h = kiln_oci::DigestWriter::new(std::io::sink());
                std::io::copy(&mut file, &mut h).map_err(|e| e.to_string())?;
                let (_, d, _) = h.finish().map_err(|e| e.to_string())?;
                hasher.update(d.to_string().as_bytes());
            }
            kiln_layer::EntryKind::File(kiln_layer::FileSource::Bytes(b)) => hasher.update(b),
            kiln_layer::EntryKind::Symlink { target } => hasher.update(target.as_encoded_bytes()),
            kiln_layer::EntryKind::Hardlink { target } => hasher.update(target.as_bytes()),
            _ => {}
        }
    }
    Ok(hasher.finish().to_string())
}

/// Creates a VOLUME's directory in `root` when it does not exist.
fn make_volume_dir(root: &Path, workdir: &str, volume: &str) -> StepResult<()> {
    let dir = resolve_in_root(root, &join_workdir(workdir, volume));
    let host = host_of(root, &dir);
    if std::fs::symlink_metadata(&host).is_err() {
        fs_err::create_dir_all(&host).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Go's `%v` of a string slice: `[a b c]`.
pub fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Copies a directory tree, keeping modes, owners (as root), times, symlinks and hard links.
pub fn copy_tree(from: &Path, to: &Path) -> StepResult<()> {
    copy_tree_filtered(from, to, &|_| false)
}

/// [`copy_tree`] leaving out the paths (relative to `from`) for which `skip` is true.
pub fn copy_tree_filtered(from: &Path, to: &Path, skip: &dyn Fn(&Path) -> bool) -> StepResult<()> {
    use std::os::unix::fs::MetadataExt;
    let mut links: BTreeMap<(u64, u64), PathBuf> = BTreeMap::new();
    let as_root = crate::archive::running_as_root();
    let mut dirs = Vec::new();
    let mut walk = TreeCopy {
        links: &mut links,
        as_root,
        dirs: &mut dirs,
        skip,
    };
    walk.copy_dir(from, to, Path::new(""))?;
    for (dir, meta) in dirs.into_iter().rev() {
        let t = filetime::FileTime::from_unix_time(meta.mtime(), meta.mtime_nsec() as u32);
        filetime::set_file_mtime(&dir, t).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    Ok(())
}

struct TreeCopy<'a> {
    links: &'a mut BTreeMap<(u64, u64), PathBuf>,
    as_root: bool,
    dirs: &'a mut Vec<(PathBuf, std::fs::Metadata)>,
    skip: &'a dyn Fn(&Path) -> bool,
}

impl TreeCopy<'_> {
    fn copy_dir(&mut self, from: &Path, to: &Path, rel: &Path) -> StepResult<()> {
        let as_root = self.as_root;
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = fs_err::symlink_metadata(from).map_err(|e| e.to_string())?;
        if !to.exists() {
            fs_err::create_dir(to).map_err(|e| e.to_string())?;
        }
        fs_err::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| e.to_string())?;
        if as_root {
            std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))
                .map_err(|e| format!("chown {}: {e}", to.display()))?;
        }
        self.dirs.push((to.to_path_buf(), meta));
        for entry in fs_err::read_dir(from).map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            let child_rel = rel.join(entry.file_name());
            if (self.skip)(&child_rel) {
                continue;
            }
            let src = entry.path();
            let dst = to.join(entry.file_name());
            let m = fs_err::symlink_metadata(&src).map_err(|e| e.to_string())?;
            let ft = m.file_type();
            if ft.is_dir() {
                self.copy_dir(&src, &dst, &child_rel)?;
                continue;
            }
            if m.nlink() > 1 && !ft.is_symlink() {
                if let Some(first) = self.links.get(&(m.dev(), m.ino())) {
                    fs_err::hard_link(first, &dst).map_err(|e| e.to_string())?;
                    continue;
                }
                self.links.insert((m.dev(), m.ino()), dst.clone());
            }
            if ft.is_symlink() {
                let target = fs_err::read_link(&src).map_err(|e| e.to_string())?;
                std::os::unix::fs::symlink(&target, &dst)
                    .map_err(|e| format!("{}: {e}", dst.display()))?;
            } else if ft.is_file() {
                fs_err::copy(&src, &dst).map_err(|e| e.to_string())?;
            } else {
                // Devices and fifos: recreate with mknod (root only).
                let path = std::ffi::CString::new(dst.as_os_str().as_encoded_bytes())
                    .map_err(|e| e.to_string())?;
                // SAFETY: `path` is a valid NUL-terminated string; mknod reads it only.
                let rc = unsafe { libc::mknod(path.as_ptr(), m.mode(), m.rdev()) };
                if rc != 0 {
                    return Err(format!(
                        "{}: {}",
                        dst.display(),
                        std::io::Error::last_os_error()
                    ));
                }
            }
            if as_root {
                std::os::unix::fs::lchown(&dst, Some(m.uid()), Some(m.gid()))
                    .map_err(|e| format!("chown {}: {e}", dst.display()))?;
            }
            if !ft.is_symlink() {
                fs_err::set_permissions(&dst, std::fs::Permissions::from_mode(m.mode() & 0o7777))
                    .map_err(|e| e.to_string())?;
            }
            let t = filetime::FileTime::from_unix_time(m.mtime(), m.mtime_nsec() as u32);
            filetime::set_symlink_file_times(&dst, t, t)
                .map_err(|e| format!("{}: {e}", dst.display()))?;
        }
        Ok(())
    }
}
