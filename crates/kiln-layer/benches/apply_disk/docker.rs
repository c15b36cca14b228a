//! The Docker side of `apply_disk`: a dockerd and a docker-registry of the bench's own,
//! and BuildKit's extraction of the layer, timed by BuildKit itself.
//!
//! The one-layer image is pushed to the registry once; every BuildKit run then pulls
//! it into an empty dockerd (`FROM` it, plus a `COPY` of one small file, which needs
//! the base on disk: BuildKit extracts it) and reads BuildKit's own time for the
//! extraction from its plain progress log. `COPY`, not `RUN true`: a layer without
//! `/bin/sh` (the generated one) fails a `RUN` after the extraction. After each run
//! the image and the build cache are removed and the overlay2 dir must be back to
//! what it held before, so the next run extracts again.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DOCKERD: &str = "/usr/sbin/dockerd";
/// Debian's client; a newer `docker` first on PATH may not talk to dockerd 20.10 and
/// may lack the BuildKit client (`DOCKER_BUILDKIT=1`).
const DOCKER: &str = "/usr/bin/docker";
const REGISTRY: &str = "/usr/bin/docker-registry";
/// The tag `docker_archive` gives the image; pushed as `127.0.0.1:PORT/` + this.
pub const BASE: &str = "kiln-bench/disk:latest";
const BUILT: &str = "kiln-bench/bk:latest";

/// System CPU seconds of a process so far, its reaped children's included (stime and
/// cstime from /proc, in clock ticks), and its parent's pid.
fn proc_stat(pid: u32) -> Option<(f64, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    // after the comm: state is field 3, ppid 4, stime 15, cstime 17 (1-based)
    let field = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<f64>().ok());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(((field(15)? + field(17)?) / hz, field(4)? as u32))
}

/// System CPU seconds of `root` and every live descendant (containerd, shims), each
/// with its reaped children: best effort, a child that exits between two readings
/// without being reaped is missed.
pub fn tree_sys_time(root: u32) -> f64 {
    let mut procs: Vec<(u32, f64, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some((sys, ppid)) = proc_stat(pid) {
            procs.push((pid, sys, ppid));
        }
    }
    let mut tree = vec![root];
    let mut total = 0.0;
    while let Some(pid) = tree.pop() {
        for &(p, sys, ppid) in &procs {
            if p == pid {
                total += sys;
            }
            if ppid == pid {
                tree.push(p);
            }
        }
    }
    total
}

/// A free port on 127.0.0.1: bound once to port 0, then released for the server.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// A docker-registry (distribution) of our own on 127.0.0.1, storage in `dir`.
pub struct Registry {
    child: Child,
    pub addr: String,
}

impl Registry {
    pub fn start(dir: &Path) -> Registry {
        assert!(
            Path::new(REGISTRY).exists(),
            "this bench needs {REGISTRY}: apt-get install docker-registry"
        );
        let addr = format!("127.0.0.1:{}", free_port());
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: {addr}, secret: kiln-bench}}\n",
                dir.join("storage").display()
            ),
        )
        .unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting docker-registry");
        let registry = Registry { child, addr };
        let start = Instant::now();
        while !registry.ready() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "docker-registry did not answer GET /v2/ on {} within 30 s",
                registry.addr
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        registry
    }

    fn ready(&self) -> bool {
        let Ok(mut conn) = TcpStream::connect(&self.addr) else {
            return false;
        };
        let request = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr);
        let mut response = String::new();
        conn.write_all(request.as_bytes()).is_ok()
            && conn.read_to_string(&mut response).is_ok()
            && response.starts_with("HTTP/1.")
            && response.split_whitespace().nth(1) == Some("200")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // SAFETY: signalling the registry this bench started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// A dockerd of our own (overlay2, data root on the disk under test).
pub struct Dockerd {
    child: Child,
    host: String,
    data_root: PathBuf,
    exec_root: PathBuf,
}

impl Dockerd {
    pub fn start(data_root: &Path) -> Dockerd {
        assert!(
            Path::new(DOCKERD).exists() && Path::new(DOCKER).exists(),
            "this bench needs Debian's docker.io ({DOCKERD}, {DOCKER}): apt-get install --no-install-recommends docker.io"
        );
        let id = std::process::id();
        let exec_root = PathBuf::from(format!("/run/kiln-bench-dockerd-{id}"));
        let socket = format!("/run/kiln-bench-dockerd-{id}.sock");
        let child = Command::new(DOCKERD)
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--storage-driver=overlay2", "--data-root"])
            .arg(data_root)
            .arg("--exec-root")
            .arg(&exec_root)
            .arg("--pidfile")
            .arg(exec_root.with_extension("pid"))
            .arg("-H")
            .arg(format!("unix://{socket}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting dockerd");
        let d = Dockerd {
            child,
            host: format!("unix://{socket}"),
            data_root: data_root.to_path_buf(),
            exec_root,
        };
        let start = Instant::now();
        while !d.docker(&["version"]).status().unwrap().success() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "dockerd did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    fn docker(&self, args: &[&str]) -> Command {
        let mut c = Command::new(DOCKER);
        c.env("DOCKER_HOST", &self.host)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    /// Runs `docker ARGS`, panicking with its output if it fails; returns the output.
    fn run(&self, args: &[&str]) -> String {
        let out = self
            .docker(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "docker {args:?} failed:\n{text}");
        text
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Entries in overlay2's dir (the layers' dirs and `l`): what a run must leave
    /// behind unchanged.
    fn overlay_entries(&self) -> usize {
        std::fs::read_dir(self.data_root.join("overlay2")).map_or(0, |d| d.count())
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SAFETY: signalling the dockerd this bench started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        // dockerd bind-mounts its data root onto itself and leaves that mount behind
        for dir in [&self.data_root, &self.exec_root] {
            if let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) {
                // SAFETY: a valid path; failing (not mounted) is fine.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        let _ = std::fs::remove_dir_all(&self.data_root);
        let _ = std::fs::remove_dir_all(&self.exec_root);
    }
}

/// One BuildKit run: BuildKit's extraction time, the whole `docker build`, and the
/// system CPU of dockerd's process tree meanwhile.
pub struct BuildKitRun {
    pub extract: f64,
    pub build: f64,
    pub sys: f64,
}

/// The image in the registry, a build context whose Dockerfile starts `FROM` it, and
/// the dockerd that builds it.
pub struct BuildKit<'a> {
    dockerd: &'a Dockerd,
    base: String,
    context: PathBuf,
    /// overlay2 entries with nothing built: what every run must leave.
    empty: usize,
}

impl<'a> BuildKit<'a> {
    /// Pushes the image of `archive` (a docker-archive tagged [`BASE`]) to `registry`
    /// and removes every local copy of it, then writes the build context in `work`.
    pub fn new(
        dockerd: &'a Dockerd,
        registry: &Registry,
        archive: &Path,
        work: &Path,
    ) -> BuildKit<'a> {
        let base = format!("{}/{BASE}", registry.addr);
        dockerd.run(&["load", "-q", "-i", archive.to_str().unwrap()]);
        dockerd.run(&["tag", BASE, &base]);
        dockerd.run(&["push", &base]);
        dockerd.run(&["rmi", BASE, &base]);
        let context = work.join("buildkit-context");
        std::fs::create_dir_all(&context).unwrap();
        std::fs::write(context.join("marker"), "kiln bench\n").unwrap();
        std::fs::write(
            context.join("Dockerfile"),
            format!("FROM {base}\nCOPY marker /kiln-bench-marker\n"),
        )
        .unwrap();
        let empty = dockerd.overlay_entries();
        BuildKit {
            dockerd,
            base,
            context,
            empty,
        }
    }

    /// One build from an empty dockerd; removes what it made before returning.
    pub fn run(&self) -> BuildKitRun {
        let (s0, t0) = (tree_sys_time(self.dockerd.pid()), Instant::now());
        let out = self
            .dockerd
            .docker(&["build", "--network", "host", "--progress=plain"])
            .args(["--no-cache", "-t", BUILT])
            .arg(&self.context)
            .env("DOCKER_BUILDKIT", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let build = t0.elapsed().as_secs_f64();
        let sys = tree_sys_time(self.dockerd.pid()) - s0;
        // the plain progress goes to stderr, the client's own messages to stdout
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "docker build failed:\n{log}");
        let extract = extraction_seconds(&log);
        self.clean();
        BuildKitRun {
            extract,
            build,
            sys,
        }
    }

    /// Removes the built image, the base if it was kept, and the build cache
    /// (`docker builder prune -af` returns once it is gone); the overlay2 dir must
    /// be back to what it held before the run.
    fn clean(&self) {
        self.dockerd.run(&["rmi", BUILT]);
        if self
            .dockerd
            .docker(&["image", "inspect", &self.base])
            .status()
            .unwrap()
            .success()
        {
            self.dockerd.run(&["rmi", &self.base]);
        }
        self.dockerd.run(&["builder", "prune", "-af"]);
        let left = self.dockerd.overlay_entries();
        assert_eq!(
            left, self.empty,
            "after rmi and builder prune, dockerd's overlay2 dir holds {left} entries, not {}: the next run would not extract the layer",
            self.empty
        );
    }
}

/// BuildKit's own time for extracting the base's layers: the sum over the layers of
/// the duration on its final progress line, `#4 extracting sha256:HEX 12.0s done`
/// (BuildKit 0.8; tenths of a second). Panics if the log shows no extraction or a
/// finished extraction without a duration (printed only once it took a while).
fn extraction_seconds(log: &str) -> f64 {
    let mut total = 0.0;
    let mut layers = 0;
    for line in log.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.get(1) != Some(&"extracting") || words.last() != Some(&"done") {
            continue;
        }
        let seconds = words
            .len()
            .checked_sub(2)
            .filter(|&i| i > 2)
            .and_then(|i| words[i].strip_suffix('s'))
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("BuildKit printed no duration for its extraction: {line:?}"));
        total += seconds;
        layers += 1;
    }
    assert!(
        layers > 0,
        "BuildKit's log shows no `extracting ... done`: the layer was not extracted\n{log}"
    );
    total
}
