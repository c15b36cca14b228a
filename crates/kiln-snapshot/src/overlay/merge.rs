//! Moving an unmounted overlay's upper dir into its lower dir, so the lower dir (the
//! stage rootfs) becomes what the step saw. Renames within one filesystem: the cost
//! follows the upper dir, whatever the size of the lower tree.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::attrs;
use crate::error::{IoContext, Result};
use crate::mode::SnapshotMode;
use crate::record::{Record, differs};
use crate::stat::{self, FileType, Stat, Timespec};

use super::mount::XattrNamespace;
use super::upper::{is_opaque, is_whiteout};

/// Applies `upper` onto `lower`: whiteouts delete, opaque or new directories replace,
/// other directories merge, everything else replaces. Leaves `upper` empty-ish (only
/// its root dir).
pub(crate) fn merge_into_lower(upper: &Path, lower: &Path, ns: XattrNamespace) -> Result<()> {
    merge_dir(upper, lower, ns)?;
    let ust = stat::lstat(upper).at("stat of", upper)?;
    copy_dir_attrs(upper, ust, lower)
}

fn merge_dir(upper: &Path, lower: &Path, ns: XattrNamespace) -> Result<()> {
    for name in list(upper)? {
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
        if let Some(l) = lst
            && keeps_hardlinks(&low, l, &up, ust)?
        {
            std::fs::remove_file(&up).at("dropping unchanged copy-up", &up)?;
            continue;
        }
        let merge_dirs = ust.file_type() == FileType::Dir
            && lst.is_some_and(|l| l.file_type() == FileType::Dir)
            && !is_opaque(&up, ns)?;
        if merge_dirs {
            merge_dir(&up, &low, ns)?;
            copy_dir_attrs(&up, ust, &low)?;
            continue;
        }
        if let Some(l) = lst
            && (l.file_type() == FileType::Dir || ust.file_type() == FileType::Dir)
        {
            remove_any(&low, l)?;
        }
        std::fs::rename(&up, &low).at("moving overlay change into rootfs", &low)?;
        clean_moved(&low, ust)?;
    }
    Ok(())
}

/// A copy-up breaks the hard links of the lower file; when the upper copy is identical
/// (content included), keep the lower file so its link group survives in the rootfs.
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

/// Strips overlayfs' own xattrs from a moved path and, in a moved directory, removes
/// stray whiteouts (nothing below is hidden any more), keeping directory mtimes.
fn clean_moved(path: &Path, st: Stat) -> Result<()> {
    strip_overlay_xattrs(path)?;
    if st.file_type() != FileType::Dir {
        return Ok(());
    }
    let mut removed = false;
    for name in list(path)? {
        let child = path.join(&name);
        let cst = stat::lstat(&child).at("stat of", &child)?;
        if is_whiteout(&cst) {
            std::fs::remove_file(&child).at("removing stale whiteout", &child)?;
            removed = true;
        } else {
            clean_moved(&child, cst)?;
        }
    }
    if removed {
        set_mtime(path, st.mtime)?;
    }
    Ok(())
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
