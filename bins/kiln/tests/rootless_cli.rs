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
use common::text;
use kiln_testkit::rootless::{SubidLine, command_as, give_tree};

const UID: u32 = 65534;
/// The subordinate range this test gives UID.
const LINE: &str = "65534:1400000:65536";

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

#[test]
fn a_rootless_build_keeps_the_image_owners_of_a_non_root_user() {
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
        "FROM scratch\nADD rootfs.tar /\n\
         RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group && mkdir -p /home/app && chown app:app /home/app\n\
         USER app\n\
         RUN touch /home/app/mine && echo \"inside: $(id -u):$(id -g)\"\n",
    )
    .unwrap();
    let kiln = dir.path().join("kiln");
    std::fs::copy(common::kiln(), &kiln).unwrap();
    give_tree(dir.path(), UID);
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
