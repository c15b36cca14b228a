//! Paths a snapshot never looks at nor captures: kaniko's defaults (`/proc`, `/sys`,
//! `/dev`, kiln's own dir, `/etc/mtab`, `/var/run`), mount points when running in place,
//! `--ignore-path`, and whatever the sandbox bind-mounts (resolv.conf, hosts).
//!
//! An ignored path hides its whole subtree; its parents are still captured. Paths are
//! given as they appear inside the image (`/etc/mtab`) and kept relative to the root.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::mountinfo;

/// kiln's own directory inside its image, kaniko's `/kaniko` (`--kaniko-dir`).
pub const DEFAULT_KANIKO_DIR: &str = "/kaniko";

/// The set of ignored paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreList {
    /// Ignored paths, relative to the root.
    paths: BTreeSet<PathBuf>,
    /// Every proper ancestor of an ignored path (`""` for the root), so a directory
    /// without ignored children is scanned without any lookups.
    ancestors: BTreeSet<PathBuf>,
}

impl IgnoreList {
    /// An empty list: everything is captured.
    pub fn new() -> Self {
        IgnoreList::default()
    }

    /// kaniko's default list: `/proc`, `/sys`, `/dev`, `kaniko_dir`, `/etc/mtab`, and
    /// `/var/run` when `ignore_var_run` (kaniko's `--ignore-var-run`, default true).
    pub fn kaniko_defaults(kaniko_dir: &Path, ignore_var_run: bool) -> Result<Self> {
        let mut list = IgnoreList::new();
        for p in ["/proc", "/sys", "/dev", "/etc/mtab"] {
            list.add(p)?;
        }
        list.add(kaniko_dir)?;
        if ignore_var_run {
            list.add("/var/run")?;
        }
        Ok(list)
    }

    /// Ignores `path` (as seen inside the image; a leading `/` is optional) and its
    /// subtree. For `--ignore-path` and the sandbox's bind-mount targets.
    pub fn add(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let rel = normalize(path.as_ref())?;
        let mut parent = rel.parent();
        while let Some(p) = parent {
            self.ancestors.insert(p.to_path_buf());
            parent = p.parent();
        }
        self.paths.insert(rel);
        Ok(())
    }

    /// Ignores every mount point listed in `mountinfo` (the text of
    /// `/proc/self/mountinfo`) that lies strictly inside `root`, the directory being
    /// snapshotted (`/` when running in place). Returns how many were added.
    pub fn add_mount_points(&mut self, mountinfo_text: &str, root: &Path) -> Result<usize> {
        let mut added = 0;
        for mp in mountinfo::mount_points(mountinfo_text) {
            let Ok(inside) = mp.strip_prefix(root) else {
                continue;
            };
            if inside.as_os_str().is_empty() {
                continue;
            }
            self.add(inside)?;
            added += 1;
        }
        Ok(added)
    }

    /// [`IgnoreList::add_mount_points`] with this process's `/proc/self/mountinfo`.
    pub fn add_own_mount_points(&mut self, root: &Path) -> Result<usize> {
        let path = Path::new("/proc/self/mountinfo");
        let text = std::fs::read_to_string(path).at("reading mount table", path)?;
        self.add_mount_points(&text, root)
    }

    /// True when `rel` (relative to the root) or one of its ancestors is ignored.
    pub fn is_ignored(&self, rel: &Path) -> bool {
        rel.ancestors()
            .filter(|a| !a.as_os_str().is_empty())
            .any(|a| self.paths.contains(a))
    }

    /// The ignored paths, relative to the root, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.paths.iter().map(PathBuf::as_path)
    }

    /// True when some ignored path lies directly or indirectly inside directory `rel`.
    pub(crate) fn has_ignored_below(&self, rel: &Path) -> bool {
        self.ancestors.contains(rel)
    }

    /// True when exactly `rel` is ignored (its ancestors having been checked already).
    pub(crate) fn is_ignored_exactly(&self, rel: &Path) -> bool {
        self.paths.contains(rel)
    }
}

/// `/a/./b/` -> `a/b`; refuses `..` and the root itself.
fn normalize(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::InvalidPath {
                    path: path.to_path_buf(),
                    reason: "ignored paths may not contain `..`",
                });
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(Error::InvalidPath {
            path: path.to_path_buf(),
            reason: "ignoring the root would ignore everything",
        });
    }
    Ok(out)
}
