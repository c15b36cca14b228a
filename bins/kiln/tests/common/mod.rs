//! What the command-line tests share: running the kiln binary (under any
//! name) with a clean log environment, reading what it printed, and finding,
//! awaiting and signalling the processes of a build.
#![allow(dead_code)] // each test binary uses a subset

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The kiln binary cargo built for the tests.
pub fn kiln() -> &'static str {
    env!("CARGO_BIN_EXE_kiln")
}

/// Runs `program` (kiln, or a link to it under another name) with `args`,
/// without `RUST_LOG` so that the flags alone decide the log level.
pub fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("running kiln")
}

/// Standard output then standard error, as text.
pub fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Pids of the processes whose command line contains `needle`.
pub fn processes_with(needle: &[u8]) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("reading /proc")
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            cmdline
                .windows(needle.len())
                .any(|w| w == needle)
                .then_some(pid)
        })
        .collect()
}

/// Waits (at most 2 minutes) until a process whose command line holds `needle`
/// runs, failing if `kiln` ends first.
pub fn wait_for_process(kiln: &mut std::process::Child, needle: &[u8]) {
    let until = Instant::now() + Duration::from_secs(120);
    while processes_with(needle).is_empty() {
        assert!(Instant::now() < until, "the RUN never started");
        assert!(
            kiln.try_wait().expect("try_wait").is_none(),
            "kiln ended before its RUN started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signo` to `kiln` and waits (at most `limit`) for it to exit; its status
/// and how long that took.
pub fn signal_and_wait(
    kiln: &mut std::process::Child,
    signo: i32,
    limit: Duration,
) -> (std::process::ExitStatus, Duration) {
    let sent = Instant::now();
    // SAFETY: signalling the test's own child.
    unsafe { libc::kill(kiln.id() as libc::pid_t, signo) };
    loop {
        if let Some(status) = kiln.try_wait().expect("try_wait") {
            return (status, sent.elapsed());
        }
        assert!(sent.elapsed() < limit, "kiln did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
}
