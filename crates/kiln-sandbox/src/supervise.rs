//! The parent's side of a run: pipes, fork of the supervisor, output streaming, the report
//! records, and turning them into a result.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::SandboxError;
use crate::child::{self, ChildFds, KIND_FAILED, KIND_STATUS, REPORT_LEN};
use crate::output;
use crate::plan::{OP_BASE, Plan, Step};
use crate::spec::OutputSink;

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are new descriptors owned by us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Kills and reaps the supervisor if the parent leaves early (a panicking sink, an I/O
/// error); its death takes the command with it (parent-death signal).
struct SupervisorGuard {
    pid: libc::pid_t,
    reaped: bool,
}

impl SupervisorGuard {
    fn wait(&mut self) -> io::Result<i32> {
        // Wait for the end without reaping first, so the pid leaves the live set
        // (crate::live) while it still names our child and cannot be reused.
        loop {
            // SAFETY: an all-zero siginfo_t is valid; waitid fills it.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: waiting for our own child, leaving it waitable.
            let r = unsafe {
                libc::waitid(
                    libc::P_PID,
                    self.pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if r == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        crate::live::unregister(self.pid);
        let mut status = 0;
        loop {
            // SAFETY: reaping our own child, which has ended.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid {
                self.reaped = true;
                return Ok(status);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Drop for SupervisorGuard {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: killing our own child, then reaping it.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.wait();
        }
    }
}

/// How the command process ended, or where setup failed.
pub(crate) enum Ended {
    Exited(i32),
    Signaled(i32),
    SetupFailed { step: u32, errno: i32 },
}

/// Forks the supervisor for `plan`, streams output to `sink`, waits for everything to end.
pub(crate) fn run_plan(plan: &Plan, sink: &mut dyn OutputSink) -> Result<Ended, SandboxError> {
    let io_err = |action: &'static str| {
        move |source: io::Error| SandboxError::Io {
            action,
            path: "(pipe)".into(),
            source,
        }
    };
    let (out_r, out_w) = pipe().map_err(io_err("create output pipe"))?;
    let (err_r, err_w) = pipe().map_err(io_err("create output pipe"))?;
    let (rep_r, rep_w) = pipe().map_err(io_err("create report pipe"))?;
    let parent_maps = match plan {
        Plan::Chroot { setup, .. } => setup.parent_maps.as_ref(),
        Plan::InPlace { .. } => None,
    };
    let idmap_pipes = match parent_maps {
        Some(_) => Some((
            pipe().map_err(io_err("create id map pipe"))?,
            pipe().map_err(io_err("create id map pipe"))?,
        )),
        None => None,
    };
    let fds = ChildFds {
        stdout_w: out_w.as_raw_fd(),
        stderr_w: err_w.as_raw_fd(),
        report_w: rep_w.as_raw_fd(),
        idmap_ready_w: idmap_pipes.as_ref().map_or(-1, |((_, w), _)| w.as_raw_fd()),
        idmap_go_r: idmap_pipes.as_ref().map_or(-1, |(_, (r, _))| r.as_raw_fd()),
        idmap_parent_ends: idmap_pipes
            .as_ref()
            .map_or([-1, -1], |((r, _), (_, w))| [r.as_raw_fd(), w.as_raw_fd()]),
    };
    // SAFETY: the child only runs `child::supervisor`, which makes raw system calls on data
    // prepared before the fork and ends with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io_err("fork the sandbox supervisor")(
            io::Error::last_os_error(),
        ));
    }
    if pid == 0 {
        child::supervisor(plan, &fds);
    }
    drop((out_w, err_w, rep_w));
    let mut guard = SupervisorGuard { pid, reaped: false };
    crate::live::register(pid);
    let mut map_error = None;
    if let (Some(maps), Some(((ready_r, ready_w), (go_r, go_w)))) = (parent_maps, idmap_pipes) {
        drop((ready_w, go_r));
        let mut byte = [0u8];
        // Nothing to read: the supervisor failed before its user namespace existed, and its
        // report says why.
        let unshared = std::fs::File::from(ready_r)
            .read(&mut byte)
            .map_err(io_err("wait for the sandbox's user namespace"))?
            == 1;
        if unshared {
            match maps.write(pid) {
                Ok(()) => {
                    std::fs::File::from(go_w)
                        .write_all(&byte)
                        .map_err(io_err("let the sandbox go on"))?;
                }
                // Closing the pipe unblocks the supervisor, which then gives up.
                Err(e) => map_error = Some(e),
            }
        }
    }
    let pumped = output::pump(out_r, err_r, sink);
    let mut reports = Vec::new();
    let read = std::fs::File::from(rep_r).read_to_end(&mut reports);
    let status = guard
        .wait()
        .map_err(io_err("wait for the sandbox supervisor"))?;
    pumped.map_err(io_err("read the command's output"))?;
    read.map_err(io_err("read the sandbox report"))?;
    if let Some(e) = map_error {
        return Err(e);
    }
    let mut ended = None;
    for rec in reports.chunks_exact(REPORT_LEN) {
        let kind = u32::from_ne_bytes(rec[0..4].try_into().unwrap_or_default());
        let step = u32::from_ne_bytes(rec[4..8].try_into().unwrap_or_default());
        let value = i32::from_ne_bytes(rec[8..12].try_into().unwrap_or_default());
        match kind {
            // The first failure is the cause; a command process that failed to exec also
            // exits 127 afterwards, which must not hide it.
            KIND_FAILED => return Ok(Ended::SetupFailed { step, errno: value }),
            KIND_STATUS => {
                ended = Some(if libc::WIFSIGNALED(value) {
                    Ended::Signaled(libc::WTERMSIG(value))
                } else {
                    Ended::Exited(libc::WEXITSTATUS(value))
                })
            }
            _ => {}
        }
    }
    ended.ok_or_else(|| SandboxError::Io {
        action: "supervise the command",
        path: "(sandbox)".into(),
        source: io::Error::other(format!(
            "the supervisor ended without a report (wait status {status:#x})"
        )),
    })
}

/// The description of a failed step, given the descriptions of the plan's operations.
pub(crate) fn describe_step(step: u32, op_descriptions: &[String]) -> String {
    if step >= OP_BASE {
        op_descriptions
            .get((step - OP_BASE) as usize)
            .cloned()
            .unwrap_or_else(|| format!("operation {step}"))
    } else {
        Step::from_u32(step).map_or_else(|| format!("step {step}"), |s| s.describe().to_owned())
    }
}
