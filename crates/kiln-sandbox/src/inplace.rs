//! In-place mode, parent side: the rootfs is `/` of the disposable container kiln runs in;
//! the command runs directly (no namespaces, no mounts, no capability changes), in its own
//! session, under a supervisor that is a child subreaper and kills every process the command
//! left behind.

use std::path::Path;

use crate::SandboxError;
use crate::chroot::Prepared;
use crate::env::{command_env, exec_candidates};
use crate::plan::{ExecPlan, Plan};
use crate::rootpath::{CreatedTargets, Root, clean_abs};
use crate::spec::{Network, RunSpec};
use crate::user::resolve_user;

/// Prepares an in-place run of `spec`; refuses what this mode cannot honour.
pub(crate) fn prepare(spec: &RunSpec) -> Result<Prepared, SandboxError> {
    if clean_abs(&spec.root) != Path::new("/") {
        return Err(SandboxError::InvalidSpec(format!(
            "in-place mode runs in / itself, not in {}",
            spec.root.display()
        )));
    }
    if !spec.mounts.is_empty() {
        return Err(SandboxError::InvalidSpec(
            "RUN --mount needs chroot mode: in-place mode cannot mount without CAP_SYS_ADMIN"
                .into(),
        ));
    }
    if spec.network == Network::None {
        return Err(SandboxError::InvalidSpec(
            "RUN --network=none needs chroot mode: in-place mode cannot create a network namespace"
                .into(),
        ));
    }
    if spec.hostname.is_some() {
        tracing::debug!("in-place mode keeps the container's hostname");
    }
    let root = Root::open(Path::new("/"))?;
    let user = resolve_user(&root, &spec.user)?;
    let created_workdir = crate::workdir::ensure(&root, &spec.cwd, &user)?;
    let env = command_env(&spec.env, &user.home);
    let argv0 = spec
        .argv
        .first()
        .ok_or_else(|| SandboxError::InvalidSpec("empty command".into()))?;
    let exec = ExecPlan::new(
        &spec.argv,
        &env,
        exec_candidates(argv0, &env),
        &clean_abs(&spec.cwd),
        user.uid,
        user.gid,
        &user.groups,
        false,
    )?;
    Ok(Prepared {
        plan: Plan::InPlace { exec },
        op_descriptions: Vec::new(),
        created: CreatedTargets::default(),
        created_workdir,
    })
}
