//! Rootless builds as a whole inside one user namespace (what `buildah
//! unshare` does): when kiln starts without root and the caller has
//! `/etc/subuid`/`/etc/subgid` ranges (and `newuidmap`/`newgidmap`), it runs
//! itself again in a new user and mount namespace where the caller is root and
//! the ranges are ids 1…, and waits for it. Inside, everything the build does
//! — unpacking layers with their owners, RUN as any USER, snapshots — sees the
//! image's own ids, so layers record them; on disk the files belong to the
//! subordinate ids.
//!
//! The child is started with `pre_exec`: it unshares, tells a helper thread of
//! the parent its pid through a pipe, and waits on a second pipe until the
//! helper has written the maps with `newuidmap`/`newgidmap`; only then does it
//! exec. Everything in `pre_exec` is raw system calls on prepared data.
//!
//! While the child runs, the parent passes SIGTERM, SIGINT, SIGHUP and SIGQUIT on to
//! it (a CI runner cancelling the job signals the process it started, the parent) and
//! waits: the child stops its build and cleans up, and the parent exits with the
//! child's code (128 + N for a stopped build). A signal that arrives before the child
//! exists is passed on as soon as it does.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::sync::atomic::{AtomicI32, Ordering};

use crate::error::SandboxError;
use crate::idmap::IdMapping;

/// Set in the re-run process: it is already inside its namespace.
pub const INSIDE_ENV: &str = "KILN_ROOTLESS_NAMESPACE";

/// Runs this program again (same arguments, environment, stdio) inside a user
/// namespace mapping the caller's subordinate ranges, and returns its exit
/// code; `Ok(None)` when that does not apply (root already, inside already, or
/// no ranges or helpers: the build then goes on with the caller-only mapping
/// of rootless RUN steps).
pub fn rerun_in_user_namespace() -> Result<Option<i32>, SandboxError> {
    // SAFETY: trivial getter.
    if unsafe { libc::geteuid() } == 0 || std::env::var_os(INSIDE_ENV).is_some() {
        return Ok(None);
    }
    let mapping = IdMapping::detect();
    if !mapping.uses_helpers() {
        return Ok(None);
    }
    let fail = |what: &str, e: std::io::Error| SandboxError::IdMap {
        helper: "kiln".into(),
        reason: format!("{what}: {e}"),
    };
    let exe = std::fs::read_link("/proc/self/exe").map_err(|e| fail("finding kiln's binary", e))?;
    let (ready_r, ready_w) = pipe().map_err(|e| fail("creating a pipe", e))?;
    let (go_r, go_w) = pipe().map_err(|e| fail("creating a pipe", e))?;
    let (ready_w_fd, go_r_fd) = (ready_w.as_raw_fd(), go_r.as_raw_fd());

    // The helper: reads the child's pid, writes its maps, lets it go on.
    let helper = std::thread::spawn(move || -> Result<(), SandboxError> {
        let mut ready = std::fs::File::from(ready_r);
        let mut go = std::fs::File::from(go_w);
        let mut pid = [0u8; 4];
        if ready.read_exact(&mut pid).is_err() {
            // The child failed before unsharing; its exit status says why.
            return Ok(());
        }
        let result = mapping.write_with_helpers(i32::from_ne_bytes(pid));
        let _ = go.write_all(&[u8::from(result.is_ok())]);
        result
    });

    let mut cmd = std::process::Command::new(exe);
    cmd.args(std::env::args_os().skip(1)).env(INSIDE_ENV, "1");
    // SAFETY: only async-signal-safe raw system calls on fds prepared above.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let pid = libc::getpid().to_ne_bytes();
            if libc::write(ready_w_fd, pid.as_ptr().cast(), pid.len()) != pid.len() as isize {
                return Err(std::io::Error::last_os_error());
            }
            let mut ok = 0u8;
            if libc::read(go_r_fd, (&mut ok as *mut u8).cast(), 1) != 1 || ok != 1 {
                return Err(std::io::Error::from_raw_os_error(libc::EPERM));
            }
            libc::close(ready_w_fd);
            libc::close(go_r_fd);
            Ok(())
        });
    }
    let forwarding = Forwarding::install();
    let spawned = cmd.spawn();
    if let Ok(child) = &spawned {
        forwarding.to(child.id() as libc::pid_t);
    }
    drop(ready_w);
    drop(go_r);
    let mapped = helper.join().map_err(|_| SandboxError::IdMap {
        helper: "kiln".into(),
        reason: "the id-map helper thread panicked".into(),
    })?;
    mapped?;
    let mut child = spawned.map_err(|e| fail("starting kiln in a user namespace", e))?;
    let status = child
        .wait()
        .map_err(|e| fail("waiting for kiln in its user namespace", e))?;
    drop(forwarding);
    // Killed by a signal it did not handle: report it as a shell would.
    Ok(Some(status.code().unwrap_or_else(|| {
        128 + status.signal().unwrap_or(libc::SIGKILL)
    })))
}

/// The signals passed on to the re-run child.
const FORWARDED: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

/// The child signals go to (0: not started yet).
static CHILD: AtomicI32 = AtomicI32::new(0);
/// A signal received before the child existed (0: none).
static PENDING: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signo: libc::c_int) {
    let child = CHILD.load(Ordering::SeqCst);
    if child > 0 {
        // SAFETY: kill is async-signal-safe; the pid is our unreaped child.
        unsafe { libc::kill(child, signo) };
    } else {
        PENDING.store(signo, Ordering::SeqCst);
    }
}

/// The parent's handlers for [`FORWARDED`] while the child runs; the previous
/// dispositions come back on drop.
struct Forwarding {
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

impl Forwarding {
    fn install() -> Forwarding {
        let mut previous = Vec::new();
        for signo in FORWARDED {
            // SAFETY: installing a handler that only touches atomics and calls kill.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = forward as extern "C" fn(libc::c_int) as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signo, &action, &mut old) == 0 {
                    previous.push((signo, old));
                }
            }
        }
        Forwarding { previous }
    }

    /// From now on signals go to `child`, and one that came before goes now.
    fn to(&self, child: libc::pid_t) {
        CHILD.store(child, Ordering::SeqCst);
        let pending = PENDING.swap(0, Ordering::SeqCst);
        if pending != 0 {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child, pending) };
        }
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        CHILD.store(0, Ordering::SeqCst);
        for (signo, old) in &self.previous {
            // SAFETY: restoring the disposition saved by install.
            unsafe { libc::sigaction(*signo, old, std::ptr::null_mut()) };
        }
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds are fresh and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
