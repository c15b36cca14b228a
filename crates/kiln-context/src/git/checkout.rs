//! Writing a commit's tree into a directory, as `git checkout` would, without
//! `.git`: regular files 0644 or 0755 (not subject to the umask, so the same
//! tree always gives the same files), symlinks as recorded, submodules as
//! empty directories whose paths and commits are returned.
//!
//! Every entry is created new (`O_EXCL`, no following of symlinks) inside a
//! directory this code created, and names that could leave the destination
//! (`..`, `.`, a `/`, `.git`) are refused, so a hostile repository cannot write
//! outside it.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use gix::objs::tree::EntryKind;

/// A submodule found in the tree: where, and at which commit.
#[derive(Debug, Clone)]
pub(crate) struct Gitlink {
    /// Path relative to the checkout root, `/`-separated.
    pub path: String,
    /// The commit recorded for it.
    pub commit: gix::ObjectId,
}

/// A failure while writing: the path, and why.
#[derive(Debug)]
pub(crate) enum CheckoutError {
    Git(gix::Error),
    Io(PathBuf, std::io::Error),
    BadName(String),
}

/// Writes the tree `tree` of `repo` into `dest` (which must exist and be empty).
pub(crate) fn write_tree(
    repo: &gix::Repository,
    tree: gix::ObjectId,
    dest: &Path,
) -> Result<Vec<Gitlink>, CheckoutError> {
    let mut gitlinks = Vec::new();
    write_dir(repo, tree, dest, "", &mut gitlinks)?;
    Ok(gitlinks)
}

fn write_dir(
    repo: &gix::Repository,
    tree: gix::ObjectId,
    dir: &Path,
    prefix: &str,
    gitlinks: &mut Vec<Gitlink>,
) -> Result<(), CheckoutError> {
    let tree = repo.find_tree(tree).map_err(CheckoutError::Git)?;
    for entry in tree.iter() {
        let entry = entry.map_err(|e| CheckoutError::Git(gix::Error::from_error(e)))?;
        let name = std::str::from_utf8(entry.filename())
            .map_err(|_| CheckoutError::BadName(format!("{prefix}{}", entry.filename())))?;
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.contains(['/', '\0'])
            || name.eq_ignore_ascii_case(".git")
        {
            return Err(CheckoutError::BadName(format!("{prefix}{name}")));
        }
        let path = dir.join(name);
        let rel = format!("{prefix}{name}");
        let io = |e: std::io::Error| CheckoutError::Io(path.clone(), e);
        let oid = entry.oid().to_owned();
        match entry.mode().kind() {
            EntryKind::Tree => {
                make_dir(&path).map_err(io)?;
                write_dir(repo, oid, &path, &format!("{rel}/"), gitlinks)?;
            }
            EntryKind::Commit => {
                make_dir(&path).map_err(io)?;
                gitlinks.push(Gitlink {
                    path: rel,
                    commit: oid,
                });
            }
            EntryKind::Link => {
                let blob = repo.find_blob(oid).map_err(CheckoutError::Git)?;
                let target =
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&blob.data);
                std::os::unix::fs::symlink(target, &path).map_err(io)?;
            }
            kind @ (EntryKind::Blob | EntryKind::BlobExecutable) => {
                let mode = if kind == EntryKind::BlobExecutable {
                    0o755
                } else {
                    0o644
                };
                let blob = repo.find_blob(oid).map_err(CheckoutError::Git)?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(io)?;
                file.write_all(&blob.data).map_err(io)?;
                file.set_permissions(std::fs::Permissions::from_mode(mode))
                    .map_err(io)?;
            }
        }
    }
    Ok(())
}

fn make_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}
