//! `--tar-path` writes a `docker save` archive that `podman load` accepts:
//! podman (vfs storage in a private root, no systemd, no daemon) loads it under
//! the destination's name, with kiln's config and layers. (Not `podman run`: in
//! this test bed, itself a container, runc may not set the rlimits podman asks for.)

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::{Fixture, run_tokio, tool};

/// `podman` with its storage under `dir` (vfs), file events and cgroupfs, so it needs
/// neither systemd nor a session bus.
fn podman(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(tool("/usr/bin/podman"))
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("runroot"))
        .args([
            "--storage-driver",
            "vfs",
            "--events-backend",
            "file",
            "--cgroup-manager",
            "cgroupfs",
        ])
        .args(args)
        .env("TMPDIR", dir)
        .output()
        .expect("running podman");
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn podman_loads_the_tar_path_archive() {
    let fx = Fixture::new(
        concat!(
            "FROM scratch\n",
            "ADD rootfs.tar /\n",
            "COPY hello.txt /hello.txt\n",
            "ENV GREETING=hi\n",
            "LABEL org.example.built-by=kiln\n",
            "CMD [\"cat\", \"/hello.txt\"]\n",
        ),
        &[("hello.txt", "hello from kiln\n")],
    );
    let tar = fx.work.path().join("image.tar");
    let mut options = fx.options();
    options.tar_path = Some(tar.clone());
    options.destinations = vec!["example.invalid/kiln/podman:v1".into()];
    let outcome = run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();

    let storage = tempfile::tempdir().unwrap();
    let loaded = podman(storage.path(), &["load", "-i", tar.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&loaded.stdout);
    assert!(
        said.contains("example.invalid/kiln/podman:v1"),
        "podman load said: {said}"
    );

    let inspect = podman(
        storage.path(),
        &["image", "inspect", "example.invalid/kiln/podman:v1"],
    );
    let images: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let image = &images[0];
    let env: Vec<&str> = image["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"GREETING=hi"), "{env:?}");
    assert_eq!(
        image["Config"]["Cmd"],
        serde_json::json!(["cat", "/hello.txt"])
    );
    assert_eq!(image["Config"]["Labels"]["org.example.built-by"], "kiln");
    let diff_ids: Vec<&str> = image["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let built: Vec<&str> = outcome.layers.iter().map(|l| l.diff_id.as_str()).collect();
    assert_eq!(diff_ids, built);
}
