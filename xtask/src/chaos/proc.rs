//! Running the kiln binary as a child: output to a log file, signals by pid,
//! waiting with a deadline, and the child's peak RSS from `wait4`'s rusage.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A started child process.
#[derive(Debug)]
pub struct Running {
    pid: libc::pid_t,
    started: Instant,
    log: PathBuf,
    reaped: bool,
}

/// How a child ended.
#[derive(Debug)]
pub struct Finished {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Signal number, when a signal killed it.
    pub signal: Option<i32>,
    /// Peak resident set size, in KiB (`ru_maxrss`).
    pub max_rss_kib: i64,
    pub elapsed: Duration,
    /// Its stdout and stderr.
    pub log: String,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The last lines of the log, for failure messages.
    pub fn tail(&self) -> String {
        let lines: Vec<&str> = self.log.lines().collect();
        lines[lines.len().saturating_sub(6)..].join("\n    ")
    }
}

impl Running {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(cmd: &mut Command, log: &Path) -> Result<Running> {
        let file = fs_err::File::create(log)?.into_parts().0;
        let err = file.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .env_remove("RUST_LOG")
            .spawn()
            .with_context(|| format!("starting {cmd:?}"))?;
        Ok(Running {
            pid: child.id() as libc::pid_t,
            started: Instant::now(),
            log: log.to_path_buf(),
            reaped: false,
        })
    }

    pub fn signal(&self, signo: i32) {
        // SAFETY: signalling our own unreaped child.
        unsafe { libc::kill(self.pid, signo) };
    }

    /// Its log so far.
    pub fn log_so_far(&self) -> String {
        fs_err::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits at most `deadline` (from now), then kills it and fails.
    pub fn wait(mut self, deadline: Duration) -> Result<Finished> {
        let until = Instant::now() + deadline;
        loop {
            let mut status = 0;
            // SAFETY: an all-zero rusage is valid; wait4 fills it.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: reaping our own child.
            let r = unsafe { libc::wait4(self.pid, &mut status, libc::WNOHANG, &mut usage) };
            if r == self.pid {
                self.reaped = true;
                let log = self.log_so_far();
                return Ok(Finished {
                    code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
                    signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
                    max_rss_kib: usage.ru_maxrss,
                    elapsed: self.started.elapsed(),
                    log,
                });
            }
            if r < 0 {
                bail!(
                    "waiting for pid {}: {}",
                    self.pid,
                    std::io::Error::last_os_error()
                );
            }
            if Instant::now() >= until {
                let log = self.log_so_far();
                self.kill_and_reap();
                bail!(
                    "still running after {:?}; killed. Log ends:\n    {}",
                    deadline,
                    log.lines()
                        .rev()
                        .take(6)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n    ")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill_and_reap(&mut self) {
        if !self.reaped {
            self.signal(libc::SIGKILL);
            let mut status = 0;
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(self.pid, &mut status, 0) };
            self.reaped = true;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

/// Runs `cmd` to completion (at most `deadline`).
pub fn run(cmd: &mut Command, log: &Path, deadline: Duration) -> Result<Finished> {
    Running::spawn(cmd, log)?.wait(deadline)
}

/// Pids of live processes whose command line contains `needle` (NUL-separated args).
pub fn processes_with(needle: &[u8]) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && cmdline.windows(needle.len()).any(|w| w == needle)
        {
            found.push(pid);
        }
    }
    found
}

/// Mount points under `dir` (from /proc/self/mountinfo).
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}
