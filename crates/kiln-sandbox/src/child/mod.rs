//! Code that runs in forked children: the supervisor process and the command process.
//!
//! The parent may be multi-threaded, so from fork to exec this code only makes raw system
//! calls on data prepared in the parent (see `plan.rs`): no allocation, no locks, no
//! tracing. Failures are reported as fixed-size records on a close-on-exec pipe.

use std::os::fd::RawFd;

mod binfmt;
mod mounts;
mod net;
mod reap;

use crate::caps;
use crate::plan::{ChrootPlan, ExecPlan, OP_BASE, Plan, Step};

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
    /// Rootless runs with helper-written id maps: the supervisor writes a byte here once it
    /// has unshared its user namespace...
    pub(crate) idmap_ready_w: RawFd,
    /// ...and reads a byte here once the parent has written the maps (EOF: it could not).
    pub(crate) idmap_go_r: RawFd,
    /// The parent's ends of those pipes, closed first so that the parent's close is an EOF.
    pub(crate) idmap_parent_ends: [RawFd; 2],
}

/// Tells the parent the user namespace exists and waits until it has written the id maps.
fn wait_for_id_maps(fds: &ChildFds) {
    let byte = [1u8];
    for fd in fds.idmap_parent_ends {
        close(fd);
    }
    // SAFETY: writing and reading one byte on pipes this child owns.
    unsafe {
        if libc::write(fds.idmap_ready_w, byte.as_ptr().cast(), 1) != 1 {
            fail(fds.report_w, Step::WaitIdMaps as u32, errno());
        }
        close(fds.idmap_ready_w);
        let mut got = [0u8];
        loop {
            let n = libc::read(fds.idmap_go_r, got.as_mut_ptr().cast(), 1);
            if n == 1 {
                break;
            }
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            // EOF: the parent could not write the maps and reports why itself.
            let e = if n == 0 { libc::EPERM } else { errno() };
            fail(fds.report_w, Step::WaitIdMaps as u32, e);
        }
        close(fds.idmap_go_r);
    }
}

pub(super) fn errno() -> i32 {
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

pub(super) fn close(fd: RawFd) {
    // SAFETY: closing a descriptor this child opened.
    unsafe { libc::close(fd) };
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
        if let Err(e) = mounts::remount_bind_fd(rootfd, libc::MS_NODEV) {
            fail(report_fd, Step::BindRoot as u32, e);
        }
        for (i, op) in setup.ops.iter().enumerate() {
            if let Err(e) = mounts::do_op(rootfd, op) {
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

/// Closes every descriptor above stderr but the supervisor's own pipes. The supervisor never
/// execs, so close-on-exec never fires for what it inherited from the parent's other
/// threads: a file another thread was writing (a rootfs's `/bin/busybox` being copied)
/// would stay open for writing while this run lasts, and exec'ing it elsewhere would fail
/// with ETXTBSY.
fn close_inherited(fds: &ChildFds) {
    let mut keep = [
        fds.report_w,
        fds.idmap_ready_w,
        fds.idmap_go_r,
        fds.idmap_parent_ends[0],
        fds.idmap_parent_ends[1],
    ];
    keep.sort_unstable();
    let mut next: libc::c_int = 3;
    for fd in keep {
        if fd < next {
            continue;
        }
        if fd > next {
            // SAFETY: closing descriptors this child inherited and does not use.
            unsafe { libc::syscall(libc::SYS_close_range, next as u32, (fd - 1) as u32, 0u32) };
        }
        next = fd + 1;
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, next as u32, u32::MAX, 0u32) };
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
        close_inherited(fds);
        match plan {
            Plan::Chroot { setup, .. } => {
                if libc::unshare(setup.unshare_flags) < 0 {
                    fail_step(Step::Unshare);
                }
                if setup.parent_maps.is_some() {
                    wait_for_id_maps(fds);
                } else if let Some((uid_map, gid_map)) = &setup.id_maps {
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
                if let Some(line) = &setup.binfmt
                    && let Err(e) = binfmt::register(line)
                {
                    fail(rfd, Step::Binfmt as u32, e);
                }
                if let Some(h) = &setup.hostname
                    && libc::sethostname(h.as_ptr(), h.as_bytes().len()) < 0
                {
                    fail_step(Step::Sethostname);
                }
                if setup.loopback_up
                    && let Err(e) = net::loopback_up()
                {
                    fail(rfd, Step::LoopbackUp as u32, e);
                }
            }
            Plan::InPlace { .. } => {
                if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) < 0 {
                    fail_step(Step::Subreaper);
                }
                reap::on_parent_death();
            }
        }
        // No parent-death signal between the fork and the command's pid being known.
        let blocked = reap::block_parent_death();
        let pid = libc::fork();
        if pid < 0 {
            fail_step(Step::ForkCommand);
        }
        if pid == 0 {
            reap::unblock(&blocked);
            match plan {
                Plan::Chroot { setup, exec } => chroot_command(setup, exec.as_ref(), rfd),
                Plan::InPlace { exec } => in_place_command(exec, rfd),
            }
        }
        reap::command_started(pid);
        reap::unblock(&blocked);
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
            reap::kill_descendants();
        }
        libc::_exit(0)
    }
}
