//! In-place mode: killing and reaping every process the command left behind, from the
//! supervisor, which is their child subreaper: when the command ends, and when kiln
//! dies (even by SIGKILL). For the latter the supervisor's parent-death signal is
//! [`PARENT_DEATH`], handled: the handler kills the command's process group and every
//! descendant, then exits. (In chroot mode the command is pid 1 of its own pid
//! namespace, which dies with it; in-place mode has no namespace to do that, and a
//! plain SIGKILL of the supervisor would orphan the command's children to the
//! container's init, alive.)

use std::sync::atomic::{AtomicI32, Ordering};

use super::{close, errno};

/// The supervisor's parent-death signal in in-place mode.
const PARENT_DEATH: libc::c_int = libc::SIGTERM;

/// The command's pid (its process group) once forked; 0 before.
static COMMAND: AtomicI32 = AtomicI32::new(0);

extern "C" fn parent_died(_: libc::c_int) {
    let command = COMMAND.load(Ordering::SeqCst);
    if command > 0 {
        // SAFETY: killing this supervisor's own command's group.
        unsafe { libc::kill(-command, libc::SIGKILL) };
    }
    kill_descendants();
    // SAFETY: leaving without running anything of the parent's.
    unsafe { libc::_exit(1) }
}

/// Sets the supervisor's parent-death signal to [`PARENT_DEATH`] with a handler that
/// kills and reaps everything below it, then exits. Raw system calls only (it runs in
/// the forked child).
pub(super) fn on_parent_death() {
    // SAFETY: installing an async-signal-safe handler in this single-threaded child.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = parent_died as extern "C" fn(libc::c_int) as usize;
        libc::sigfillset(&mut action.sa_mask);
        libc::sigaction(PARENT_DEATH, &action, std::ptr::null_mut());
        // Replaces the SIGKILL set when the supervisor started, which covered the
        // time before (no command exists yet).
        libc::prctl(libc::PR_SET_PDEATHSIG, PARENT_DEATH);
    }
}

/// Blocks [`PARENT_DEATH`]; the previous mask, for [`unblock`].
pub(super) fn block_parent_death() -> libc::sigset_t {
    // SAFETY: changing this thread's signal mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, PARENT_DEATH);
        libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
        old
    }
}

/// Restores the mask [`block_parent_death`] returned.
pub(super) fn unblock(previous: &libc::sigset_t) {
    // SAFETY: as above.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, previous, std::ptr::null_mut()) };
}

/// Tells the parent-death handler which process group to kill.
pub(super) fn command_started(pid: libc::pid_t) {
    COMMAND.store(pid, Ordering::SeqCst);
}

/// Parses decimal pids separated by other bytes and SIGKILLs each.
fn kill_listed(list: &[u8]) {
    let mut pid: i32 = 0;
    for &b in list.iter().chain(b" ") {
        if b.is_ascii_digit() {
            pid = pid.saturating_mul(10).saturating_add(i32::from(b - b'0'));
        } else {
            if pid > 0 {
                // SAFETY: killing a child of this process.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            pid = 0;
        }
    }
}

/// The parent pid in the text of /proc/PID/stat (`pid (comm) state ppid ...`).
fn ppid_from_stat(stat: &[u8]) -> Option<i32> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let mut fields = stat[close + 1..]
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty());
    fields.next()?;
    let mut ppid: i32 = 0;
    for &b in fields.next()? {
        if !b.is_ascii_digit() {
            return None;
        }
        ppid = ppid.checked_mul(10)?.checked_add(i32::from(b - b'0'))?;
    }
    Some(ppid)
}

/// Without /proc/thread-self/children (CONFIG_PROC_CHILDREN off): scans /proc for processes
/// whose parent is `me` and SIGKILLs them.
fn kill_children_by_scan(me: i32) {
    // SAFETY: raw directory and file reads into local buffers.
    unsafe {
        let dir = libc::open(
            c"/proc".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        );
        if dir < 0 {
            return;
        }
        let mut dents = [0u8; 8192];
        loop {
            let n = libc::syscall(libc::SYS_getdents64, dir, dents.as_mut_ptr(), dents.len());
            if n <= 0 {
                break;
            }
            let mut off = 0usize;
            while off < n as usize {
                // linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name.
                let reclen = u16::from_ne_bytes([dents[off + 16], dents[off + 17]]) as usize;
                let name = &dents[off + 19..off + reclen];
                let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
                off += reclen;
                if name.is_empty() || !name.iter().all(u8::is_ascii_digit) || name.len() > 10 {
                    continue;
                }
                let mut path = [0u8; 32];
                path[..6].copy_from_slice(b"/proc/");
                path[6..6 + name.len()].copy_from_slice(name);
                path[6 + name.len()..11 + name.len()].copy_from_slice(b"/stat");
                let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    continue;
                }
                let mut stat = [0u8; 512];
                let len = libc::read(fd, stat.as_mut_ptr().cast(), stat.len());
                close(fd);
                if len > 0 && ppid_from_stat(&stat[..len as usize]) == Some(me) {
                    kill_listed(name);
                }
            }
        }
        close(dir);
    }
}

/// Kills every remaining descendant of this (subreaper) process and reaps them: orphans are
/// reparented here as their parents die, so kill the children, reap, repeat until none.
pub(super) fn kill_descendants() {
    let mut buf = [0u8; 4096];
    // SAFETY: trivial getter.
    let me = unsafe { libc::getpid() };
    loop {
        // SAFETY: reading a procfs file into a local buffer.
        let fd = unsafe {
            libc::open(
                c"/proc/thread-self/children".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: as above.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            close(fd);
            kill_listed(&buf[..n.max(0) as usize]);
        } else {
            kill_children_by_scan(me);
        }
        let mut status = 0;
        // SAFETY: reaping any child.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r < 0 && errno() != libc::EINTR {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_is_read_after_the_command_name() {
        assert_eq!(ppid_from_stat(b"42 (a) b) c) S 7 42 42 0"), Some(7));
        assert_eq!(ppid_from_stat(b"42 (sh) R 1 42"), Some(1));
        assert_eq!(ppid_from_stat(b"garbage"), None);
    }

    #[test]
    fn the_proc_scan_finds_this_process_as_parent() {
        // A child of this test process, found by the /proc scan and killed.
        let mut child = std::process::Command::new("sleep")
            .arg("97561")
            .spawn()
            .unwrap();
        kill_children_by_scan(std::process::id() as i32);
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
    }
}
