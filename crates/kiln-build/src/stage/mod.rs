//! Running one stage: its base, then one step per instruction, with Docker's
//! semantics: kiln-dockerfile's [`StageEnv`](kiln_dockerfile::model::StageEnv)
//! expands each instruction and tracks ENV/ARG scope; WORKDIR, USER and the
//! metadata instructions edit the config; COPY/ADD make layers straight from
//! the planned entries; RUN goes through kiln-sandbox and kiln-snapshot. Each
//! filesystem-changing step becomes one layer; metadata-only steps add an
//! `empty_layer` history entry. Every step advances a deterministic cache key
//! before it runs.
//!
//! # Layout
//!
//! The modules form layers, each using only those below it:
//!
//! * the loop (this file): the stage's start from its base, the step loop,
//!   ONBUILD triggers, and [`StageRun::dispatch`], which hands each expanded
//!   instruction to one step module's `step` function;
//! * step modules, one per kind: `metadata` (ARG, ENV, LABEL, USER, EXPOSE,
//!   VOLUME, CMD, ENTRYPOINT, SHELL, STOPSIGNAL, MAINTAINER, HEALTHCHECK,
//!   ONBUILD), `workdir`, `copy_add` (COPY, ADD), `run` (RUN: its sandbox
//!   spec, mounts and cache mounts under `run/`);
//! * services the steps share, as `StageRun` methods: `cached` (layer cache
//!   lookups and stores), `layer` (committing entries into a layer),
//!   `snapshot` (RUN's snapshotter, single-snapshot mode), `root` (laying the
//!   files out, in-place mode's `/`, with `--cache` the layers the store lacks
//!   fetched through the pull pipeline); they use each other one way
//!   (`snapshot` uses `layer`, `cached` uses `root`) and call no step module;
//! * `state`: the types ([`BuildEnv`], [`StageRun`], [`StageOutput`], [`Base`])
//!   and accessors, importing no other module of the stage; `uses`: what
//!   stages use of each other, read from the plan.
//!
//! The scheduler (`crate::scheduler`, `crate::stage_loop`) owns the graph of
//! stages and calls [`StageRun::new`] and [`StageRun::run`]; nothing here
//! knows about other stages beyond their finished [`StageOutput`].

mod cached;
mod copy_add;
mod copy_ahead;
mod layer;
mod metadata;
mod root;
mod run;
mod snapshot;
mod state;
mod uses;
mod workdir;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use kiln_dockerfile::model::{Base as PlanBase, PlannedStage};
use kiln_dockerfile::{Command, Instruction};
use kiln_oci::{Digest, ImageConfig};

use crate::error::BuildError;
use crate::events::{BuildEvent, StepId};
use crate::image::{Format, ImageState};

use state::{PendingRoot, StepResult};

pub use layer::encode_options;
pub use run::make_sandbox;
pub use state::{Base, BuildEnv, StageOutput, StageRun};
pub use uses::{images_used_by, stage_needs_rootfs};

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
            Base::Image {
                mut image,
                digest,
                config,
            } => {
                if let Some(config) = config {
                    // fetched beside the layers, which are downloading by now
                    let platform = crate::platforms::stage_platform(&env.platform, stage);
                    image.config = config.wait().map_err(|reason| BuildError::Step {
                        step: format!(
                            "{} STEP 1",
                            crate::stage_loop::stage_label(env, position - 1, &platform)
                        ),
                        location: format!("{}:{}", env.file, stage.span.start.line),
                        text: format!("FROM {}", describe_base(&stage.base)),
                        reason,
                    })?;
                }
                (*image, None, digest)
            }
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
        if stage_needs_rootfs(env, stage) {
            run.pending = Some(PendingRoot {
                layers: match &rootfs_from {
                    Some(_) => Vec::new(),
                    None => run.image.layers.clone(),
                },
                from: rootfs_from,
                volumes: Vec::new(),
                workdirs: Vec::new(),
            });
            // Without the cache every step needs the files: lay them out now,
            // unless a COPY comes first, which encodes its layer meanwhile.
            let copy_first = !env.in_place && uses::copy_next_needs_files(stage, 0);
            if (env.cache.is_none() && !copy_first) || env.options.single_snapshot {
                run.root().map_err(|reason| from_error(&run, reason))?;
            }
        }
        if env.options.single_snapshot {
            run.ensure_snapshotter()
                .map_err(|reason| from_error(&run, reason))?;
        }
        Ok(run)
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
        // WORKDIRs waiting for the files (for a COPY that in the end did not lay
        // them out) get their directories and layers now.
        if self
            .pending
            .as_ref()
            .is_some_and(|p| !p.workdirs.is_empty())
        {
            let last = self.step_id(stage.instructions.len() + 1);
            self.root().map_err(|reason| BuildError::Step {
                step: last.to_string(),
                location: self.location_of(stage.span.start.line),
                text: "(WORKDIR directories)".into(),
                reason,
            })?;
        }
        // Files never laid out (every step hit the cache) are laid out now,
        // privately, only if a later stage reads them.
        if self.rootfs.is_none()
            && uses::files_used_by_later(self.env.plan, stage)
            && let Some(pending) = self.pending.take()
        {
            let last = self.step_id(stage.instructions.len() + 1);
            let fail = |reason: String| BuildError::Step {
                step: last.to_string(),
                location: self.location_of(stage.span.start.line),
                text: "(laying out the stage for later stages)".into(),
                reason,
            };
            let dir = self
                .env
                .work
                .join(format!("stage-{}", stage.index))
                .join("files");
            let layers = pending.layers.clone();
            let root = self
                .while_fetching(&layers, || self.lay_out_at(pending, dir))
                .map_err(fail)?;
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
            (Some(ignore), Some(root)) if uses::used_by_later(self.env.plan, stage) => {
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

    fn sync_env_to_config(&mut self) {
        let env: Vec<String> = self
            .vars
            .env()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        self.image.config.container_config_mut().env = Some(env);
    }

    fn step(&mut self, raw: &Instruction, id: &StepId) -> StepResult<Option<Digest>> {
        let ins = self.vars.expand(raw).map_err(|d| d.message.clone())?;
        let result = self.dispatch(&ins, id);
        self.vars.apply(&ins);
        if matches!(ins.command, Command::Env(_)) {
            self.sync_env_to_config();
        }
        result
    }

    /// Hands an expanded instruction to the module of its kind.
    fn dispatch(&mut self, ins: &Instruction, id: &StepId) -> StepResult<Option<Digest>> {
        match &ins.command {
            Command::Workdir(w) => workdir::step(self, &w.value),
            Command::Copy(c) => copy_add::step(self, c, false),
            Command::Add(c) => copy_add::step(self, c, true),
            Command::Run(_) => run::step(self, ins, id),
            Command::From(_) => Err("FROM inside a stage".into()),
            Command::Arg(_)
            | Command::Env(_)
            | Command::Label(_)
            | Command::User(_)
            | Command::Expose(_)
            | Command::Volume(_)
            | Command::Cmd(_)
            | Command::Entrypoint(_)
            | Command::Shell(_)
            | Command::Stopsignal(_)
            | Command::Maintainer(_)
            | Command::Healthcheck(_)
            | Command::Onbuild(_) => metadata::step(self, &ins.command),
        }
    }
}

fn describe_base(base: &PlanBase) -> String {
    match base {
        PlanBase::Scratch => "scratch".into(),
        PlanBase::Image(r) => r.clone(),
        PlanBase::Stage(i) => format!("stage {i}"),
    }
}
