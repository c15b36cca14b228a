//! Resolving a Dockerfile for one build: global ARG values, expanded base
//! images, the target and exactly the stages it needs, in build order.

use std::collections::BTreeMap;

use super::env::{PROXY_ARGS, StageEnv};
use super::platform::Platform;
use super::{Dockerfile, Stage};
use crate::diagnostic::{Diagnostic, Diagnostics, Span};
use crate::instructions::{Command, Instruction};
use crate::shell::Lexer;

/// What a build asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// `--build-arg K=V`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`: a stage name; the last stage when `None`.
    pub target: Option<String>,
    /// The platform built for (TARGETPLATFORM ...).
    pub target_platform: Platform,
    /// The platform building (BUILDPLATFORM ...).
    pub build_platform: Platform,
}

/// Where a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Base {
    /// `FROM scratch`.
    Scratch,
    /// An image reference, ARGs expanded (not normalised).
    Image(String),
    /// Another stage, by its index in the Dockerfile.
    Stage(usize),
}

/// One stage to build.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlannedStage {
    /// Index in the Dockerfile (`--from=N`).
    pub index: usize,
    pub name: Option<String>,
    pub base: Base,
    /// `FROM --platform=...` expanded, else the target platform.
    pub platform: Platform,
    /// The stage's instructions, typed and unexpanded, with spans.
    pub instructions: Vec<Instruction>,
    /// The environment at the start of the stage, without ENV yet: for an
    /// image base the engine calls [`StageEnv::set_image_env`] with the
    /// image's Env; for a stage base it calls [`StageEnv::inherit`] with
    /// that stage's final environment (ENV and ARGs carry over, as in
    /// BuildKit). Not serialized: it holds build-arg values.
    #[serde(skip)]
    pub env: StageEnv,
    /// Dockerfile indexes of the stages this one needs (FROM, COPY --from,
    /// RUN --mount from=), sorted.
    pub depends_on: Vec<usize>,
    /// Where the FROM line is.
    pub span: Span,
}

/// The stages to build, dependencies first; the target is last.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    pub stages: Vec<PlannedStage>,
    /// Values of the global ARGs (and predefined platform ARGs) after
    /// build args were applied. Not serialized (may hold secrets).
    #[serde(skip)]
    pub global_args: BTreeMap<String, String>,
    /// Build args no ARG in the built stages declares (BuildKit warns).
    pub unused_build_args: Vec<String>,
    /// Stage names by Dockerfile index.
    #[serde(skip)]
    stage_names: Vec<Option<String>>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("stages", &self.stages)
            .field("global_args", &self.global_args.keys().collect::<Vec<_>>())
            .field("unused_build_args", &self.unused_build_args)
            .finish()
    }
}

impl Plan {
    /// The target stage (the last one built).
    pub fn target(&self) -> &PlannedStage {
        // A plan always has at least its target.
        &self.stages[self.stages.len() - 1]
    }

    /// The planned stage with this Dockerfile index.
    pub fn stage(&self, index: usize) -> Option<&PlannedStage> {
        self.stages.iter().find(|s| s.index == index)
    }

    /// Resolves an (expanded) `--from` / `from=` value: `Some(index)` for a
    /// stage name (case-insensitive) or index, `None` for an image.
    pub fn resolve_stage_ref(&self, name_or_index: &str) -> Option<usize> {
        resolve_ref(&self.stage_names, name_or_index)
    }
}

/// Dependencies first; among stages that are ready, the lowest index first
/// (so the order follows the file whenever it can). The graph is acyclic
/// here: cycles were reported while planning.
fn build_order(stages: &BTreeMap<usize, PlannedStage>) -> Vec<usize> {
    let mut done: Vec<usize> = Vec::with_capacity(stages.len());
    while done.len() < stages.len() {
        let next = stages.iter().find(|(i, s)| {
            !done.contains(i)
                && s.depends_on
                    .iter()
                    .all(|d| done.contains(d) || !stages.contains_key(d))
        });
        match next {
            Some((&i, _)) => done.push(i),
            None => break,
        }
    }
    done
}

fn resolve_ref(names: &[Option<String>], r: &str) -> Option<usize> {
    let lower = r.to_ascii_lowercase();
    names
        .iter()
        .position(|n| n.as_deref() == Some(lower.as_str()))
        .or_else(|| r.parse::<usize>().ok().filter(|&i| i < names.len()))
}

/// The predefined platform ARGs.
fn platform_args(o: &PlanOptions) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (prefix, p) in [("TARGET", &o.target_platform), ("BUILD", &o.build_platform)] {
        m.insert(format!("{prefix}PLATFORM"), p.to_string());
        m.insert(format!("{prefix}OS"), p.os.clone());
        m.insert(format!("{prefix}ARCH"), p.architecture.clone());
        m.insert(
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        );
    }
    m
}

struct Planner<'a> {
    df: &'a Dockerfile,
    opts: &'a PlanOptions,
    lexer: Lexer,
    meta: BTreeMap<String, String>,
    names: Vec<Option<String>>,
    errors: Diagnostics,
    resolved: BTreeMap<usize, PlannedStage>,
    /// Each planned stage's ENV/ARG scope after its last instruction
    /// (without base-image ENV, which only the engine knows).
    finals: BTreeMap<usize, StageEnv>,
    visiting: Vec<usize>,
}

impl Dockerfile {
    /// Resolves this Dockerfile for one build (one platform).
    pub fn plan(&self, opts: &PlanOptions) -> Result<Plan, Diagnostics> {
        let lexer = Lexer::new(self.directives.escape);
        let mut p = Planner {
            df: self,
            opts,
            lexer,
            meta: platform_args(opts),
            names: self.stages.iter().map(|s| s.name.clone()).collect(),
            errors: Diagnostics::default(),
            resolved: BTreeMap::new(),
            finals: BTreeMap::new(),
            visiting: Vec::new(),
        };
        p.global_args();
        let target = match &opts.target {
            None => self.stages.len().checked_sub(1),
            Some(t) => {
                // Only names select a target (BuildKit and kaniko agree).
                let lower = t.to_ascii_lowercase();
                let found = p
                    .names
                    .iter()
                    .position(|n| n.as_deref() == Some(lower.as_str()));
                if found.is_none() {
                    p.errors.push(Diagnostic::new(
                        &self.file,
                        Default::default(),
                        format!("target stage {t:?} could not be found"),
                    ));
                }
                found
            }
        };
        if let Some(t) = target {
            p.visit(t);
        }
        if !p.errors.is_empty() || target.is_none() {
            if p.errors.is_empty() {
                p.errors.push(Diagnostic::new(
                    &self.file,
                    Default::default(),
                    "no stage to build",
                ));
            }
            return Err(p.errors);
        }
        let stages: Vec<PlannedStage> = build_order(&p.resolved)
            .into_iter()
            .filter_map(|i| p.resolved.remove(&i))
            .collect();
        let mut declared: Vec<&str> = self
            .global_args
            .iter()
            .map(|g| g.decl.name.as_str())
            .collect();
        for s in &stages {
            for ins in &s.instructions {
                if let Command::Arg(a) = &ins.command {
                    declared.extend(a.args.iter().map(|d| d.name.as_str()));
                }
            }
        }
        let unused_build_args = opts
            .build_args
            .keys()
            .filter(|k| {
                !declared.contains(&k.as_str())
                    && !PROXY_ARGS.contains(&k.as_str())
                    && !platform_args(opts).contains_key(k.as_str())
            })
            .cloned()
            .collect();
        Ok(Plan {
            stages,
            global_args: p.meta,
            unused_build_args,
            stage_names: p.names,
        })
    }
}

impl Planner<'_> {
    fn err(&mut self, span: Span, msg: String) {
        self.errors
            .push(Diagnostic::new(&self.df.file, span.start, msg));
    }

    fn global_args(&mut self) {
        for g in &self.df.global_args {
            let name = &g.decl.name;
            let value = match self.opts.build_args.get(name) {
                Some(v) => Some(v.clone()),
                None => match &g.decl.default {
                    Some(d) => match self.lexer.process_word(d, &self.meta) {
                        Ok(v) => Some(v),
                        Err(e) => {
                            self.err(g.span, e.to_string());
                            None
                        }
                    },
                    None => None,
                },
            };
            // `ARG NAME` without a value keeps whatever NAME already had.
            if let Some(v) = value {
                self.meta.insert(name.clone(), v);
            }
        }
    }

    /// Depth-first over the stages the target needs.
    fn visit(&mut self, index: usize) {
        if self.resolved.contains_key(&index) {
            return;
        }
        let stage = &self.df.stages[index];
        if self.visiting.contains(&index) {
            let name = stage.name.clone().unwrap_or_else(|| index.to_string());
            self.err(
                stage.span,
                format!("circular dependency detected on stage: {name}"),
            );
            return;
        }
        self.visiting.push(index);
        let planned = self.plan_stage(stage);
        for &d in &planned.depends_on {
            self.visit(d);
        }
        self.visiting.pop();
        self.resolved.insert(index, planned);
    }

    fn plan_stage(&mut self, stage: &Stage) -> PlannedStage {
        let image = match self.lexer.process_word(&stage.from.image, &self.meta) {
            Ok(v) => v,
            Err(e) => {
                self.err(stage.span, e.to_string());
                stage.from.image.clone()
            }
        };
        let base = if image.is_empty() {
            self.err(
                stage.span,
                format!("base name ({}) should not be blank", stage.from.image),
            );
            Base::Scratch
        } else if image.eq_ignore_ascii_case("scratch") {
            Base::Scratch
        } else {
            let lower = image.to_ascii_lowercase();
            match self.names[..stage.index]
                .iter()
                .position(|n| n.as_deref() == Some(lower.as_str()))
            {
                Some(i) => Base::Stage(i),
                None => Base::Image(image),
            }
        };
        let platform = match &stage.from.platform {
            None => self.opts.target_platform.clone(),
            Some(raw) => {
                let expanded = self.lexer.process_word(raw, &self.meta);
                let parsed = expanded.map_err(|e| e.to_string()).and_then(|p| {
                    if p.is_empty() {
                        Err(format!("empty platform value from expression {raw}"))
                    } else {
                        Platform::parse(&p)
                    }
                });
                match parsed {
                    Ok(p) => p,
                    Err(e) => {
                        self.err(stage.span, format!("invalid --platform={raw}: {e}"));
                        self.opts.target_platform.clone()
                    }
                }
            }
        };
        let env = StageEnv::new(
            &self.df.file,
            self.df.directives.escape,
            self.opts.build_args.clone(),
            self.meta.clone(),
        );
        let mut depends_on = Vec::new();
        let mut sim = env.clone();
        if let Base::Stage(parent) = base {
            depends_on.push(parent);
            // The parent's final ENV/ARG scope is this stage's start.
            self.visit(parent);
            if let Some(parent_env) = self.finals.get(&parent) {
                sim.inherit(parent_env);
            }
        }
        let final_env = self.stage_refs(stage, sim, &mut depends_on);
        self.finals.insert(stage.index, final_env);
        depends_on.sort_unstable();
        depends_on.dedup();
        PlannedStage {
            index: stage.index,
            name: stage.name.clone(),
            base,
            platform,
            instructions: stage.instructions.clone(),
            env,
            depends_on,
            span: stage.span,
        }
    }

    /// Walks the stage with its static ENV/ARG scope to find COPY --from and
    /// RUN --mount from= references to other stages.
    fn stage_refs(&mut self, stage: &Stage, mut env: StageEnv, deps: &mut Vec<usize>) -> StageEnv {
        for ins in &stage.instructions {
            let mut refs = Vec::new();
            match &ins.command {
                Command::Env(_) | Command::Arg(_) => {
                    if let Ok(e) = env.expand(ins) {
                        env.apply(&e);
                    }
                }
                Command::Copy(c) => {
                    if let Some(from) = &c.from {
                        match env.expand_word(from) {
                            Ok(v) => refs.push(v),
                            Err(e) => self.err(ins.span, e.to_string()),
                        }
                    }
                }
                Command::Run(_) => match env.expand(ins) {
                    Ok(Instruction {
                        command: Command::Run(r),
                        ..
                    }) => refs.extend(r.mounts.into_iter().filter_map(|m| m.from)),
                    Ok(_) => {}
                    Err(e) => self.errors.push(e),
                },
                _ => {}
            }
            for r in refs {
                if let Some(i) = resolve_ref(&self.names, &r) {
                    if i == stage.index {
                        self.err(
                            ins.span,
                            format!("--from={r} refers to the current build stage"),
                        );
                    } else {
                        deps.push(i);
                    }
                }
            }
        }
        env
    }
}
