//! Moving an unmounted overlay's upper dir into its lower dir, so the lower dir (the
//! stage rootfs) becomes what the step saw. Renames within one filesystem: the cost
//! follows the upper dir, whatever the size of the lower tree.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::attrs;
use crate::error::{IoContext, Result};
use crate::links::InodeKey;
use crate::mode::SnapshotMode;
use crate::record::{Record, differs};
use crate::stat::{self, FileType, Stat, Timespec};

use super::mount::XattrNamespace;
use super::upper::{UpperLink, is_opaque, is_whiteout};

/// Applies `upper` onto `lower`: whiteouts delete, opaque or new directories replace,
/// other directories merge, everything else replaces. Leaves `upper` empty-ish (only
/// its root dir). `links` are the upper dir's hard-linked files (from the scan).
pub(crate) fn merge_into_lower(
    upper: &Path,
    lower: &Path,
    ns: XattrNamespace,
    links: &[UpperLink],
) -> Result<()> {
    let merge = Merge {
        upper,
        lower,
        ns,
        links: plan_links(upper, lower, links)?,
    };
    merge.dir(Path::new(""))?;
    let ust = stat::lstat(upper).at("stat of", upper)?;
    copy_dir_attrs(upper, ust, lower)
}

/// What becomes of an upper name of a hard-linked file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LinkPlan {
    /// An unchanged copy-up of a lower file with other links: keep the lower file.
    Keep,
    /// Another name of the same upper inode as a kept one: link it to the kept lower
    /// file (path relative to the rootfs), so the group made in the step joins it.
    LinkTo(PathBuf),
}

/// A copy-up breaks the hard links of the lower file; a step that only linked a new name
/// to it (or opened it for writing, chmod'ed it to the same mode...) must not split the
/// lower group in the rootfs. For each upper inode, the first of its names (in path
/// order) that is an identical copy-up of a lower file with other links is kept as
/// the lower file; its other upper names become links to that.
fn plan_links(
    upper: &Path,
    lower: &Path,
    links: &[UpperLink],
) -> Result<BTreeMap<PathBuf, LinkPlan>> {
    let mut by_inode: BTreeMap<InodeKey, Vec<&UpperLink>> = BTreeMap::new();
    for link in links {
        by_inode.entry(link.inode).or_default().push(link);
    }
    let mut plan = BTreeMap::new();
    for mut names in by_inode.into_values() {
        names.sort_by(|a, b| a.rel.cmp(&b.rel));
        let mut kept = None;
        for name in names.iter().filter(|n| n.lower_visible) {
            let (up, low) = (upper.join(&name.rel), lower.join(&name.rel));
            let ust = stat::lstat(&up).at("stat of", &up)?;
            let lst = match stat::lstat(&low) {
                Ok(st) => st,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(e).at("stat of", &low),
            };
            if keeps_hardlinks(&low, lst, &up, ust)? {
                kept = Some(name.rel.clone());
                break;
            }
        }
        let Some(kept) = kept else { continue };
        for name in names {
            let what = match name.rel == kept {
                true => LinkPlan::Keep,
                false => LinkPlan::LinkTo(kept.clone()),
            };
            plan.insert(name.rel.clone(), what);
        }
    }
    Ok(plan)
}

struct Merge<'a> {
    upper: &'a Path,
    lower: &'a Path,
    ns: XattrNamespace,
    links: BTreeMap<PathBuf, LinkPlan>,
}

impl Merge<'_> {
    fn dir(&self, rel: &Path) -> Result<()> {
        let (upper, lower) = (self.upper.join(rel), self.lower.join(rel));
        for name in list(&upper)? {
            let rel = rel.join(&name);
            let up = upper.join(&name);
            let low = lower.join(&name);
            let ust = stat::lstat(&up).at("stat of", &up)?;
            let lst = match stat::lstat(&low) {
                Ok(st) => Some(st),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
                Err(e) => return Err(e).at("stat of", &low),
            };
            if is_whiteout(&ust) {
                if let Some(l) = lst {
                    remove_any(&low, l)?;
                }
                continue;
            }
            match self.links.get(&rel) {
                Some(LinkPlan::Keep) => {
                    std::fs::remove_file(&up).at("dropping unchanged copy-up", &up)?;
                    continue;
                }
                Some(LinkPlan::LinkTo(kept)) => {
                    if let Some(l) = lst {
                        remove_any(&low, l)?;
                    }
                    std::fs::remove_file(&up).at("dropping copy of a linked file", &up)?;
                    self.link_to_kept(kept, &low)?;
                    continue;
                }
                None => {}
            }
            // Several upper links were all decided by `plan_links`.
            if let Some(l) = lst
                && ust.nlink < 2
                && keeps_hardlinks(&low, l, &up, ust)?
            {
                std::fs::remove_file(&up).at("dropping unchanged copy-up", &up)?;
                continue;
            }
            let merge_dirs = ust.file_type() == FileType::Dir
                && lst.is_some_and(|l| l.file_type() == FileType::Dir)
                && !is_opaque(&up, self.ns)?;
            if merge_dirs {
                self.dir(&rel)?;
                copy_dir_attrs(&up, ust, &low)?;
                continue;
            }
            if let Some(l) = lst
                && (l.file_type() == FileType::Dir || ust.file_type() == FileType::Dir)
            {
                remove_any(&low, l)?;
            }
            std::fs::rename(&up, &low).at("moving overlay change into rootfs", &low)?;
            self.clean_moved(&rel, ust)?;
        }
        Ok(())
    }

    fn link_to_kept(&self, kept: &Path, low: &Path) -> Result<()> {
        std::fs::hard_link(self.lower.join(kept), low).at("linking to the kept file", low)
    }

    /// Strips overlayfs' own xattrs from a moved path and, in a moved directory, removes
    /// stray whiteouts (nothing below is hidden any more) and links names of kept
    /// hard-linked files to them, keeping directory mtimes.
    fn clean_moved(&self, rel: &Path, st: Stat) -> Result<()> {
        let path = self.lower.join(rel);
        strip_overlay_xattrs(&path)?;
        if st.file_type() != FileType::Dir {
            return Ok(());
        }
        let mut touched = false;
        for name in list(&path)? {
            let child_rel = rel.join(&name);
            let child = path.join(&name);
            let cst = stat::lstat(&child).at("stat of", &child)?;
            if is_whiteout(&cst) {
                std::fs::remove_file(&child).at("removing stale whiteout", &child)?;
                touched = true;
            } else if let Some(LinkPlan::LinkTo(kept)) = self.links.get(&child_rel) {
                std::fs::remove_file(&child).at("dropping copy of a linked file", &child)?;
                self.link_to_kept(kept, &child)?;
                touched = true;
            } else {
                self.clean_moved(&child_rel, cst)?;
            }
        }
        if touched {
            set_mtime(&path, st.mtime)?;
        }
        Ok(())
    }
}

/// True when the upper file is an identical copy-up (content included) of a lower file
/// with other links: keeping the lower file keeps its link group in the rootfs.
fn keeps_hardlinks(low: &Path, lst: Stat, up: &Path, ust: Stat) -> Result<bool> {
    if ust.file_type() != FileType::File || lst.file_type() != FileType::File || lst.nlink < 2 {
        return Ok(false);
    }
    let old = Record::read(low, lst, SnapshotMode::Full)?;
    let new = Record::read(up, ust, SnapshotMode::Full)?;
    Ok(!differs(&old, &new, SnapshotMode::Full))
}

fn list(dir: &Path) -> Result<Vec<OsString>> {
    std::fs::read_dir(dir)
        .at("reading upper directory", dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .at("reading upper directory", dir)
}

fn remove_any(path: &Path, st: Stat) -> Result<()> {
    if st.file_type() == FileType::Dir {
        std::fs::remove_dir_all(path).at("removing deleted directory", path)
    } else {
        std::fs::remove_file(path).at("removing deleted file", path)
    }
}

fn strip_overlay_xattrs(path: &Path) -> Result<()> {
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(()),
        Err(e) => return Err(e).at("listing extended attributes of", path),
    };
    for name in names {
        if attrs::is_overlay_private(name.as_bytes()) {
            xattr::remove(path, &name).at("removing overlay attribute from", path)?;
        }
    }
    Ok(())
}

/// Gives the lower directory the upper one's owner, mode, xattrs and mtime (last, since
/// merging children changed it).
fn copy_dir_attrs(up: &Path, ust: Stat, low: &Path) -> Result<()> {
    let lst = stat::lstat(low).at("stat of", low)?;
    if (lst.uid, lst.gid) != (ust.uid, ust.gid) {
        std::os::unix::fs::lchown(low, Some(ust.uid), Some(ust.gid))
            .at("changing owner of", low)?;
    }
    if lst.perms() != ust.perms() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(low, std::fs::Permissions::from_mode(ust.perms()))
            .at("changing mode of", low)?;
    }
    let want = attrs::read_xattrs(up)?;
    let have = attrs::read_xattrs(low)?;
    for (k, v) in &want {
        if have.get(k) != Some(v) {
            xattr::set(low, k, v).at("setting extended attribute on", low)?;
        }
    }
    for k in have.keys().filter(|k| !want.contains_key(*k)) {
        xattr::remove(low, k).at("removing extended attribute from", low)?;
    }
    set_mtime(low, ust.mtime)
}

pub(crate) fn set_mtime(path: &Path, mtime: Timespec) -> Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
        .at("setting mtime of", path)?;
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: mtime.sec,
            tv_nsec: i64::from(mtime.nsec),
        },
    ];
    // SAFETY: `c` is NUL-terminated and `times` is an array of two timespecs, as
    // utimensat(2) requires.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).at("setting mtime of", path);
    }
    Ok(())
}
