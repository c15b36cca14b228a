//! A rootless build with a non-root USER, end to end: the test (root, as in
//! CI) gives uid 65534 a subordinate range of its own in /etc/subuid and
//! /etc/subgid (only its own line, removed again even on panic), then runs kiln
//! as that uid with setpriv. kiln runs the build inside a user namespace
//! mapping the range, so the RUN as `USER app` (uid 1000) runs as 1000 and the
//! layers record 1000:1000, not the on-disk subordinate ids.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

mod common;
use common::{processes_with, signal_and_wait, text, wait_for_process};
use kiln_testkit::rootless::{SubidLine, command_as, give_tree};

const UID: u32 = 65534;
/// The subordinate range this test gives UID.
const LINE: &str = "65534:1400000:65536";

/// The tests share UID's line in /etc/subuid and /etc/subgid: one at a time.
static SUBIDS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `(owner, path)` of every entry of a gzip layer, as GNU tar lists them.
fn owners(blob: &Path) -> Vec<(String, String)> {
    let out = Command::new("tar")
        .args(["-tvzf"])
        .arg(blob)
        .arg("--numeric-owner")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[1].to_string(), f[f.len() - 1].to_string())
        })
        .collect()
}

/// A temp dir given to the unprivileged user (checked to be possible: root,
/// newuidmap/newgidmap), holding a context whose Dockerfile is busybox's rootfs
/// plus `steps`, and a copy of kiln named `kiln_name`.
fn rootless_build(
    steps: &str,
    kiln_name: &str,
) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    // SAFETY: trivial getter.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "needs root to set up the unprivileged user (CI runs as root)"
    );
    for tool in ["/usr/bin/newuidmap", "/usr/bin/newgidmap"] {
        assert!(
            Path::new(tool).exists(),
            "needs {tool}: install with .ci/install-deps"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("rootfs.tar"), kiln_testkit::busybox::rootfs_tar()).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM scratch\nADD rootfs.tar /\n{steps}"),
    )
    .unwrap();
    let kiln = dir.path().join(kiln_name);
    std::fs::copy(common::kiln(), &kiln).unwrap();
    give_tree(dir.path(), UID);
    (dir, ctx, kiln)
}

#[test]
fn a_rootless_build_keeps_the_image_owners_of_a_non_root_user() {
    let (dir, ctx, kiln) = rootless_build(
        "RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group && mkdir -p /home/app && chown app:app /home/app\n\
         USER app\n\
         RUN touch /home/app/mine && echo \"inside: $(id -u):$(id -g)\"\n",
        "kiln",
    );
    let _one = SUBIDS.lock().unwrap_or_else(|p| p.into_inner());
    let _line = SubidLine::add(LINE);
    let layout = dir.path().join("out");
    let out = command_as(UID, &kiln)
        .args(["build", "-c"])
        .arg(&ctx)
        .arg("--no-push")
        .arg(format!("--oci-layout-path={}", layout.display()))
        .arg(format!(
            "--kaniko-dir={}",
            dir.path().join("work").display()
        ))
        .env("HOME", dir.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("inside: 1000:1000"), "{log}");

    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{manifest}");
    let last = owners(&blob(layers[2]["digest"].as_str().unwrap()));
    assert!(
        last.contains(&("1000/1000".to_string(), "home/app/mine".to_string())),
        "{last:?}"
    );
    let chowned = owners(&blob(layers[1]["digest"].as_str().unwrap()));
    assert!(
        chowned.contains(&("1000/1000".to_string(), "home/app/".to_string())),
        "{chowned:?}"
    );
    // kiln's outputs belong to the caller, and its build dir is gone.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(layout.join("index.json")).unwrap().uid(),
        UID
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("work"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with("build-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// SIGKILLs, when a test ends (passed or not), every process still running the
/// kiln binary at this path, so that a failure leaves nothing behind.
struct KillLeftovers(std::path::PathBuf);

impl Drop for KillLeftovers {
    fn drop(&mut self) {
        for pid in processes_with(self.0.as_os_str().as_encoded_bytes()) {
            // SAFETY: the processes of this test's own copy of kiln.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// A CI runner cancelling a rootless job signals the process it started: the
/// parent, which re-ran kiln in a user namespace and waits for it. The signal
/// must reach the child, which stops the build and cleans up (the RUN killed,
/// the build dir removed), and the parent must exit 128+N only after that.
/// Before, SIGTERM killed the parent on the spot and the child built on.
fn rootless_stopped_during_run(signo: i32, seconds: u32) {
    use std::time::{Duration, Instant};
    // A kiln copy of its own: its path tells this build's kiln processes from others'.
    let (dir, ctx, kiln) = rootless_build(&format!("RUN exec sleep {seconds}\n"), "kiln-stopped");
    let work = dir.path().join("work");
    // A file, not a pipe: a child that outlived the parent would hold a pipe open.
    let log = dir.path().join("stderr.log");
    let _one = SUBIDS.lock().unwrap_or_else(|p| p.into_inner());
    let _line = SubidLine::add(LINE);
    let mut parent = command_as(UID, &kiln)
        .args(["build", "-c"])
        .arg(&ctx)
        .arg("--no-push")
        .arg(format!("--kaniko-dir={}", work.display()))
        .env("HOME", dir.path())
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _reaper = KillLeftovers(kiln.clone());
    let needle = format!("sleep\0{seconds}\0");
    wait_for_process(&mut parent, needle.as_bytes());
    // The build runs in the re-run child (it carries the marker), not in the parent.
    let rerun = processes_with(kiln.as_os_str().as_encoded_bytes())
        .into_iter()
        .filter(|&pid| pid != parent.id())
        .any(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|&b| b == 0)
                    .any(|v| v.starts_with(kiln_sandbox::ROOTLESS_NAMESPACE_ENV.as_bytes()))
            })
        });
    assert!(rerun, "kiln did not re-run itself in a user namespace");
    // setpriv exec'd kiln: the child's pid is kiln's.
    let (status, took) = signal_and_wait(&mut parent, signo, Duration::from_secs(15));
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(128 + signo), "{status:?}\n{stderr}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(stderr.contains(&format!("signal {signo}")), "{stderr}");
    // When the parent is gone, so is the RUN's process.
    assert!(
        processes_with(needle.as_bytes()).is_empty(),
        "the RUN's process is alive"
    );
    // The build dir goes to a background remover (a fork of the child); give it a
    // moment, then no kiln process of this build is left.
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = std::fs::read_dir(&work)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("build-"))
            .collect();
        let alive = processes_with(kiln.as_os_str().as_encoded_bytes());
        if left.is_empty() && alive.is_empty() {
            break;
        }
        assert!(
            Instant::now() < until,
            "left in {}: {left:?}; kiln processes alive: {alive:?}",
            work.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_to_a_rootless_build_reaches_the_rerun_child_and_exits_143() {
    rootless_stopped_during_run(libc::SIGTERM, 876);
}

#[test]
fn sigint_to_a_rootless_build_reaches_the_rerun_child_and_exits_130() {
    rootless_stopped_during_run(libc::SIGINT, 877);
}
