//! The supervisors of the RUN commands running right now, so that a process that is
//! told to stop (SIGTERM, SIGINT) can end them at once instead of waiting for them.
//!
//! [`stop_all`] kills every live supervisor with SIGKILL (its death takes the command
//! with it: the command is pid 1 of the supervisor's pid namespace and has a
//! parent-death signal) and makes every later [`register`] kill its supervisor
//! straight away, so no RUN starts after the stop. The run that was killed returns
//! an error ("the supervisor ended without a report") and the caller unwinds as for
//! any failed RUN, undoing its mount targets.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static LIVE: Mutex<BTreeSet<libc::pid_t>> = Mutex::new(BTreeSet::new());
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Records a supervisor that was just forked; kills it when a stop was requested.
pub(crate) fn register(pid: libc::pid_t) {
    let mut live = LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    live.insert(pid);
    if STOPPING.load(Ordering::SeqCst) {
        // SAFETY: killing our own child, which is not reaped yet.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Forgets a supervisor; called before it is reaped, so its pid is never reused while
/// it is in the set.
pub(crate) fn unregister(pid: libc::pid_t) {
    LIVE.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .remove(&pid);
}

/// Kills every running RUN command (through its supervisor) and refuses to start
/// new ones for the rest of the process's life; returns how many were running.
pub fn stop_all() -> usize {
    let live = LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    STOPPING.store(true, Ordering::SeqCst);
    for &pid in live.iter() {
        // SAFETY: each pid is our own unreaped child (unregistered before it is reaped).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    live.len()
}

/// True once [`stop_all`] was called.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}
