//! SIGTERM and SIGINT end a build cleanly, the way a CI runner expects when it
//! cancels a job: every running RUN command is killed (through kiln-sandbox's
//! [`kiln_sandbox::stop_all`], which also refuses new ones), the build future is
//! dropped at its next await point (so nothing more is pushed and the build's work
//! dir is handed to its remover), and the process exits with 128 + the signal
//! number, as a shell reports a process killed by that signal.
//!
//! A build busy in a long synchronous step (unpacking, encoding) may not reach an
//! await point soon; a watchdog thread then exits the process after
//! [`GRACE`], leaving the work dir for the next build's sweep.

use std::future::Future;
use std::time::Duration;

/// How long a stopped build may take to unwind before the process exits anyway.
pub const GRACE: Duration = Duration::from_secs(4);

/// Runs `build` on a new multi-threaded runtime until it ends or SIGTERM/SIGINT
/// arrives: `Ok(output)`, or `Err(signal number)` when it was stopped; `None`
/// (logged) when the runtime cannot start.
pub fn block_on_until_signal<F: Future>(build: F) -> Option<Result<F::Output, i32>> {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return None;
        }
    };
    let ended = runtime.block_on(async {
        let (tx, mut rx) = tokio::sync::watch::channel(None::<i32>);
        let watcher = tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::warn!("cannot watch SIGTERM/SIGINT; they will end kiln abruptly");
                return;
            };
            let signo = tokio::select! {
                _ = term.recv() => libc_signal::TERM,
                _ = int.recv() => libc_signal::INT,
            };
            let killed = kiln_sandbox::stop_all();
            tracing::error!(
                signal = signo,
                killed_run_commands = killed,
                "stopping the build: signal {signo} received; nothing more is pushed"
            );
            watchdog(signo);
            let _ = tx.send(Some(signo));
        });
        let ended = tokio::select! {
            biased;
            Ok(()) = rx.changed() => Err(rx.borrow().unwrap_or(libc_signal::TERM)),
            output = build => match *rx.borrow() {
                Some(signo) => Err(signo),
                None => Ok(output),
            },
        };
        watcher.abort();
        ended
    });
    // Whatever the stopped build left running (a blocking download thread) must not
    // hold the exit up.
    runtime.shutdown_timeout(Duration::from_millis(500));
    Some(ended)
}

/// Exits with 128 + `signo` after [`GRACE`] if the process is still alive then.
fn watchdog(signo: i32) {
    let spawned = std::thread::Builder::new()
        .name("kiln-signal-watchdog".into())
        .spawn(move || {
            std::thread::sleep(GRACE);
            tracing::error!("the build did not stop within {GRACE:?}; exiting");
            std::process::exit(128 + signo);
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the stop watchdog: {e}");
    }
}

/// The two signal numbers (Linux), without a libc dependency in the binary.
mod libc_signal {
    pub const INT: i32 = 2;
    pub const TERM: i32 = 15;
}
