//! Path resolution confined to a root directory, and removal that never
//! follows symlinks.
//!
//! [`Root::resolve_dir`] walks a path one component at a time from a
//! descriptor of the root, `fstatat(AT_SYMLINK_NOFOLLOW)` on each component
//! and `openat(O_NOFOLLOW | O_DIRECTORY)` to descend. Symlinks met on the way
//! are read and their targets spliced into the walk *as if the root were
//! `/`*: an absolute target restarts at the root, `..` never climbs above
//! it. This is the semantics of `openat2(RESOLVE_IN_ROOT)` (and of Docker's
//! `FollowSymlinkInScope`), done by hand so it works on every kernel. The
//! final component of an entry is never resolved through: the applier
//! operates on it with `*at` calls relative to its parent's descriptor.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::sys;

/// Maximum number of symlinks followed while resolving one path (Linux's
/// own limit is 40).
const MAX_SYMLINKS: usize = 40;

/// A directory the applier writes into and never out of.
pub(crate) struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// A resolved directory inside the root: its descriptor and its real path
/// (components below the root, symlinks resolved).
pub(crate) struct ResolvedDir {
    pub fd: OwnedFd,
    pub real: Vec<Vec<u8>>,
}

impl Root {
    pub fn open(path: &Path) -> io::Result<Root> {
        Ok(Root {
            fd: sys::open_dir_path(path)?,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Resolves the directory `components` inside the root. Missing
    /// directories are created (mode 0755, owned by the caller) when `create`
    /// is set; otherwise `Ok(None)` is returned for a missing one. A
    /// non-directory in the way is an `ENOTDIR` error.
    pub fn resolve_dir(
        &self,
        components: &[&[u8]],
        create: bool,
    ) -> io::Result<Option<ResolvedDir>> {
        let mut queue: std::collections::VecDeque<Vec<u8>> =
            components.iter().map(|c| c.to_vec()).collect();
        // Only the current directory is held open (`None` is the root), so
        // deep trees cannot exhaust descriptors; `..` re-walks the real path
        // from the root, which contains no symlinks.
        let mut real: Vec<Vec<u8>> = Vec::new();
        let mut current: Option<OwnedFd> = None;
        let mut symlinks = 0;
        while let Some(component) = queue.pop_front() {
            match &component[..] {
                b"" | b"." => continue,
                b".." => {
                    if real.pop().is_some() {
                        current = self.reopen(&real)?;
                    }
                    continue;
                }
                _ => {}
            }
            let dir = current.as_ref().map_or(self.fd.as_fd(), |fd| fd.as_fd());
            let st = match sys::lstat_at(dir, &component)? {
                Some(st) => st,
                None if create => {
                    match sys::mkdir_at(dir, &component, 0o755) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(e) => return Err(e),
                    }
                    current = Some(sys::open_dir_at(dir, &component)?);
                    real.push(component);
                    continue;
                }
                None => return Ok(None),
            };
            match sys::file_type(&st) {
                libc::S_IFDIR => {
                    current = Some(sys::open_dir_at(dir, &component)?);
                    real.push(component);
                }
                libc::S_IFLNK => {
                    symlinks += 1;
                    if symlinks > MAX_SYMLINKS {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    let target = sys::readlink_at(dir, &component)?;
                    if target.starts_with(b"/") {
                        real.clear();
                        current = None;
                    }
                    for part in target.split(|&b| b == b'/').rev() {
                        queue.push_front(part.to_vec());
                    }
                }
                _ => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
            }
        }
        let fd = match current {
            Some(fd) => fd,
            None => self.fd.try_clone()?,
        };
        Ok(Some(ResolvedDir { fd, real }))
    }

    /// Opens the real directory path `real` (no symlinks expected: any met
    /// is refused by `O_NOFOLLOW`); `None` for the root.
    fn reopen(&self, real: &[Vec<u8>]) -> io::Result<Option<OwnedFd>> {
        let mut current: Option<OwnedFd> = None;
        for name in real {
            let dir = current.as_ref().map_or(self.fd.as_fd(), |fd| fd.as_fd());
            current = Some(sys::open_dir_at(dir, name)?);
        }
        Ok(current)
    }
}

/// Removes `name` inside `dir` and, if it is a directory, everything below
/// it. Symlinks are removed, never followed. Missing is not an error.
pub(crate) fn remove_all_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let Some(st) = sys::lstat_at(dir, name)? else {
        return Ok(());
    };
    if sys::file_type(&st) == libc::S_IFDIR {
        let child = sys::open_dir_at(dir, name)?;
        for entry in sys::list_dir(child.as_fd())? {
            remove_all_at(child.as_fd(), &entry)?;
        }
        drop(child);
        sys::unlink_at(dir, name, true)
    } else {
        sys::unlink_at(dir, name, false)
    }
}
