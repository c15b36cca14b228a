//! Test support: a busybox rootfs, tree listings, process scans, a collecting sink.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_sandbox::{RunSpec, Stream};

pub const BUSYBOX: &str = "/usr/bin/busybox";

/// Panics unless the test runs as root with busybox-static installed.
pub fn require_root_and_busybox() {
    // SAFETY: trivial getter.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "these tests need root (they create namespaces and mounts): run them as root as CI does"
    );
    assert!(
        Path::new(BUSYBOX).exists(),
        "needs {BUSYBOX} (busybox-static): install with .ci/install-deps"
    );
}

/// Builds a busybox rootfs in `root`: applet symlinks, /etc/passwd and /etc/group with root
/// and `user` (uid 1000, also in group wheel), /root, /home/user, /tmp, /etc/motd.
pub fn busybox_rootfs(root: &Path) {
    require_root_and_busybox();
    for (dir, mode) in [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("etc", 0o755),
        ("root", 0o700),
        ("home/user", 0o755),
        ("tmp", 0o1777),
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
        std::fs::set_permissions(root.join(dir), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    let list = Command::new(BUSYBOX).arg("--list-full").output().unwrap();
    assert!(list.status.success(), "busybox --list-full failed");
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        let link = root.join(applet);
        if link.exists() || applet == "bin/busybox" {
            continue;
        }
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("/bin/busybox", &link).unwrap();
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\nwheel:x:10:user\nuser:x:1000:\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/motd"), "welcome\n").unwrap();
    std::os::unix::fs::chown(root.join("home/user"), Some(1000), Some(1000)).unwrap();
}

/// `/bin/sh -c script` in `root`.
pub fn sh(root: &Path, script: &str) -> RunSpec {
    RunSpec::new(root, ["/bin/sh", "-c", script])
}

/// Collected output lines.
#[derive(Default, Debug)]
pub struct Collected {
    pub lines: Vec<(Stream, String)>,
}

impl Collected {
    pub fn sink(&mut self) -> impl FnMut(Stream, &[u8]) + '_ {
        |s, l| {
            self.lines
                .push((s, String::from_utf8_lossy(l).into_owned()))
        }
    }

    pub fn stdout(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(s, _)| *s == Stream::Stdout)
            .map(|(_, l)| l.as_str())
            .collect()
    }

    pub fn stderr(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(s, _)| *s == Stream::Stderr)
            .map(|(_, l)| l.as_str())
            .collect()
    }
}

/// One entry of a tree listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// File content, symlink target, or empty.
    pub content: Vec<u8>,
    pub nlink: u64,
    /// Modification time (seconds, nanoseconds); only compared where asked.
    pub mtime: (i64, i64),
}

/// Every entry under `root` (keyed by path relative to it, "" for the root).
pub fn tree(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, path: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    let ft = meta.file_type();
    let (kind, content) = if ft.is_dir() {
        ("dir", Vec::new())
    } else if ft.is_symlink() {
        (
            "symlink",
            std::os::unix::ffi::OsStrExt::as_bytes(std::fs::read_link(path).unwrap().as_os_str())
                .to_vec(),
        )
    } else if ft.is_file() {
        ("file", std::fs::read(path).unwrap())
    } else {
        ("other", Vec::new())
    };
    let rel = path.strip_prefix(root).unwrap().to_owned();
    out.insert(
        rel,
        Entry {
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            content,
            nlink: if ft.is_dir() { 0 } else { meta.nlink() },
            mtime: (meta.mtime(), meta.mtime_nsec()),
        },
    );
    if ft.is_dir() {
        let mut children: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        children.sort();
        for c in children {
            walk(root, &c, out);
        }
    }
}

/// Pids of processes (visible in this pid namespace) whose argv contains `arg`.
pub fn processes_with_arg(arg: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if cmdline.split(|&b| b == 0).any(|a| a == arg.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

/// One RUN step of the mode-equivalence scenario.
pub struct ScenarioStep {
    pub user: &'static str,
    pub cwd: &'static str,
    pub env: &'static [(&'static str, &'static str)],
    pub script: &'static str,
}

/// Argument of the `sleep` a scenario step leaves behind.
pub const LEFTOVER_SLEEP: &str = "98765";

/// Steps run in chroot mode and in in-place mode; the resulting trees must be equal.
pub const SCENARIO: &[ScenarioStep] = &[
    ScenarioStep {
        user: "",
        cwd: "/",
        env: &[],
        script: "echo hello > /root/a.txt && mkdir -p /opt/x && chmod 750 /opt/x && chown 1000:10 /opt/x",
    },
    ScenarioStep {
        user: "user",
        cwd: "/home/user/work",
        env: &[("GREETING", "hi there")],
        script: "echo \"$GREETING $HOME $PATH\" > out.txt; id > id.txt; ln -s out.txt link",
    },
    ScenarioStep {
        user: "1000:10",
        cwd: "/tmp",
        env: &[],
        script: "touch t; umask > umask.txt; mkdir -p d/e; echo x > d/e/f; chmod 4755 d/e/f",
    },
    ScenarioStep {
        user: "",
        cwd: "/",
        env: &[],
        script: "rm /etc/motd; mv /root/a.txt /root/b.txt; ln /root/b.txt /root/hard; sleep 98765 & echo started",
    },
    ScenarioStep {
        user: "",
        cwd: "/srv/new",
        env: &[("B", "2"), ("A", "1")],
        script: "pwd > /srv/pwd.txt; env | sort > /srv/env.txt; mknod /srv/fifo p; touch -d '2001-02-03 04:05:06' /srv/old",
    },
];

/// Runs the scenario with `sandbox` in `root`; returns the output lines.
pub fn run_scenario(sandbox: &kiln_sandbox::Sandbox, root: &Path) -> Vec<String> {
    let mut all = Vec::new();
    for step in SCENARIO {
        let mut spec = sh(root, step.script);
        spec.user = step.user.to_owned();
        spec.cwd = PathBuf::from(step.cwd);
        spec.env = step
            .env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut out = Collected::default();
        sandbox
            .run(&spec, &mut out.sink())
            .unwrap_or_else(|e| panic!("step {:?}: {e}", step.script));
        assert!(
            processes_with_arg(LEFTOVER_SLEEP).is_empty(),
            "a process the step left behind survived: {:?}",
            step.script
        );
        all.extend(out.lines.into_iter().map(|(_, l)| l));
    }
    all
}

pub fn argv(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// The paths whose entries differ between two listings (`with_mtime`: compare mtimes too),
/// each with a short description of the difference.
pub fn tree_diff(
    a: &BTreeMap<PathBuf, Entry>,
    b: &BTreeMap<PathBuf, Entry>,
    with_mtime: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for path in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
        let (x, y) = (a.get(path), b.get(path));
        let same = match (x, y) {
            (Some(x), Some(y)) => {
                let mut x = x.clone();
                if !with_mtime {
                    x.mtime = y.mtime;
                }
                x == *y
            }
            _ => false,
        };
        if !same {
            let show = |e: Option<&Entry>| {
                e.map_or("absent".to_owned(), |e| {
                    format!(
                        "{} {:o} {}:{} nlink={} len={} mtime={:?}",
                        e.kind,
                        e.mode,
                        e.uid,
                        e.gid,
                        e.nlink,
                        e.content.len(),
                        e.mtime
                    )
                })
            };
            out.push(format!("{}: {} -> {}", path.display(), show(x), show(y)));
        }
    }
    out
}
