//! A private Docker engine (Debian's docker.io 20.10, BuildKit 0.8 built in) for tests
//! and the conformance harness.
//!
//! [`Dockerd::start`] runs `dockerd` as TESTBED.md says, with everything per instance
//! in one temp dir: data root, exec root (containerd's state and sockets), pidfile,
//! the API socket, an empty daemon config (the host's /etc/docker/daemon.json is never
//! read) and a client config dir (the user's ~/.docker is never read). No bridge and no
//! iptables: builds and containers use `--network host` or `--network none`. Several
//! instances may run at once (one per test binary); each uses its own containerd
//! namespace too, in case dockerd attaches to a system containerd.
//!
//! [`Dockerd::docker`] is a client command: always Debian's `/usr/bin/docker` (the
//! `docker` first on PATH may be a newer client without buildx, which fails with
//! `DOCKER_BUILDKIT=1` or silently uses the legacy builder), with `DOCKER_HOST` set to
//! this instance and `DOCKER_BUILDKIT=1`.
//!
//! Drop stops the daemon by PID (SIGTERM, then SIGKILL after a grace period), kills by
//! PID any process still running from this instance's dirs (containerd, shims), detaches
//! mounts left under the temp dir (dockerd bind-mounts its data root onto itself, overlay
//! mounts of running containers) and removes the dir.

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::tools;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(20);

/// A running `dockerd` child process with its own dirs and socket.
#[derive(Debug)]
pub struct Dockerd {
    child: Child,
    dir: Option<tempfile::TempDir>,
    socket: PathBuf,
    log_path: PathBuf,
    client_config: PathBuf,
}

impl Dockerd {
    /// Starts a daemon and waits until its API answers `/_ping`.
    ///
    /// Panics with a clear message when dockerd or Debian's client is missing ("run
    /// .ci/install-deps"), when not root, or (with the daemon log) when it cannot start.
    pub fn start() -> Dockerd {
        let dockerd = tools::dockerd();
        tools::docker_client();
        // SAFETY: geteuid has no preconditions.
        assert!(
            unsafe { libc::geteuid() } == 0,
            "the dockerd harness needs root (dockerd mounts overlays and namespaces)"
        );
        let dir = tempfile::Builder::new()
            .prefix("kiln-dockerd-")
            .tempdir_in("/tmp")
            .expect("creating the dockerd temp dir");
        let root = dir.path();
        let socket = root.join("docker.sock");
        let log_path = root.join("dockerd.log");
        let client_config = root.join("client");
        fs_err::create_dir_all(&client_config).expect("creating the docker client config dir");
        fs_err::write(client_config.join("config.json"), "{}\n")
            .expect("writing the docker client config");
        let daemon_json = root.join("daemon.json");
        fs_err::write(&daemon_json, "{}\n").expect("writing the daemon config");
        let namespace = format!(
            "kiln-{}",
            root.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let log = fs_err::File::create(&log_path).expect("creating dockerd.log");
        let log_err = log.try_clone().expect("cloning dockerd.log");
        let child = Command::new(&dockerd)
            .arg("--config-file")
            .arg(&daemon_json)
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--storage-driver", "overlay2"])
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("dockerd.pid"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .args(["--containerd-namespace", &namespace])
            .args([
                "--containerd-plugins-namespace",
                &format!("{namespace}-plugins"),
            ])
            .stdin(Stdio::null())
            .stdout(log.into_parts().0)
            .stderr(log_err.into_parts().0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", dockerd.display()));
        let mut daemon = Dockerd {
            child,
            dir: Some(dir),
            socket,
            log_path,
            client_config,
        };
        daemon.wait_ready();
        daemon
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if ping(&self.socket) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "dockerd exited ({status}) before it was ready; its log:\n{}",
                    self.log()
                );
            }
            if started.elapsed() > READY_TIMEOUT {
                panic!(
                    "dockerd did not answer /_ping on {} within {:?}; its log:\n{}",
                    self.socket.display(),
                    READY_TIMEOUT,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `unix:///…/docker.sock`, the value of `DOCKER_HOST` for this instance.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The temp dir holding everything of this instance (removed on drop).
    pub fn root(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), |d| d.path())
    }

    /// The daemon's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's stdout+stderr log.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The log's current contents (empty if unreadable).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A command for Debian's client `/usr/bin/docker` talking to this daemon, with
    /// `DOCKER_BUILDKIT=1` and a private client config dir.
    pub fn docker(&self) -> Command {
        let mut cmd = Command::new(tools::docker_client());
        cmd.env("DOCKER_HOST", self.host())
            .env("DOCKER_BUILDKIT", "1")
            .env("DOCKER_CONFIG", &self.client_config)
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `docker ARGS` and returns its stdout; panics with the command, its
    /// status, stdout and stderr when it fails.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `docker ARGS` and returns its output, whatever the status.
    pub fn output(&self, args: &[&str]) -> Output {
        self.docker()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running docker {args:?}: {e}"))
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: the PID is our own child, not yet reaped (we reap it below).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let Some(dir) = self.dir.take() else { return };
        kill_leftovers(dir.path());
        detach_mounts(dir.path());
        let _ = dir.close();
    }
}

/// `GET /_ping` on the API socket answers `OK` once the daemon is ready.
fn ping(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

/// Kills (by PID) every process whose command line names `dir`: containerd and
/// shims this instance started, should they outlive the daemon.
fn kill_leftovers(dir: &Path) {
    let needle = dir.as_os_str().as_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            // SAFETY: kill has no memory preconditions; the PID runs from our dir.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Detaches every mount at or under `dir`, deepest first.
fn detach_mounts(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        let Ok(c) = std::ffi::CString::new(point.as_os_str().as_bytes()) else {
            continue;
        };
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(value as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
