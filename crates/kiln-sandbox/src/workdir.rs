//! WORKDIR: created when missing, each new directory owned by the command's user with mode
//! 0755, as Docker does; resolution stays inside the root.

use std::path::{Path, PathBuf};

use crate::SandboxError;
use crate::rootpath::{Ensured, Root, TargetKind};
use crate::user::ExecUser;

/// Makes sure `cwd` exists as a directory inside `root`; returns the directories created,
/// owned by `user`.
pub(crate) fn ensure(
    root: &Root,
    cwd: &Path,
    user: &ExecUser,
) -> Result<Vec<PathBuf>, SandboxError> {
    check_absolute(cwd)?;
    let mut created = Vec::new();
    let ensured = root
        .ensure(
            cwd,
            TargetKind::Dir,
            0o755,
            Some((user.uid, user.gid)),
            None,
            &mut created,
        )
        .map_err(|source| SandboxError::Io {
            action: "create working directory",
            path: root.display(cwd),
            source,
        })?;
    present_or_error(cwd, ensured).map(|()| created)
}

/// The directories of `cwd` a rootless run must create inside its user namespace, outermost
/// first (the caller may not write where the user's directories are).
pub(crate) fn missing(root: &Root, cwd: &Path) -> Result<Vec<PathBuf>, SandboxError> {
    check_absolute(cwd)?;
    let (missing, ensured) = root.missing_dirs(cwd).map_err(|source| SandboxError::Io {
        action: "inspect working directory",
        path: root.display(cwd),
        source,
    })?;
    present_or_error(cwd, ensured).map(|()| missing)
}

fn check_absolute(cwd: &Path) -> Result<(), SandboxError> {
    if cwd.is_absolute() {
        Ok(())
    } else {
        Err(SandboxError::InvalidSpec(format!(
            "working directory {} is not absolute",
            cwd.display()
        )))
    }
}

fn present_or_error(cwd: &Path, ensured: Ensured) -> Result<(), SandboxError> {
    match ensured {
        Ensured::Present => Ok(()),
        Ensured::DanglingSymlink(at) => Err(SandboxError::InvalidSpec(format!(
            "working directory {}: {} is a symlink to a missing path",
            cwd.display(),
            at.display()
        ))),
    }
}
