//! Code that runs in forked children: the supervisor process and the command process.
//!
//! The parent may be multi-threaded, so from fork to exec this code only makes raw system
//! calls on data prepared in the parent (see `plan.rs`): no allocation, no locks, no
//! tracing. Failures are reported as fixed-size records on a close-on-exec pipe.

use std::os::fd::RawFd;

use crate::caps;
use crate::plan::{ChrootPlan, ExecPlan, OP_BASE, Op, Plan, Source, Step};

/// A record on the report pipe: `kind`, `step`, `value`.
pub(crate) const REPORT_LEN: usize = 12;
/// A setup step failed: `value` is the errno.
pub(crate) const KIND_FAILED: u32 = 1;
/// The command process ended: `value` is its wait status.
pub(crate) const KIND_STATUS: u32 = 2;

/// The file descriptors a supervisor starts with.
pub(crate) struct ChildFds {
    pub(crate) stdout_w: RawFd,
    pub(crate) stderr_w: RawFd,
    pub(crate) report_w: RawFd,
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn report(fd: RawFd, kind: u32, step: u32, value: i32) {
    let mut rec = [0u8; REPORT_LEN];
    rec[0..4].copy_from_slice(&kind.to_ne_bytes());
    rec[4..8].copy_from_slice(&step.to_ne_bytes());
    rec[8..12].copy_from_slice(&value.to_ne_bytes());
    // SAFETY: writing a local buffer; a short or failed write only loses the report.
    unsafe { libc::write(fd, rec.as_ptr().cast(), REPORT_LEN) };
}

fn fail(fd: RawFd, step: u32, err: i32) -> ! {
    report(fd, KIND_FAILED, step, err);
    // SAFETY: leaving the child without running atexit handlers of the parent's image.
    unsafe { libc::_exit(127) }
}

/// `/proc/self/fd/N` as a NUL-terminated buffer, built without allocating.
struct FdPath([u8; 32]);

impl FdPath {
    fn new(fd: RawFd) -> FdPath {
        let mut buf = [0u8; 32];
        let prefix = b"/proc/self/fd/";
        buf[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 12];
        let mut n = fd.unsigned_abs();
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for i in 0..len {
            buf[prefix.len() + i] = digits[len - 1 - i];
        }
        FdPath(buf)
    }

    fn as_ptr(&self) -> *const libc::c_char {
        self.0.as_ptr().cast()
    }
}

fn open_in_root(rootfd: RawFd, rel: &std::ffi::CStr, flags: libc::c_int) -> Result<RawFd, i32> {
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: raw syscall with valid pointers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            rootfd,
            rel.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd as RawFd)
    }
}

fn close(fd: RawFd) {
    // SAFETY: closing a descriptor this child opened.
    unsafe { libc::close(fd) };
}

/// Remounts the bind mount at `fd` adding `extra` flags, keeping the flags it has (the
/// kernel locks nosuid, nodev, noexec, read-only and atime flags in a user namespace).
fn remount_bind_fd(fd: RawFd, extra: libc::c_ulong) -> Result<(), i32> {
    let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    if unsafe { libc::fstatvfs(fd, &mut vfs) } < 0 {
        return Err(errno());
    }
    let keep = (libc::MS_RDONLY
        | libc::MS_NOSUID
        | libc::MS_NODEV
        | libc::MS_NOEXEC
        | libc::MS_NOATIME
        | libc::MS_NODIRATIME
        | libc::MS_RELATIME)
        & vfs.f_flag as libc::c_ulong;
    let path = FdPath::new(fd);
    // SAFETY: valid NUL-terminated path; null source/fstype/data are allowed for a remount.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            path.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REMOUNT | extra | keep,
            std::ptr::null(),
        )
    };
    if rc < 0 { Err(errno()) } else { Ok(()) }
}

/// Remounts the mount at `rel` (re-resolved, so the new top mount) read-only.
fn remount_readonly(rootfd: RawFd, rel: &std::ffi::CStr) -> Result<(), i32> {
    let fd = open_in_root(rootfd, rel, libc::O_PATH)?;
    let r = remount_bind_fd(fd, libc::MS_RDONLY);
    close(fd);
    r
}

fn opt_ptr(c: &Option<std::ffi::CString>) -> *const libc::c_char {
    c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
}

fn do_op(rootfd: RawFd, op: &Op) -> Result<(), i32> {
    match op {
        Op::Mount {
            source,
            target,
            fstype,
            flags,
            data,
            readonly,
            optional,
        } => {
            let tfd = match open_in_root(rootfd, target, libc::O_PATH) {
                Ok(fd) => fd,
                Err(libc::ENOENT) if *optional => return Ok(()),
                Err(e) => return Err(e),
            };
            let tpath = FdPath::new(tfd);
            let src = match source {
                Source::Name(c) | Source::Host(c) => c.as_ptr(),
                Source::Target => tpath.as_ptr(),
            };
            // SAFETY: valid NUL-terminated strings or null where mount(2) allows it.
            let rc = unsafe {
                libc::mount(
                    src,
                    tpath.as_ptr(),
                    opt_ptr(fstype),
                    *flags,
                    opt_ptr(data).cast(),
                )
            };
            let e = errno();
            close(tfd);
            if rc < 0 {
                return if e == libc::ENOENT && *optional {
                    Ok(())
                } else {
                    Err(e)
                };
            }
            if *readonly {
                remount_readonly(rootfd, target)
            } else {
                Ok(())
            }
        }
        Op::Sysfs { target } => {
            let tfd = open_in_root(rootfd, target, libc::O_PATH)?;
            let tpath = FdPath::new(tfd);
            // SAFETY: valid NUL-terminated strings.
            let rc = unsafe {
                libc::mount(
                    c"sysfs".as_ptr(),
                    tpath.as_ptr(),
                    c"sysfs".as_ptr(),
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    std::ptr::null(),
                )
            };
            if rc == 0 {
                close(tfd);
                return Ok(());
            }
            // A user namespace that does not own the network namespace may not mount
            // sysfs: bind the host's instead, read-only.
            // SAFETY: as above.
            let rc = unsafe {
                libc::mount(
                    c"/sys".as_ptr(),
                    tpath.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                )
            };
            let e = errno();
            close(tfd);
            if rc < 0 {
                return Err(e);
            }
            remount_readonly(rootfd, target)
        }
        Op::Mkdir { parent, name, mode } => {
            let pfd = open_in_root(rootfd, parent, libc::O_PATH)?;
            // SAFETY: valid fd and name.
            let rc = unsafe { libc::mkdirat(pfd, name.as_ptr(), *mode) };
            let e = errno();
            close(pfd);
            if rc < 0 && e != libc::EEXIST {
                Err(e)
            } else {
                Ok(())
            }
        }
        Op::Touch { parent, name, mode } => {
            let pfd = open_in_root(rootfd, parent, libc::O_PATH)?;
            // SAFETY: valid fd and name; never follows a symlink.
            let fd = unsafe {
                libc::openat(
                    pfd,
                    name.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    *mode,
                )
            };
            let e = errno();
            close(pfd);
            if fd < 0 {
                return Err(e);
            }
            close(fd);
            Ok(())
        }
        Op::Symlink {
            parent,
            name,
            target,
        } => {
            let pfd = open_in_root(rootfd, parent, libc::O_PATH)?;
            // SAFETY: valid fd and strings.
            let rc = unsafe { libc::symlinkat(target.as_ptr(), pfd, name.as_ptr()) };
            let e = errno();
            close(pfd);
            if rc < 0 && e != libc::EEXIST {
                Err(e)
            } else {
                Ok(())
            }
        }
    }
}

fn write_file(path: &std::ffi::CStr, content: &[u8]) -> Result<(), i32> {
    // SAFETY: valid path.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: valid buffer.
    let n = unsafe { libc::write(fd, content.as_ptr().cast(), content.len()) };
    let e = errno();
    close(fd);
    if n < 0 { Err(e) } else { Ok(()) }
}

#[repr(C)]
struct IfreqFlags {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

fn loopback_up() -> Result<(), i32> {
    // SAFETY: plain socket for interface ioctls.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(errno());
    }
    let mut req = IfreqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[0] = b'l' as libc::c_char;
    req.name[1] = b'o' as libc::c_char;
    // SAFETY: ifreq-shaped buffer for SIOCGIFFLAGS/SIOCSIFFLAGS.
    let mut rc = unsafe { libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req as *mut IfreqFlags) };
    if rc == 0 {
        req.flags |= libc::IFF_UP as libc::c_short;
        // SAFETY: as above.
        rc = unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &mut req as *mut IfreqFlags) };
    }
    let e = errno();
    close(sock);
    if rc < 0 { Err(e) } else { Ok(()) }
}

fn reset_signals() {
    // SAFETY: resetting dispositions and the mask of this single-threaded child.
    unsafe {
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Switches identity and execs; never returns.
fn exec_command(exec: &ExecPlan, report_fd: RawFd) -> ! {
    // SAFETY: raw identity-switching calls with prepared arguments.
    unsafe {
        if !exec.skip_setgroups && libc::setgroups(exec.groups.len(), exec.groups.as_ptr()) < 0 {
            fail(report_fd, Step::Setgroups as u32, errno());
        }
        if libc::setgid(exec.gid) < 0 {
            fail(report_fd, Step::Setgid as u32, errno());
        }
        if libc::setuid(exec.uid) < 0 {
            fail(report_fd, Step::Setuid as u32, errno());
        }
        libc::umask(0o022);
        if libc::chdir(exec.cwd.as_ptr()) < 0 {
            fail(report_fd, Step::Chdir as u32, errno());
        }
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        let mut last = libc::ENOENT;
        for cand in &exec.candidates {
            libc::execve(
                cand.as_ptr(),
                exec.argv_ptrs.as_ptr(),
                exec.envp_ptrs.as_ptr(),
            );
            let e = errno();
            if e != libc::ENOENT && e != libc::ENOTDIR {
                last = e;
            }
        }
        fail(report_fd, Step::Exec as u32, last)
    }
}

/// The command process of chroot mode: pid 1 of the new pid namespace.
fn chroot_command(setup: &ChrootPlan, exec: Option<&ExecPlan>, report_fd: RawFd) -> ! {
    let fail_step = |s: Step| -> ! { fail(report_fd, s as u32, errno()) };
    // SAFETY: raw mount-namespace setup with prepared strings.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::mount(
            setup.root.as_ptr(),
            setup.root.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        ) < 0
        {
            fail_step(Step::BindRoot);
        }
        let rootfd = libc::open(
            setup.root.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        );
        if rootfd < 0 {
            fail_step(Step::OpenRoot);
        }
        // No device node in the rootfs can be opened (mknod still works and is captured, as
        // in Docker, whose device cgroup has the same effect): a root command must not reach
        // the host's disks or memory through a node it creates.
        if let Err(e) = remount_bind_fd(rootfd, libc::MS_NODEV) {
            fail(report_fd, Step::BindRoot as u32, e);
        }
        for (i, op) in setup.ops.iter().enumerate() {
            if let Err(e) = do_op(rootfd, op) {
                fail(report_fd, OP_BASE + i as u32, e);
            }
        }
        if libc::fchdir(rootfd) < 0 {
            fail_step(Step::PivotRoot);
        }
        let pivoted = libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) == 0;
        if pivoted {
            if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) < 0 {
                fail_step(Step::DetachOldRoot);
            }
        } else if libc::chroot(c".".as_ptr()) < 0 {
            fail_step(Step::PivotRoot);
        }
        if libc::chdir(c"/".as_ptr()) < 0 {
            fail_step(Step::PivotRoot);
        }
        close(rootfd);
        let mask = if pivoted {
            setup.cap_mask
        } else {
            setup.cap_mask & !(1u64 << caps::CAP_SYS_CHROOT)
        };
        let dropped = caps::drop_to(setup.last_cap, mask);
        if let Err(e) = dropped {
            fail(report_fd, Step::DropCaps as u32, e);
        }
        match exec {
            Some(exec) => exec_command(exec, report_fd),
            None => libc::_exit(0),
        }
    }
}

fn in_place_command(exec: &ExecPlan, report_fd: RawFd) -> ! {
    // SAFETY: raw process-group setup.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::setsid() < 0 {
            fail(report_fd, Step::Setsid as u32, errno());
        }
    }
    exec_command(exec, report_fd)
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
fn kill_descendants() {
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

/// The supervisor: sets up stdio, namespaces (chroot mode) or subreaping (in-place mode),
/// forks the command, reports its wait status, cleans up after it and exits.
pub(crate) fn supervisor(plan: &Plan, fds: &ChildFds) -> ! {
    let rfd = fds.report_w;
    let fail_step = |s: Step| -> ! { fail(rfd, s as u32, errno()) };
    // SAFETY: raw process setup in the forked child; all data was prepared by the parent.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        reset_signals();
        let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        if devnull < 0
            || libc::dup2(devnull, 0) < 0
            || libc::dup2(fds.stdout_w, 1) < 0
            || libc::dup2(fds.stderr_w, 2) < 0
        {
            fail_step(Step::Stdio);
        }
        if devnull > 2 {
            close(devnull);
        }
        match plan {
            Plan::Chroot { setup, .. } => {
                if libc::unshare(setup.unshare_flags) < 0 {
                    fail_step(Step::Unshare);
                }
                if let Some((uid_map, gid_map)) = &setup.id_maps {
                    if let Err(e) = write_file(c"/proc/self/setgroups", b"deny") {
                        fail(rfd, Step::SetgroupsDeny as u32, e);
                    }
                    if let Err(e) = write_file(c"/proc/self/uid_map", uid_map.as_bytes()) {
                        fail(rfd, Step::UidMap as u32, e);
                    }
                    if let Err(e) = write_file(c"/proc/self/gid_map", gid_map.as_bytes()) {
                        fail(rfd, Step::GidMap as u32, e);
                    }
                }
                if libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) < 0
                {
                    fail_step(Step::MakePrivate);
                }
                if let Some(h) = &setup.hostname
                    && libc::sethostname(h.as_ptr(), h.as_bytes().len()) < 0
                {
                    fail_step(Step::Sethostname);
                }
                if setup.loopback_up
                    && let Err(e) = loopback_up()
                {
                    fail(rfd, Step::LoopbackUp as u32, e);
                }
            }
            Plan::InPlace { .. } => {
                if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) < 0 {
                    fail_step(Step::Subreaper);
                }
            }
        }
        let pid = libc::fork();
        if pid < 0 {
            fail_step(Step::ForkCommand);
        }
        if pid == 0 {
            match plan {
                Plan::Chroot { setup, exec } => chroot_command(setup, exec.as_ref(), rfd),
                Plan::InPlace { exec } => in_place_command(exec, rfd),
            }
        }
        let mut status = 0;
        loop {
            let r = libc::waitpid(pid, &mut status, 0);
            if r == pid {
                break;
            }
            if errno() != libc::EINTR {
                fail_step(Step::WaitCommand);
            }
        }
        report(rfd, KIND_STATUS, 0, status);
        if let Plan::InPlace { .. } = plan {
            libc::kill(-pid, libc::SIGKILL);
            kill_descendants();
        }
        libc::_exit(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_paths_are_formatted_without_allocation() {
        let p = FdPath::new(1234);
        let s = unsafe { std::ffi::CStr::from_ptr(p.as_ptr()) };
        assert_eq!(s.to_str().unwrap(), "/proc/self/fd/1234");
        let p = FdPath::new(0);
        assert_eq!(
            unsafe { std::ffi::CStr::from_ptr(p.as_ptr()) }
                .to_str()
                .unwrap(),
            "/proc/self/fd/0"
        );
    }

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
