//! Running one stage: its base, then one step per instruction, with Docker's
//! semantics: kiln-dockerfile's [`StageEnv`] expands each instruction and
//! tracks ENV/ARG scope; WORKDIR, USER and the metadata instructions edit
//! the config; COPY/ADD make layers straight from the planned entries; RUN
//! goes through kiln-sandbox and kiln-snapshot. Each filesystem-changing
//! step becomes one layer; metadata-only steps add an `empty_layer` history
//! entry. Every step advances a deterministic cache key before it runs.

mod cached;
mod layer;
mod root;
mod snapshot;
mod state;
mod uses;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kiln_dockerfile::instructions::{CommandLine, CopyCmd, Healthcheck};
use kiln_dockerfile::model::{Base as PlanBase, PlannedStage};
use kiln_dockerfile::{Command, Instruction};
use kiln_layer::{Entry, LayerPath, Metadata, Timestamp};
use kiln_oci::{Digest, ImageConfig};

use crate::copy::{CopyRequest, SourceTree, plan_copy};
use crate::error::BuildError;
use crate::events::{BuildEvent, StepId};
use crate::image::{Format, ImageState};
use crate::owner::{Chmod, Owner, resolve_chown};
use crate::rootfs_path::{host_of, join_workdir, resolve_in_root};
use crate::run::RunStep;

use cached::Cacheable;
use root::make_volume_dir;
use state::{PendingRoot, StepResult};

pub use layer::encode_options;
pub use state::{Base, BuildEnv, StageOutput, StageRun};
pub use uses::{images_used_by, stage_needs_rootfs};

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
        if stage_needs_rootfs(env, stage) {
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

    fn metadata_step(&mut self, created_by: String) {
        self.advance_key(created_by.as_bytes());
        let history = self.history(created_by);
        self.image.config.push_empty_step(history);
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
        for (n, git) in git_sources.iter().enumerate() {
            git_checkouts.push(crate::add_git::checkout(
                git,
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

/// Go's `%v` of a string slice: `[a b c]`.
pub fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}
