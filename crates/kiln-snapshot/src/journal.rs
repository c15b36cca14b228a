//! A change journal for the walk backend: an inotify watch on every walked directory, so
//! that the walk after a step only re-reads the directories something happened in.
//!
//! inotify needs no privilege and no mount, so it works wherever the walk backend does.
//! It reports, per watched directory, every create, delete, rename, write, close after
//! writing (which also covers writes through `mmap`, invisible to `IN_MODIFY`) and
//! attribute change (mode, owner, times, xattrs, link count) of the directory itself or
//! of an entry in it. A thread moves events out of the kernel queue as they come, so
//! large steps do not overflow it. What it cannot tell is handled by the caller: a
//! queue overflow ([`Dirty::All`]) means a full walk, a directory without a watch is always re-read,
//! and hard links (an inode written through a name in another directory) are dealt with
//! by the tree (see `tree.rs`).

use std::collections::BTreeSet;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

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

/// One inotify instance watching the directories of one rootfs, and a thread that keeps
/// its kernel queue short: the queue holds 16384 events by default, a package install
/// makes several per file, and an overflow costs a full walk. The thread folds events
/// into a set of directories, bounded by the number of watches.
#[derive(Debug)]
pub(crate) struct Journal {
    queue: Arc<Queue>,
    /// `None` when the thread could not be started: events then wait in the kernel
    /// queue until the next drain.
    reader: Option<Reader>,
}

/// The inotify fd and what was read from it since the last drain.
#[derive(Debug)]
struct Queue {
    fd: OwnedFd,
    pending: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    dirty: BTreeSet<Wd>,
    overflow: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves every event the kernel holds into `pending`.
    fn read_into(&self, pending: &mut Pending) {
        // Aligned for inotify_event; holds many events, and any single one.
        let mut buf = [0u64; 1024];
        loop {
            // SAFETY: the buffer is valid for writes of its whole length in bytes.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    std::mem::size_of_val(&buf),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return,
                    Some(libc::EINTR) => continue,
                    _ => {
                        tracing::debug!(error = %e, "reading the inotify journal failed: walking the whole tree");
                        pending.overflow = true;
                        return;
                    }
                }
            }
            let n = n as usize;
            if n == 0 {
                return;
            }
            // SAFETY: the kernel wrote `n` bytes of initialised events into `buf`.
            let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
            let header = std::mem::size_of::<libc::inotify_event>();
            let mut off = 0;
            while off + header <= n {
                // SAFETY: an event header lies at `off` (the kernel writes whole events);
                // read_unaligned copes with any alignment.
                let ev: libc::inotify_event = unsafe {
                    std::ptr::read_unaligned(bytes[off..].as_ptr().cast::<libc::inotify_event>())
                };
                if ev.mask & libc::IN_Q_OVERFLOW != 0 {
                    pending.overflow = true;
                } else {
                    pending.dirty.insert(ev.wd);
                }
                off += header + ev.len as usize;
            }
        }
    }
}

/// The thread that reads the queue as events arrive; stopped and joined on drop.
#[derive(Debug)]
struct Reader {
    /// An eventfd the thread polls next to the inotify fd: written to stop it.
    stop: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

impl Reader {
    fn start(queue: &Arc<Queue>) -> io::Result<Reader> {
        // SAFETY: no pointers involved.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `efd` was just returned by eventfd and is owned by nobody else.
        let stop = unsafe { OwnedFd::from_raw_fd(efd) };
        let queue = Arc::clone(queue);
        let thread = std::thread::Builder::new()
            .name("kiln-snapshot-journal".into())
            .spawn(move || read_until_stopped(&queue, efd))?;
        Ok(Reader {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to the eventfd we own.
        let rc = unsafe {
            libc::write(
                self.stop.as_raw_fd(),
                std::ptr::from_ref(&one).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        if rc < 0 {
            // Cannot happen with an eventfd below its maximum; never wait forever.
            tracing::debug!(error = %io::Error::last_os_error(), "could not stop the journal reader");
            return;
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::debug!("the journal reader panicked");
        }
    }
}

/// The reader's loop: sleep in poll until events or the stop signal arrive.
fn read_until_stopped(queue: &Queue, stop: RawFd) {
    loop {
        let mut fds = [
            libc::pollfd {
                fd: queue.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            // Events keep waiting in the kernel queue for the next drain.
            tracing::debug!(error = %e, "the journal reader stops");
            return;
        }
        if fds[1].revents != 0 {
            return;
        }
        if fds[0].revents != 0 {
            let mut pending = queue.lock();
            queue.read_into(&mut pending);
        }
    }
}

impl Journal {
    /// A new journal with its reader thread, or `None` where inotify is unavailable
    /// (too many instances, seccomp): the walk backend then walks the whole tree after
    /// every step.
    pub(crate) fn new() -> Option<Journal> {
        let mut journal = Journal::without_reader()?;
        match Reader::start(&journal.queue) {
            Ok(reader) => journal.reader = Some(reader),
            Err(e) => {
                tracing::debug!(error = %e, "no journal reader thread: events wait in the kernel queue");
            }
        }
        Some(journal)
    }

    /// A journal whose events are read only when drained.
    fn without_reader() -> Option<Journal> {
        // SAFETY: no pointers involved.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            tracing::debug!(error = %e, "no inotify: every walk snapshot walks the whole tree");
            return None;
        }
        // SAFETY: `fd` was just returned by inotify_init1 and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Some(Journal {
            queue: Arc::new(Queue {
                fd,
                pending: Mutex::new(Pending::default()),
            }),
            reader: None,
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
        let wd = unsafe { libc::inotify_add_watch(self.queue.fd.as_raw_fd(), path.as_ptr(), mask) };
        if wd < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(wd)
        }
    }

    /// Forgets which directories the last drain reported, because they were not acted
    /// upon (the walk or the diff failed): the next drain reports everything.
    pub(crate) fn invalidate(&self) {
        self.queue.lock().overflow = true;
    }

    /// Every event since the last call (read by the thread, or still in the kernel
    /// queue): which watched directories saw something happen.
    pub(crate) fn drain(&self) -> Dirty {
        let mut pending = self.queue.lock();
        self.queue.read_into(&mut pending);
        let Pending { dirty, overflow } = std::mem::take(&mut *pending);
        if overflow {
            tracing::debug!("inotify queue overflowed: walking the whole tree");
            return Dirty::All;
        }
        Dirty::Dirs(dirty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs::File;
    use std::time::{Duration, Instant, SystemTime};

    fn max_queued_events() -> usize {
        std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(16384)
    }

    /// A watched directory with two files to change in turn (the kernel merges
    /// identical consecutive events, not alternating ones).
    fn watched_dir(journal: &Journal) -> (tempfile::TempDir, Wd, [File; 2]) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = File::open(tmp.path()).unwrap();
        let wd = journal.watch(dir.as_raw_fd(), tmp.path()).unwrap();
        let files = ["a", "b"].map(|n| File::create(tmp.path().join(n)).unwrap());
        (tmp, wd, files)
    }

    fn touch(files: &[File; 2], i: usize) {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + i as u64);
        files[i % 2].set_modified(t).unwrap();
    }

    /// Bytes waiting in the kernel queue.
    fn queued_bytes(journal: &Journal) -> libc::c_int {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int.
        let rc = unsafe { libc::ioctl(journal.queue.fd.as_raw_fd(), libc::FIONREAD, &mut n) };
        assert_eq!(rc, 0);
        n
    }

    #[test]
    fn an_overflow_means_everything_and_empties_the_queue() {
        let journal = Journal::without_reader().expect("inotify available");
        let (_tmp, _wd, files) = watched_dir(&journal);
        for i in 0..=max_queued_events() {
            touch(&files, i);
        }
        assert!(matches!(journal.drain(), Dirty::All));
        assert!(matches!(journal.drain(), Dirty::Dirs(d) if d.is_empty()));
    }

    #[test]
    fn the_reader_keeps_the_kernel_queue_from_overflowing() {
        let journal = Journal::new().expect("inotify available");
        assert!(journal.reader.is_some(), "reader thread started");
        let (_tmp, wd, files) = watched_dir(&journal);
        // Three queues' worth of events, in batches the reader empties in between.
        let deadline = Instant::now() + Duration::from_secs(60);
        for batch in 0..3 * max_queued_events() / 1000 {
            for i in 0..1000 {
                touch(&files, batch * 1000 + i);
            }
            while queued_bytes(&journal) > 0 {
                assert!(Instant::now() < deadline, "the reader stopped reading");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        match journal.drain() {
            Dirty::Dirs(d) => assert_eq!(d.into_iter().collect::<Vec<_>>(), [wd]),
            Dirty::All => panic!("the queue overflowed although the reader emptied it"),
        }
    }
}
