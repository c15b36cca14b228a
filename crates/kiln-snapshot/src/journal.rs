//! A change journal for the walk backend: an inotify watch on every walked directory, so
//! that the walk after a step only re-reads the directories something happened in.
//!
//! inotify needs no privilege and no mount, so it works wherever the walk backend does.
//! It reports, per watched directory, every create, delete, rename, write, close after
//! writing (which also covers writes through `mmap`, invisible to `IN_MODIFY`) and
//! attribute change (mode, owner, times, xattrs, link count) of the directory itself or
//! of an entry in it. What it cannot tell is handled by the caller: a queue overflow
//! ([`Dirty::All`]) means a full walk, a directory without a watch is always re-read,
//! and hard links (an inode written through a name in another directory) are dealt with
//! by the tree (see `tree.rs`).

use std::collections::BTreeSet;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// An inotify watch descriptor.
pub(crate) type Wd = i32;

/// Everything that can change what a walk records about an entry of a directory.
const MASK: u32 = libc::IN_MODIFY
    | libc::IN_ATTRIB
    | libc::IN_CLOSE_WRITE
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_DELETE_SELF
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR;

/// What happened since the journal was last drained.
#[derive(Debug)]
pub(crate) enum Dirty {
    /// The kernel dropped events (queue overflow) or the journal could not be read:
    /// anything may have changed.
    All,
    /// The watches that saw an event.
    Dirs(BTreeSet<Wd>),
}

impl Dirty {
    /// True when the directory watched by `wd` must be read again (`None`: a directory
    /// without a watch, which is always read again).
    pub(crate) fn contains(&self, wd: Option<Wd>) -> bool {
        match (self, wd) {
            (Dirty::All, _) | (_, None) => true,
            (Dirty::Dirs(set), Some(wd)) => set.contains(&wd),
        }
    }
}

/// One inotify instance watching the directories of one rootfs.
#[derive(Debug)]
pub(crate) struct Journal {
    fd: OwnedFd,
}

impl Journal {
    /// A new journal, or `None` where inotify is unavailable (too many instances,
    /// seccomp): the walk backend then walks the whole tree after every step.
    pub(crate) fn new() -> Option<Journal> {
        // SAFETY: no pointers involved.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            tracing::debug!(error = %e, "no inotify: every walk snapshot walks the whole tree");
            return None;
        }
        // SAFETY: `fd` was just returned by inotify_init1 and is owned by nobody else.
        Some(Journal {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Watches the directory open as `dir` (found at `path`). Called before the
    /// directory is read, so that any change after the read is reported. `None` when
    /// the watch cannot be added (watch limit reached): the directory is then read
    /// again at every walk.
    pub(crate) fn watch(&self, dir: RawFd, path: &Path) -> Option<Wd> {
        // Through the open fd, so the watch is on exactly the inode being read.
        let by_fd = CString::new(format!("/proc/self/fd/{dir}")).ok()?;
        match self.add_watch(&by_fd, MASK) {
            Ok(wd) => return Some(wd),
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
                tracing::debug!(path = %path.display(), error = %e, "directory not watched: it is re-read at every walk");
                return None;
            }
            Err(_) => {} // no /proc: by path (nothing runs in the rootfs during a walk)
        }
        let by_path = CString::new(path.as_os_str().as_bytes()).ok()?;
        match self.add_watch(&by_path, MASK | libc::IN_DONT_FOLLOW) {
            Ok(wd) => Some(wd),
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "directory not watched: it is re-read at every walk");
                None
            }
        }
    }

    fn add_watch(&self, path: &CString, mask: u32) -> io::Result<Wd> {
        // SAFETY: valid fd and NUL-terminated path.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), path.as_ptr(), mask) };
        if wd < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(wd)
        }
    }

    /// Reads every event queued since the last call: which watched directories saw
    /// something happen.
    pub(crate) fn drain(&self) -> Dirty {
        let mut dirty = BTreeSet::new();
        let mut overflow = false;
        // Aligned for inotify_event; large enough for any single event.
        let mut buf = vec![0u64; 8192];
        loop {
            // SAFETY: the buffer is valid for writes of its whole length in bytes.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len() * std::mem::size_of::<u64>(),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => break,
                    Some(libc::EINTR) => continue,
                    _ => {
                        tracing::debug!(error = %e, "reading the inotify journal failed: walking the whole tree");
                        return Dirty::All;
                    }
                }
            }
            let n = n as usize;
            if n == 0 {
                break;
            }
            // SAFETY: the kernel wrote `n` bytes of initialised events into `buf`.
            let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
            let mut off = 0;
            let header = std::mem::size_of::<libc::inotify_event>();
            while off + header <= n {
                // SAFETY: an event header lies at `off` (the kernel writes whole events);
                // read_unaligned copes with any alignment.
                let ev: libc::inotify_event = unsafe {
                    std::ptr::read_unaligned(bytes[off..].as_ptr().cast::<libc::inotify_event>())
                };
                if ev.mask & libc::IN_Q_OVERFLOW != 0 {
                    overflow = true;
                } else {
                    dirty.insert(ev.wd);
                }
                off += header + ev.len as usize;
            }
        }
        if overflow {
            // Drained anyway, so that the next step starts from an empty queue.
            tracing::debug!("inotify queue overflowed: walking the whole tree");
            return Dirty::All;
        }
        Dirty::Dirs(dirty)
    }
}
