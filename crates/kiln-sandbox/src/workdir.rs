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
    ensure_owned_by(root, cwd, Some((user.uid, user.gid)))
}

/// Like [`ensure`], with the new directories owned by `owner` (`None`: by the caller; a
/// rootless run gives them to the user inside its user namespace).
pub(crate) fn ensure_owned_by(
    root: &Root,
    cwd: &Path,
    owner: Option<(u32, u32)>,
) -> Result<Vec<PathBuf>, SandboxError> {
    if !cwd.is_absolute() {
        return Err(SandboxError::InvalidSpec(format!(
            "working directory {} is not absolute",
            cwd.display()
        )));
    }
    let mut created = Vec::new();
    let ensured = root
        .ensure(cwd, TargetKind::Dir, 0o755, owner, None, &mut created)
        .map_err(|source| SandboxError::Io {
            action: "create working directory",
            path: root.display(cwd),
            source,
        })?;
    match ensured {
        Ensured::Present => Ok(created),
        Ensured::DanglingSymlink(at) => Err(SandboxError::InvalidSpec(format!(
            "working directory {}: {} is a symlink to a missing path",
            cwd.display(),
            at.display()
        ))),
    }
}
