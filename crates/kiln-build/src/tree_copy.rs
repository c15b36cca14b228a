//! Copying a directory tree as it is: modes, owners (as root), times,
//! symlinks, hard links (one group per source inode), devices and fifos. Used
//! where a laid-out root becomes the start of another (a stage built on an
//! earlier stage, in-place mode's saved stages, a read-write bind mount's copy).
//! Symlinks are copied as links, never followed, so a copy never reads or
//! writes outside the two trees.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Copies a directory tree, keeping modes, owners (as root), times, symlinks and hard links.
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    copy_tree_filtered(from, to, &|_| false)
}

/// [`copy_tree`] leaving out the paths (relative to `from`) for which `skip` is true.
pub fn copy_tree_filtered(
    from: &Path,
    to: &Path,
    skip: &dyn Fn(&Path) -> bool,
) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let mut links: BTreeMap<(u64, u64), PathBuf> = BTreeMap::new();
    let as_root = crate::archive::running_as_root();
    let mut dirs = Vec::new();
    let mut walk = TreeCopy {
        links: &mut links,
        as_root,
        dirs: &mut dirs,
        skip,
    };
    walk.copy_dir(from, to, Path::new(""))?;
    for (dir, meta) in dirs.into_iter().rev() {
        let t = filetime::FileTime::from_unix_time(meta.mtime(), meta.mtime_nsec() as u32);
        filetime::set_file_mtime(&dir, t).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    Ok(())
}

struct TreeCopy<'a> {
    links: &'a mut BTreeMap<(u64, u64), PathBuf>,
    as_root: bool,
    dirs: &'a mut Vec<(PathBuf, std::fs::Metadata)>,
    skip: &'a dyn Fn(&Path) -> bool,
}

impl TreeCopy<'_> {
    fn copy_dir(&mut self, from: &Path, to: &Path, rel: &Path) -> Result<(), String> {
        let as_root = self.as_root;
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = fs_err::symlink_metadata(from).map_err(|e| e.to_string())?;
        if !to.exists() {
            fs_err::create_dir(to).map_err(|e| e.to_string())?;
        }
        fs_err::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| e.to_string())?;
        if as_root {
            std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))
                .map_err(|e| format!("chown {}: {e}", to.display()))?;
        }
        self.dirs.push((to.to_path_buf(), meta));
        for entry in fs_err::read_dir(from).map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            let child_rel = rel.join(entry.file_name());
            if (self.skip)(&child_rel) {
                continue;
            }
            let src = entry.path();
            let dst = to.join(entry.file_name());
            let m = fs_err::symlink_metadata(&src).map_err(|e| e.to_string())?;
            let ft = m.file_type();
            if ft.is_dir() {
                self.copy_dir(&src, &dst, &child_rel)?;
                continue;
            }
            if m.nlink() > 1 && !ft.is_symlink() {
                if let Some(first) = self.links.get(&(m.dev(), m.ino())) {
                    fs_err::hard_link(first, &dst).map_err(|e| e.to_string())?;
                    continue;
                }
                self.links.insert((m.dev(), m.ino()), dst.clone());
            }
            if ft.is_symlink() {
                let target = fs_err::read_link(&src).map_err(|e| e.to_string())?;
                std::os::unix::fs::symlink(&target, &dst)
                    .map_err(|e| format!("{}: {e}", dst.display()))?;
            } else if ft.is_file() {
                fs_err::copy(&src, &dst).map_err(|e| e.to_string())?;
            } else {
                // Devices and fifos: recreate with mknod (root only).
                let path = std::ffi::CString::new(dst.as_os_str().as_encoded_bytes())
                    .map_err(|e| e.to_string())?;
                // SAFETY: `path` is a valid NUL-terminated string; mknod reads it only.
                let rc = unsafe { libc::mknod(path.as_ptr(), m.mode(), m.rdev()) };
                if rc != 0 {
                    return Err(format!(
                        "{}: {}",
                        dst.display(),
                        std::io::Error::last_os_error()
                    ));
                }
            }
            if as_root {
                std::os::unix::fs::lchown(&dst, Some(m.uid()), Some(m.gid()))
                    .map_err(|e| format!("chown {}: {e}", dst.display()))?;
            }
            if !ft.is_symlink() {
                fs_err::set_permissions(&dst, std::fs::Permissions::from_mode(m.mode() & 0o7777))
                    .map_err(|e| e.to_string())?;
            }
            let t = filetime::FileTime::from_unix_time(m.mtime(), m.mtime_nsec() as u32);
            filetime::set_symlink_file_times(&dst, t, t)
                .map_err(|e| format!("{}: {e}", dst.display()))?;
        }
        Ok(())
    }
}
