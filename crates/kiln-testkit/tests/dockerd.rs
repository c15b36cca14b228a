//! The dockerd harness: two private engines run side by side, each pulls from and
//! builds against a plain-HTTP registry on 127.0.0.1 with BuildKit, runs containers,
//! and leaves nothing behind when dropped (no process, no mount, no dir).

use kiln_testkit::{Dockerd, FixtureImage, Registry};
use std::path::PathBuf;

#[test]
fn two_engines_pull_build_run_and_clean_up() {
    let registry = Registry::start_plain();
    FixtureImage::busybox()
        .push(&registry, "fixtures/busybox:1", None)
        .expect("pushing the busybox fixture");
    let base = format!("{}/fixtures/busybox:1", registry.host_port());
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(Dockerd::start);
        let b = s.spawn(Dockerd::start);
        (a.join().expect("engine a"), b.join().expect("engine b"))
    });
    assert_ne!(a.root(), b.root());
    for (name, engine) in [("a", &a), ("b", &b)] {
        let root = engine.root().display().to_string();
        let info = engine.run_ok(&["info", "--format", "{{.DockerRootDir}} {{.Driver}}"]);
        assert_eq!(info.trim(), format!("{root}/data overlay2"));
        let said = engine.run_ok(&["run", "--rm", "--network", "none", &base, "echo", name]);
        assert_eq!(said, format!("{name}\n"));
    }

    // BuildKit (not the legacy builder: `RUN --mount` parses only with BuildKit)
    // builds on the registry's image and pushes back to it; the other engine pulls it.
    let ctx = tempfile::tempdir().expect("context dir");
    fs_err::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {base}\nRUN --mount=type=tmpfs,target=/scratch echo built > /built\nCMD [\"cat\", \"/built\"]\n"
        ),
    )
    .expect("writing the Dockerfile");
    let tag = format!("{}/built/by-docker:1", registry.host_port());
    let ctx_path = ctx.path().to_str().expect("utf-8 temp path");
    a.run_ok(&["build", "--network", "host", "-t", &tag, ctx_path]);
    a.run_ok(&["push", &tag]);
    let ran = b.run_ok(&["run", "--rm", "--network", "none", &tag]);
    assert_eq!(ran, "built\n");

    let roots: Vec<PathBuf> = [&a, &b].iter().map(|e| e.root().to_path_buf()).collect();
    let pids = [a.pid(), b.pid()];
    drop(a);
    drop(b);
    for (root, pid) in roots.iter().zip(pids) {
        assert!(!root.exists(), "{} left behind", root.display());
        assert!(
            !PathBuf::from(format!("/proc/{pid}")).exists(),
            "dockerd {pid} still running"
        );
        let mounts = fs_err::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let root = root.display().to_string();
        assert!(!mounts.contains(&root), "mounts left under {root}");
        for entry in fs_err::read_dir("/proc").expect("/proc").flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&cmdline).contains(&root),
                "process {:?} of {root} still running",
                entry.file_name()
            );
        }
    }
}
