//! What the stages of a plan use of each other and of images: which image
//! references a stage reads files from, and whether a stage's files must be
//! laid out because a step or a later stage needs them. Pure queries on the
//! plan, answered before and while stages run.

use kiln_dockerfile::Command;
use kiln_dockerfile::model::{Plan, PlannedStage};

use super::state::BuildEnv;

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

/// Whether, from instruction `from` on, the first step that needs the
/// stage's files (WORKDIR aside) is a COPY: it can encode its layer while they
/// are laid out (see `copy_ahead`), and WORKDIRs before it wait for them.
pub(super) fn copy_next_needs_files(stage: &PlannedStage, from: usize) -> bool {
    stage
        .instructions
        .get(from..)
        .unwrap_or_default()
        .iter()
        .find(|i| {
            matches!(
                i.command,
                Command::Run(_) | Command::Copy(_) | Command::Add(_)
            )
        })
        .is_some_and(|i| matches!(i.command, Command::Copy(_)))
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
    fs_step || used_by_later(env.plan, stage)
}

/// Whether a later stage builds on or copies from `stage`.
pub(super) fn used_by_later(plan: &Plan, stage: &PlannedStage) -> bool {
    plan.stages
        .iter()
        .any(|s| s.index != stage.index && s.depends_on.contains(&stage.index))
}

/// Whether a later stage reads `stage`'s files (`COPY --from`,
/// `RUN --mount from=`; a reference with a variable counts).
pub(super) fn files_used_by_later(plan: &Plan, stage: &PlannedStage) -> bool {
    let refers =
        |name: &str| name.contains('$') || plan.resolve_stage_ref(name) == Some(stage.index);
    plan.stages
        .iter()
        .filter(|s| s.index != stage.index)
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
