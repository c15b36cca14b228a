//! The build's own directory under kiln's dir, and its removal off the critical path.
//!
//! Layout of `<kaniko-dir>`:
//!
//! ```text
//! build-XXXXXX/   one per build, alive while its directory descriptor holds an
//!                 exclusive flock (taken before the build uses it)
//! trash/NAME      what is being removed; renamed here atomically first
//! blobs/          the shared blob store (not managed here)
//! ```
//!
//! When a build ends (success or failure) its directory is renamed into `trash/` (one
//! `rename`, so a machine that dies at any point leaves either a `build-*` dir or a
//! trash entry, never a half-named one), then a detached process removes it. The
//! build's outputs and result are final before that starts, and the process exits
//! without waiting for it. The remover inherits the directory's locked descriptor,
//! so the lock passes to it: as long as it runs, nobody else touches the entry.
//!
//! Every new build first sweeps: each `build-*` dir or trash entry whose lock it can
//! take belongs to nobody alive (a crashed build, a killed remover); whatever such a
//! dir still has mounted (a build killed during a RUN leaves its overlay) is detached,
//! stale build dirs are moved to `trash/` and all of them are handed to one background
//! remover. A dir
//! whose lock is held (a concurrent build, a running remover) is never touched. So
//! the kaniko dir stays bounded however many builds run in a row.
//!
//! The remover is forked, not executed: it must work for any embedder of this crate,
//! not only for the `kiln` binary. Since the parent may be multi-threaded, the forked
//! child makes only async-signal-safe system calls (no allocation, no locks): every
//! path and descriptor is prepared before `fork`, and the tree is removed with
//! `getdents64`/`unlinkat`/`openat`, iteratively, in constant stack space, never
//! following a symlink and never crossing into another file system.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::BuildError;

/// The name of the trash area inside kiln's dir.
pub const TRASH_DIR: &str = "trash";
/// The prefix of a build's own directory inside kiln's dir.
pub const BUILD_DIR_PREFIX: &str = "build-";

/// A build's private directory, locked for as long as this value lives. Dropping it
/// hands the directory to a background remover (see the module doc).
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
    kaniko_dir: PathBuf,
    lock: Option<OwnedFd>,
    keep: bool,
}

impl WorkDir {
    /// Creates and locks a new build dir under `kaniko_dir`, after starting the
    /// background removal of whatever dead builds left behind.
    pub fn create(kaniko_dir: &Path) -> Result<WorkDir, BuildError> {
        let trash = kaniko_dir.join(TRASH_DIR);
        fs_err::create_dir_all(&trash)
            .map_err(|e| BuildError::io("creating kiln's work dir", &trash, e))?;
        // Each build dir (and the tree below it) lands in block groups of its own, away
        // from the ones the previous build's removal is freeing (kiln_layer::placement).
        match kiln_layer::spread_new_dirs(kaniko_dir) {
            Ok(set) => {
                tracing::debug!(dir = %kaniko_dir.display(), set, "build dirs spread over block groups")
            }
            Err(e) => {
                tracing::warn!(dir = %kaniko_dir.display(), "cannot mark kiln's dir to spread build dirs: {e}")
            }
        }
        if let Err(e) = sweep(kaniko_dir) {
            tracing::warn!(dir = %kaniko_dir.display(), "not removing leftovers of earlier builds: {e}");
        }
        loop {
            let path = tempfile::Builder::new()
                .prefix(BUILD_DIR_PREFIX)
                .tempdir_in(kaniko_dir)
                .map_err(|e| BuildError::io("creating a build dir in", kaniko_dir, e))?
                .keep();
            let lock =
                open_dir(&path).map_err(|e| BuildError::io("opening the build dir", &path, e))?;
            // A sweep running in another build may have locked and moved it in the
            // instant between mkdir and flock: then it is not ours, take a new one.
            if try_lock(&lock).unwrap_or(false) && same_inode(&path, &lock) {
                tracing::debug!(dir = %path.display(), "build dir created");
                return Ok(WorkDir {
                    path,
                    kaniko_dir: kaniko_dir.to_path_buf(),
                    lock: Some(lock),
                    keep: false,
                });
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Never remove this directory: in kiln's own disposable container the
    /// container's end discards it anyway, so deleting it would only cost time.
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl WorkDir {
    /// Hands the directory to a background remover now; the remover's pid, or `None`
    /// when it is kept or was handed over already.
    fn release(&mut self) -> std::io::Result<Option<u32>> {
        let Some(lock) = self.lock.take() else {
            return Ok(None);
        };
        if self.keep {
            tracing::debug!(dir = %self.path.display(), "build dir kept (disposable container)");
            return Ok(None);
        }
        let pid = discard_locked(&self.kaniko_dir, &self.path, lock)?;
        tracing::debug!(dir = %self.path.display(), pid, "build dir handed to a background remover");
        Ok(Some(pid))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            tracing::warn!(dir = %self.path.display(), "build dir not removed: {e}");
        }
    }
}

/// Moves `path` (a directory under `kaniko_dir`, not locked by anyone) into the trash
/// and removes it in the background. Returns the remover's pid. Used for the blob
/// store with `--cleanup`.
pub fn discard(kaniko_dir: &Path, path: &Path) -> std::io::Result<Option<u32>> {
    let lock = match open_dir(path) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !try_lock(&lock)? {
        return Err(std::io::Error::other("it is locked by another process"));
    }
    discard_locked(kaniko_dir, path, lock).map(Some)
}

fn discard_locked(kaniko_dir: &Path, path: &Path, lock: OwnedFd) -> std::io::Result<u32> {
    let trash = kaniko_dir.join(TRASH_DIR);
    fs_err::create_dir_all(&trash)?;
    let base = path.file_name().unwrap_or(OsStr::new("dir")).to_os_string();
    let mut name = base.clone();
    let mut n = 0u32;
    loop {
        let target = trash.join(&name);
        // renameat2(NOREPLACE) would be nicer; a link count check is enough here since
        // the names are unique temp names and only kiln writes into trash/.
        if std::fs::symlink_metadata(&target).is_err() {
            fs_err::rename(path, &target)?;
            break;
        }
        n += 1;
        name = base.clone();
        name.push(format!(".{n}"));
    }
    spawn_remover(&trash, vec![(name.as_bytes().to_vec(), lock)])
}

/// Starts the background removal of every trash entry and `build-*` dir that no live
/// process holds. Returns the remover's pid, if there was anything to remove.
pub fn sweep(kaniko_dir: &Path) -> std::io::Result<Option<u32>> {
    let trash = kaniko_dir.join(TRASH_DIR);
    let mut items = Vec::new();
    for entry in fs_err::read_dir(kaniko_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if !name.as_bytes().starts_with(BUILD_DIR_PREFIX.as_bytes()) {
            continue;
        }
        let path = entry.path();
        let Some(lock) = lock_if_dead(&path) else {
            continue;
        };
        // A build killed during a RUN leaves its overlay mounted; the remover never
        // crosses into another file system, so it would stay forever.
        detach_mounts_under(&path);
        let target = trash.join(&name);
        if std::fs::symlink_metadata(&target).is_ok() {
            continue; // the next sweep, once that one is gone
        }
        fs_err::rename(&path, &target)?;
        tracing::debug!(dir = %path.display(), "a dead build's dir moved to the trash");
        items.push((name.as_bytes().to_vec(), lock));
    }
    for entry in fs_err::read_dir(&trash)? {
        let entry = entry?;
        let name = entry.file_name();
        if items.iter().any(|(n, _)| n.as_slice() == name.as_bytes()) {
            continue;
        }
        if !entry.file_type()?.is_dir() {
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        if let Some(lock) = lock_if_dead(&entry.path()) {
            detach_mounts_under(&entry.path());
            items.push((name.as_bytes().to_vec(), lock));
        }
    }
    if items.is_empty() {
        return Ok(None);
    }
    tracing::debug!(
        count = items.len(),
        "removing leftovers of earlier builds in the background"
    );
    spawn_remover(&trash, items).map(Some)
}

/// Detaches (`MNT_DETACH`) every mount at or below `dir`, deepest first, as
/// /proc/self/mountinfo lists them: what a dead build left mounted in its dir.
fn detach_mounts_under(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = kiln_snapshot::mountinfo::mount_points(&mountinfo)
        .into_iter()
        .filter(|point| point.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for point in points {
        let Ok(c) = CString::new(point.as_os_str().as_bytes()) else {
            continue;
        };
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
            tracing::debug!(mount = %point.display(), "a dead build's mount detached");
        } else {
            tracing::warn!(mount = %point.display(), "cannot detach a dead build's mount: {}", std::io::Error::last_os_error());
        }
    }
}

/// The directory's locked descriptor when no live process holds it.
fn lock_if_dead(path: &Path) -> Option<OwnedFd> {
    let fd = open_dir(path).ok()?;
    (try_lock(&fd).ok()? && same_inode(path, &fd)).then_some(fd)
}

fn open_dir(path: &Path) -> std::io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid NUL-terminated path; the descriptor is owned on success.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `flock(LOCK_EX | LOCK_NB)`: `Ok(false)` when another holder has it.
fn try_lock(fd: &OwnedFd) -> std::io::Result<bool> {
    // SAFETY: flock on a valid descriptor.
    if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Whether `path` still names the directory `fd` is open on (it was not moved).
fn same_inode(path: &Path, fd: &OwnedFd) -> bool {
    let Ok(at_path) = std::fs::symlink_metadata(path) else {
        return false;
    };
    // SAFETY: fstat into a zeroed stat buffer on a valid descriptor.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    at_path.ino() == st.st_ino && at_path.dev() == st.st_dev
}

/// Forks a detached process (double fork, new session, stdio on /dev/null, no other
/// descriptor than the ones it needs) that removes each `trash/NAME` through its
/// locked descriptor and exits. Returns its pid; does not wait for it.
fn spawn_remover(trash: &Path, items: Vec<(Vec<u8>, OwnedFd)>) -> std::io::Result<u32> {
    // Everything the child needs is prepared here: it must not allocate.
    let trash_fd = open_dir(trash)?;
    let names = items
        .iter()
        .map(|(n, _)| CString::new(n.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let item_fds: Vec<RawFd> = items.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
    let mut keep: Vec<RawFd> = item_fds.clone();
    keep.push(trash_fd.as_raw_fd());
    keep.sort_unstable();
    let devnull = c"/dev/null";
    let mut pipe = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both were just created and are owned here.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };

    // SAFETY: after fork the child only calls async-signal-safe functions through
    // `remover_child`, which never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: in the forked child; see `remover_child`.
        unsafe {
            remover_child(
                write_end.as_raw_fd(),
                devnull.as_ptr(),
                &keep,
                trash_fd.as_raw_fd(),
                &item_fds,
                &names,
            )
        }
    }
    drop(write_end);
    let mut status = 0;
    // SAFETY: waiting for our own intermediate child, which exits at once.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let mut buf = [0u8; 4];
    let mut file = std::fs::File::from(read_end);
    std::io::Read::read_exact(&mut file, &mut buf)
        .map_err(|e| std::io::Error::other(format!("the remover did not start: {e}")))?;
    // The parent's copies of the locks close here; the remover keeps its own.
    drop(items);
    Ok(u32::from_ne_bytes(buf))
}

/// The forked side of [`spawn_remover`]: async-signal-safe calls only.
///
/// # Safety
/// Must be called in a freshly forked child, with `keep` sorted.
unsafe fn remover_child(
    report: RawFd,
    devnull: *const libc::c_char,
    keep: &[RawFd],
    trash_fd: RawFd,
    item_fds: &[RawFd],
    names: &[CString],
) -> ! {
    // SAFETY (whole body): raw system calls on descriptors and buffers owned here.
    unsafe {
        libc::setsid();
        let pid = libc::fork();
        if pid != 0 {
            // The intermediate child: report the remover's pid and leave, so the
            // remover is re-parented and the caller never waits for it.
            if pid > 0 {
                let bytes = (pid as u32).to_ne_bytes();
                libc::write(report, bytes.as_ptr().cast(), 4);
            }
            libc::_exit(0);
        }
        let null = libc::open(devnull, libc::O_RDWR);
        if null >= 0 {
            for std_fd in 0..3 {
                libc::dup2(null, std_fd);
            }
        }
        // Close every descriptor but the ones kept (pipes to whoever waits for our
        // parent's output must not stay open).
        let mut from: libc::c_uint = 3;
        for &fd in keep {
            let fd = fd as libc::c_uint;
            if fd > from {
                libc::syscall(libc::SYS_close_range, from, fd - 1, 0);
            }
            from = from.max(fd + 1);
        }
        libc::syscall(libc::SYS_close_range, from, libc::c_uint::MAX, 0);
        // Background work: lowest CPU and I/O priority.
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
        const IOPRIO_CLASS_IDLE: libc::c_long = 3;
        libc::syscall(libc::SYS_ioprio_set, 1, 0, IOPRIO_CLASS_IDLE << 13);
        for (fd, name) in item_fds.iter().zip(names) {
            if remove_tree(*fd) {
                libc::unlinkat(trash_fd, name.as_ptr(), libc::AT_REMOVEDIR);
            }
        }
        libc::_exit(0);
    }
}

/// Removes everything below the directory `root` (not `root` itself), iteratively:
/// descends into a non-empty subdirectory, empties it, goes back up through `..` and
/// removes it on the parent's next pass. Constant stack, no allocation, symlinks
/// never followed, other file systems never entered. `false` on any error (the next
/// sweep retries).
///
/// # Safety
/// Async-signal-safe; `root` must be an open directory descriptor.
unsafe fn remove_tree(root: RawFd) -> bool {
    // SAFETY (whole body): raw system calls on descriptors opened here.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(root, &mut st) != 0 {
            return false;
        }
        let dev = st.st_dev;
        let mut cur = libc::dup(root);
        if cur < 0 {
            return false;
        }
        let mut depth = 0usize;
        let mut buf = [0u8; 16 * 1024];
        let mut chmod_tried = false;
        loop {
            if libc::lseek(cur, 0, libc::SEEK_SET) != 0 {
                libc::close(cur);
                return false;
            }
            let mut removed = false;
            let mut descend: RawFd = -1;
            'read: loop {
                let n = libc::syscall(libc::SYS_getdents64, cur, buf.as_mut_ptr(), buf.len());
                if n < 0 {
                    libc::close(cur);
                    return false;
                }
                if n == 0 {
                    break;
                }
                let mut off = 0usize;
                while off < n as usize {
                    let d = buf.as_ptr().add(off).cast::<libc::dirent64>();
                    let reclen = std::ptr::read_unaligned(std::ptr::addr_of!((*d).d_reclen));
                    let kind = std::ptr::read_unaligned(std::ptr::addr_of!((*d).d_type));
                    let name = std::ptr::addr_of!((*d).d_name).cast::<libc::c_char>();
                    off += reclen as usize;
                    let dot = *name == b'.' as libc::c_char
                        && (*name.add(1) == 0
                            || (*name.add(1) == b'.' as libc::c_char && *name.add(2) == 0));
                    if dot {
                        continue;
                    }
                    let flags = if kind == libc::DT_DIR {
                        libc::AT_REMOVEDIR
                    } else {
                        0
                    };
                    if libc::unlinkat(cur, name, flags) == 0 {
                        removed = true;
                        continue;
                    }
                    let err = *libc::__errno_location();
                    let is_dir = (flags != 0 && (err == libc::ENOTEMPTY || err == libc::EEXIST))
                        || (flags == 0 && err == libc::EISDIR);
                    if !is_dir {
                        if (err == libc::EACCES || err == libc::EPERM) && !chmod_tried {
                            // A read-only directory from a layer: make it writable once.
                            libc::fchmod(cur, 0o700);
                            chmod_tried = true;
                            removed = true;
                            break 'read;
                        }
                        libc::close(cur);
                        return false;
                    }
                    // d_type was not given: an empty directory goes at once.
                    if flags == 0 && libc::unlinkat(cur, name, libc::AT_REMOVEDIR) == 0 {
                        removed = true;
                        continue;
                    }
                    let sub = libc::openat(
                        cur,
                        name,
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    );
                    if sub < 0 || libc::fstat(sub, &mut st) != 0 || st.st_dev != dev {
                        if sub >= 0 {
                            libc::close(sub);
                        }
                        libc::close(cur);
                        return false;
                    }
                    descend = sub;
                    break 'read;
                }
            }
            if descend >= 0 {
                chmod_tried = false;
                libc::close(cur);
                cur = descend;
                depth += 1;
                continue;
            }
            if removed {
                continue; // another pass: entries may have moved while deleting
            }
            if depth == 0 {
                libc::close(cur);
                return true;
            }
            let parent = libc::openat(
                cur,
                c"..".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            libc::close(cur);
            if parent < 0 {
                return false;
            }
            cur = parent;
            chmod_tried = false;
            depth -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A tree big enough that removing it takes far longer than handing it over.
    fn fill(dir: &Path, dirs: usize, files: usize) {
        for d in 0..dirs {
            let sub = dir.join(format!("d{d}")).join("nested");
            fs_err::create_dir_all(&sub).unwrap();
            for f in 0..files {
                fs_err::write(sub.join(format!("f{f}")), b"x").unwrap();
            }
        }
        // A read-only directory and a symlink out of the tree must not stop it.
        let ro = dir.join("ro");
        fs_err::create_dir(&ro).unwrap();
        fs_err::write(ro.join("inside"), b"y").unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("etc-link")).unwrap();
        fs_err::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs_err::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "timed out waiting until {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn alive(pid: u32) -> bool {
        // A zombie has exited; init reaps it soon after.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z'),
            Err(_) => false,
        }
    }

    #[test]
    fn the_build_dir_is_gone_at_once_and_removed_in_the_background() {
        let kaniko = tempfile::tempdir().unwrap();
        let mut work = WorkDir::create(kaniko.path()).unwrap();
        let path = work.path().to_path_buf();
        fill(&path, 40, 500);
        let pid = work.release().unwrap().expect("a remover");
        // Handed over: the build dir's name is gone, its content is still in the trash
        // while the detached remover works through 20,000 files.
        assert!(!path.exists());
        let trash = kaniko.path().join(TRASH_DIR);
        assert_eq!(
            names(&trash),
            vec![path.file_name().unwrap().to_string_lossy().into_owned()]
        );
        assert!(alive(pid), "the remover {pid} should still be running");
        wait_until("the trash is empty", || names(&trash).is_empty());
        assert!(
            fs_err::metadata("/etc").is_ok(),
            "the symlink was not followed"
        );
        assert_eq!(names(kaniko.path()), vec![TRASH_DIR.to_string()]);
        drop(work);
    }

    // Regression (issue 19, found by `cargo xtask chaos`'s crash family): a build
    // SIGKILLed during a RUN left its overlay mounted in its dir, and the sweep and
    // remover (which never cross file systems) left it mounted for good.
    #[test]
    fn a_dead_builds_mounts_are_detached_by_the_next_build() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test mounts a tmpfs: run it as root"
        );
        let kaniko = tempfile::tempdir().unwrap();
        let dead = kaniko.path().join(format!("{BUILD_DIR_PREFIX}dead"));
        let mounted = dead.join("stage-0/rootfs");
        fs_err::create_dir_all(&mounted).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&mounted)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs on {}",
            mounted.display()
        );
        fs_err::write(mounted.join("file"), "in the dead build's mount").unwrap();
        let mounts_below = || {
            std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .lines()
                .filter(|l| l.contains(&*kaniko.path().to_string_lossy()))
                .count()
        };
        assert_eq!(mounts_below(), 1);
        let next = WorkDir::create(kaniko.path()).unwrap();
        assert_eq!(mounts_below(), 0, "the dead build's mount is still there");
        let trash = kaniko.path().join(TRASH_DIR);
        wait_until("the trash is empty", || names(&trash).is_empty());
        drop(next);
    }

    #[test]
    fn a_killed_remover_is_finished_by_the_next_build() {
        let kaniko = tempfile::tempdir().unwrap();
        let mut work = WorkDir::create(kaniko.path()).unwrap();
        fill(work.path(), 40, 500);
        let pid = work.release().unwrap().expect("a remover");
        // SAFETY: signalling the remover this test started.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
        wait_until("the remover is dead", || !alive(pid));
        let trash = kaniko.path().join(TRASH_DIR);
        assert_eq!(names(&trash).len(), 1, "the killed remover left its entry");

        let next = WorkDir::create(kaniko.path()).unwrap();
        wait_until("the next build's sweep empties the trash", || {
            names(&trash).is_empty()
        });
        assert!(next.path().is_dir());
    }

    #[test]
    fn a_sweep_never_touches_a_live_build_or_a_held_trash_entry() {
        let kaniko = tempfile::tempdir().unwrap();
        let live = WorkDir::create(kaniko.path()).unwrap();
        fs_err::write(live.path().join("in-use"), b"live").unwrap();
        // A build that died: its dir is there, nobody holds its lock.
        let dead = kaniko.path().join("build-dead");
        fill(&dead, 2, 10);
        // A trash entry some other process is still removing (it holds the lock).
        let trash = kaniko.path().join(TRASH_DIR);
        let held = trash.join("held");
        fs_err::create_dir(&held).unwrap();
        fs_err::write(held.join("kept"), b"held").unwrap();
        let held_lock = open_dir(&held).unwrap();
        assert!(try_lock(&held_lock).unwrap());

        let next = WorkDir::create(kaniko.path()).unwrap();
        assert!(
            !dead.exists(),
            "the dead build's dir was moved to the trash"
        );
        wait_until("the dead build's dir is removed", || {
            names(&trash) == vec!["held"]
        });
        assert_eq!(fs_err::read(held.join("kept")).unwrap(), b"held");
        assert_eq!(fs_err::read(live.path().join("in-use")).unwrap(), b"live");
        assert!(next.path().is_dir());
        drop(held_lock);
    }

    #[test]
    fn the_kaniko_dir_spreads_build_dirs_over_block_groups() {
        let kaniko = tempfile::tempdir().unwrap();
        let _work = WorkDir::create(kaniko.path()).unwrap();
        // SAFETY: statfs fills the struct it is given.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        let c = CString::new(kaniko.path().as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::statfs(c.as_ptr(), &mut st) }, 0);
        assert_eq!(
            st.f_type,
            libc::EXT4_SUPER_MAGIC,
            "this test needs the temp dir on ext4"
        );
        let file = std::fs::File::open(kaniko.path()).unwrap();
        let mut flags: libc::c_int = 0;
        // SAFETY: FS_IOC_GETFLAGS writes one int through the pointer.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        assert_ne!(flags & 0x0002_0000, 0, "FS_TOPDIR_FL is set on kiln's dir");
    }

    #[test]
    fn a_kept_dir_is_left_alone() {
        let kaniko = tempfile::tempdir().unwrap();
        let mut work = WorkDir::create(kaniko.path()).unwrap();
        fs_err::write(work.path().join("f"), b"x").unwrap();
        work.keep();
        let path = work.path().to_path_buf();
        assert_eq!(work.release().unwrap(), None);
        drop(work);
        assert_eq!(fs_err::read(path.join("f")).unwrap(), b"x");
        assert!(names(&kaniko.path().join(TRASH_DIR)).is_empty());
    }
}
