//! Paths inside an untrusted root: resolution that cannot leave the root (openat2 with
//! `RESOLVE_IN_ROOT`), creation of missing mount targets and WORKDIR components, and the
//! removal of the mount targets afterwards.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// An open root directory; everything below is resolved as if it were `/`.
pub(crate) struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// What a missing path component should become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetKind {
    Dir,
    File,
}

/// The outcome of [`Root::ensure`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ensured {
    /// The path exists (now), with the wanted kind.
    Present,
    /// A component is a symlink whose target does not exist: nothing was created.
    DanglingSymlink(PathBuf),
}

/// An entry kiln created and must remove after the run.
struct CreatedEntry {
    parent: OwnedFd,
    name: CString,
    kind: TargetKind,
    path: PathBuf,
    parent_times: [libc::timespec; 2],
    /// The parent's mtime once all targets exist, just before the run ([`CreatedTargets::seal`]).
    sealed_mtime: Option<(i64, i64)>,
}

/// What [`CreatedTargets::remove_all`] did.
pub(crate) struct Removal {
    /// Created paths that were not removed because the command filled them.
    pub(crate) kept: Vec<PathBuf>,
    /// Parent directories whose atime and mtime were restored (their ctime changed).
    pub(crate) restored_parents: Vec<PathBuf>,
}

/// Entries created under a root, removed in reverse order by [`CreatedTargets::remove_all`].
#[derive(Default)]
pub(crate) struct CreatedTargets {
    entries: Vec<CreatedEntry>,
}

/// The absolute, lexically cleaned form of a path inside the root (`..` at `/` stays at `/`),
/// as Docker cleans WORKDIR and mount targets.
pub(crate) fn clean_abs(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for comp in path.components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// The path relative to the root, as given to openat2 (`.` for the root itself).
pub(crate) fn rel_cstring(path: &Path) -> io::Result<CString> {
    let cleaned = clean_abs(path);
    let rel = cleaned.strip_prefix("/").unwrap_or(&cleaned);
    let bytes = if rel.as_os_str().is_empty() {
        b".".as_slice()
    } else {
        rel.as_os_str().as_bytes()
    };
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

pub(crate) fn cstring(bytes: &[u8], what: &str) -> Result<CString, crate::SandboxError> {
    CString::new(bytes)
        .map_err(|_| crate::SandboxError::InvalidSpec(format!("{what} contains a NUL byte")))
}

fn last_os_error() -> io::Error {
    io::Error::last_os_error()
}

/// openat2 relative to `dirfd` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`.
fn openat2_in_root(dirfd: RawFd, rel: &CString, flags: libc::c_int) -> io::Result<OwnedFd> {
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: plain syscall with valid pointers to a NUL-terminated path and an open_how.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            rel.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(last_os_error());
    }
    // SAFETY: the kernel just returned this new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer; AT_EMPTY_PATH stats the fd itself.
    let rc = unsafe { libc::fstatat(fd, c"".as_ptr(), &mut st, libc::AT_EMPTY_PATH) };
    if rc < 0 { Err(last_os_error()) } else { Ok(st) }
}

fn lstat_at(dirfd: RawFd, name: &CString) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, NUL-terminated name and out pointer.
    let rc = unsafe { libc::fstatat(dirfd, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    if rc < 0 { Err(last_os_error()) } else { Ok(st) }
}

fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn fd_proc_path(fd: RawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{fd}"))
}

impl Root {
    /// Opens `path` as a root directory.
    pub(crate) fn open(path: &Path) -> Result<Root, crate::SandboxError> {
        let c = cstring(path.as_os_str().as_bytes(), "root path")?;
        // SAFETY: NUL-terminated path.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(crate::SandboxError::Io {
                action: "open root directory",
                path: path.to_owned(),
                source: last_os_error(),
            });
        }
        // SAFETY: new descriptor from the kernel.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Root {
            fd,
            path: path.to_owned(),
        })
    }

    /// The host path of the root.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The host path of `inner` (an absolute path inside the root), for messages only.
    pub(crate) fn display(&self, inner: &Path) -> PathBuf {
        let rel = clean_abs(inner);
        self.path.join(rel.strip_prefix("/").unwrap_or(&rel))
    }

    /// Reads a whole file inside the root; `Ok(None)` when it does not exist.
    pub(crate) fn read_file(&self, inner: &Path) -> io::Result<Option<Vec<u8>>> {
        use std::io::Read;
        match openat2_in_root(self.fd.as_raw_fd(), &rel_cstring(inner)?, libc::O_RDONLY) {
            Ok(fd) => {
                let mut file = std::fs::File::from(fd);
                let mut buf = Vec::new();
                file.read_to_end(&mut buf)?;
                Ok(Some(buf))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The directories of `inner` that do not exist yet, outermost first, without creating
    /// anything: for a WORKDIR that a user namespace creates, in directories the caller may
    /// not write to. A component that exists and is not a directory is an error.
    pub(crate) fn missing_dirs(&self, inner: &Path) -> io::Result<(Vec<PathBuf>, Ensured)> {
        let cleaned = clean_abs(inner);
        let mut parent = self.fd.try_clone()?;
        let mut prefix = PathBuf::from("/");
        let mut missing = Vec::new();
        for comp in cleaned.components() {
            let Component::Normal(comp) = comp else {
                continue;
            };
            prefix.push(comp);
            if !missing.is_empty() {
                missing.push(prefix.clone());
                continue;
            }
            match openat2_in_root(self.fd.as_raw_fd(), &rel_cstring(&prefix)?, libc::O_PATH) {
                Ok(fd) => {
                    if !is_dir(&fstat(fd.as_raw_fd())?) {
                        return Err(io::Error::new(
                            io::ErrorKind::NotADirectory,
                            format!("{} exists and is not a directory", prefix.display()),
                        ));
                    }
                    parent = fd;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let name = CString::new(comp.as_bytes())
                        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
                    if lstat_at(parent.as_raw_fd(), &name).is_ok() {
                        return Ok((Vec::new(), Ensured::DanglingSymlink(prefix)));
                    }
                    missing.push(prefix.clone());
                }
                Err(e) => return Err(e),
            }
        }
        Ok((missing, Ensured::Present))
    }

    /// Makes sure `inner` exists inside the root with the given kind, creating missing
    /// components (directories with `dir_mode`, a final file with mode 0644) owned by
    /// `owner` (or root). Created entries are recorded in `record`, or returned as paths in
    /// `created_paths` when there is no record (WORKDIR, which stays).
    pub(crate) fn ensure(
        &self,
        inner: &Path,
        kind: TargetKind,
        dir_mode: u32,
        owner: Option<(u32, u32)>,
        mut record: Option<&mut CreatedTargets>,
        created_paths: &mut Vec<PathBuf>,
    ) -> io::Result<Ensured> {
        let cleaned = clean_abs(inner);
        let comps: Vec<&OsStr> = cleaned
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        if comps.is_empty() {
            return if kind == TargetKind::Dir {
                Ok(Ensured::Present)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the root itself is not a file",
                ))
            };
        }
        let mut parent = self.fd.try_clone()?;
        let mut prefix = PathBuf::from("/");
        for (i, comp) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            prefix.push(comp);
            let want_dir = !last || kind == TargetKind::Dir;
            let current =
                match openat2_in_root(self.fd.as_raw_fd(), &rel_cstring(&prefix)?, libc::O_PATH) {
                    Ok(fd) => fd,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                        let name = CString::new(comp.as_bytes()).map_err(|_| {
                            io::Error::new(io::ErrorKind::InvalidInput, "NUL in path")
                        })?;
                        if lstat_at(parent.as_raw_fd(), &name).is_ok() {
                            return Ok(Ensured::DanglingSymlink(prefix));
                        }
                        let parent_st = fstat(parent.as_raw_fd())?;
                        self.create_entry(&parent, &name, want_dir, dir_mode, owner)?;
                        created_paths.push(prefix.clone());
                        let fd = openat2_in_root(
                            self.fd.as_raw_fd(),
                            &rel_cstring(&prefix)?,
                            libc::O_PATH,
                        )?;
                        if let Some(rec) = record.as_deref_mut() {
                            rec.entries.push(CreatedEntry {
                                parent: parent.try_clone()?,
                                name,
                                kind: if want_dir {
                                    TargetKind::Dir
                                } else {
                                    TargetKind::File
                                },
                                path: prefix.clone(),
                                sealed_mtime: None,
                                parent_times: [
                                    libc::timespec {
                                        tv_sec: parent_st.st_atime,
                                        tv_nsec: parent_st.st_atime_nsec,
                                    },
                                    libc::timespec {
                                        tv_sec: parent_st.st_mtime,
                                        tv_nsec: parent_st.st_mtime_nsec,
                                    },
                                ],
                            });
                        }
                        fd
                    }
                    Err(e) => return Err(e),
                };
            let st = fstat(current.as_raw_fd())?;
            if want_dir && !is_dir(&st) {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{} exists and is not a directory", prefix.display()),
                ));
            }
            if !want_dir && is_dir(&st) {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!(
                        "{} exists and is a directory, a file is needed",
                        prefix.display()
                    ),
                ));
            }
            parent = current;
        }
        Ok(Ensured::Present)
    }

    fn create_entry(
        &self,
        parent: &OwnedFd,
        name: &CString,
        dir: bool,
        dir_mode: u32,
        owner: Option<(u32, u32)>,
    ) -> io::Result<()> {
        let pfd = parent.as_raw_fd();
        let mode = if dir { dir_mode } else { 0o644 };
        if dir {
            // SAFETY: valid dirfd and NUL-terminated name.
            if unsafe { libc::mkdirat(pfd, name.as_ptr(), mode) } < 0 {
                return Err(last_os_error());
            }
        } else {
            // SAFETY: valid dirfd and name; O_EXCL|O_NOFOLLOW never follows a planted link.
            let fd = unsafe {
                libc::openat(
                    pfd,
                    name.as_ptr(),
                    libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_WRONLY
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    mode,
                )
            };
            if fd < 0 {
                return Err(last_os_error());
            }
            // SAFETY: new descriptor, closed right away.
            unsafe { libc::close(fd) };
        }
        // Explicit chmod: the umask must not decide the mode.
        // SAFETY: valid dirfd and name; the entry was just created, no symlink.
        if unsafe { libc::fchmodat(pfd, name.as_ptr(), mode, 0) } < 0 {
            return Err(last_os_error());
        }
        if let Some((uid, gid)) = owner {
            // SAFETY: valid dirfd and name; AT_SYMLINK_NOFOLLOW.
            if unsafe { libc::fchownat(pfd, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) }
                < 0
            {
                return Err(last_os_error());
            }
        }
        Ok(())
    }
}

impl CreatedTargets {
    /// The created paths, in creation order.
    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        self.entries.iter().map(|e| e.path.clone()).collect()
    }

    /// Records the parents' modification times once every target exists, just before the
    /// command runs, so that [`CreatedTargets::remove_all`] can tell whether the command
    /// changed a parent directory itself.
    pub(crate) fn seal(&mut self) {
        for entry in &mut self.entries {
            entry.sealed_mtime = fstat(entry.parent.as_raw_fd())
                .ok()
                .map(|st| (st.st_mtime, st.st_mtime_nsec));
        }
    }

    /// Removes every created entry, deepest first, and restores the access and modification
    /// times of the parents the command did not change itself.
    pub(crate) fn remove_all(self) -> Result<Removal, crate::SandboxError> {
        let untouched: Vec<bool> = self
            .entries
            .iter()
            .map(|e| {
                let now = fstat(e.parent.as_raw_fd())
                    .ok()
                    .map(|st| (st.st_mtime, st.st_mtime_nsec));
                now.is_some() && now == e.sealed_mtime
            })
            .collect();
        let mut kept = Vec::new();
        let mut restored = Vec::new();
        for (entry, untouched) in self.entries.into_iter().zip(untouched).rev() {
            let flags = if entry.kind == TargetKind::Dir {
                libc::AT_REMOVEDIR
            } else {
                0
            };
            // SAFETY: valid dirfd and NUL-terminated name.
            if unsafe { libc::unlinkat(entry.parent.as_raw_fd(), entry.name.as_ptr(), flags) } < 0 {
                let err = last_os_error();
                match err.raw_os_error() {
                    Some(libc::ENOTEMPTY) | Some(libc::EEXIST) => {
                        tracing::warn!(path = %entry.path.display(), "mount target kiln created is not empty after the run; keeping it");
                        kept.push(entry.path);
                        continue;
                    }
                    Some(libc::ENOENT) => {}
                    _ => {
                        return Err(crate::SandboxError::Io {
                            action: "remove created mount target",
                            path: entry.path,
                            source: err,
                        });
                    }
                }
            }
            if !untouched {
                continue;
            }
            let proc_path = fd_proc_path(entry.parent.as_raw_fd());
            let c = CString::new(proc_path.as_os_str().as_bytes()).unwrap_or_default();
            // SAFETY: valid path and times array of two timespecs.
            if unsafe {
                libc::utimensat(libc::AT_FDCWD, c.as_ptr(), entry.parent_times.as_ptr(), 0)
            } < 0
            {
                tracing::debug!(path = %entry.path.display(), error = %last_os_error(), "could not restore the parent's times");
            } else if let Some(parent) = entry.path.parent() {
                restored.push(parent.to_path_buf());
            }
        }
        kept.sort();
        restored.sort();
        restored.dedup();
        Ok(Removal {
            kept,
            restored_parents: restored,
        })
    }
}
