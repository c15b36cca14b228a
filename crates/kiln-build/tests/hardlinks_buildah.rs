//! Hard links across layers, kiln against buildah: a RUN links new names to a file of
//! the base image, to a file a COPY brought and to a file an earlier RUN made. Both
//! images are unpacked with umoci and compared file by file, hard link groups
//! included; each pair must also be one group in kiln's image.
//!
//! buildah runs with its overlay storage driver, whose layers come from overlayfs as
//! Docker's do (the old name is copied up next to the new link). Its vfs driver
//! compares trees and captures only the new name, so the image gets two separate
//! files there (buildah 1.28, measured): that driver is not the reference for links.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use support::{Fixture, run_tokio, umoci_unpack};

const DOCKERFILE: &str = "FROM BASE_IMAGE
COPY copied.txt /opt/copied.txt
RUN mkdir -p /srv/data && echo made > /srv/data/made.txt
RUN ln /etc/passwd /etc/passwd.link \
 && ln /opt/copied.txt /usr/copied.link \
 && ln /srv/data/made.txt /srv/made.link
";

/// The names each of which must share its inode with the other in the image.
const GROUPS: [[&str; 2]; 3] = [
    ["/etc/passwd", "/etc/passwd.link"],
    ["/opt/copied.txt", "/usr/copied.link"],
    ["/srv/data/made.txt", "/srv/made.link"],
];

/// Path -> type, mode, owner, content digest or link target, and for a file with
/// several names its hard link group (all its names in the tree).
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut files = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for e in fs_err::read_dir(root.join(&rel)).unwrap() {
            let rel = rel.join(e.unwrap().file_name());
            let m = fs_err::symlink_metadata(root.join(&rel)).unwrap();
            if m.is_dir() {
                todo.push(rel.clone());
            }
            files.push((format!("/{}", rel.display()), m));
        }
    }
    let mut names: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    for (path, m) in &files {
        if m.is_file() {
            names
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(path.clone());
        }
    }
    files
        .into_iter()
        .map(|(path, m)| {
            let full = root.join(path.trim_start_matches('/'));
            let what = if m.is_dir() {
                "dir".to_string()
            } else if m.is_symlink() {
                format!("symlink -> {}", fs_err::read_link(&full).unwrap().display())
            } else if m.is_file() {
                let data = fs_err::read(&full).unwrap();
                let mut group = names[&(m.dev(), m.ino())].clone();
                group.sort();
                format!(
                    "file {} {} group {group:?}",
                    data.len(),
                    kiln_oci::Digest::sha256_of(&data)
                )
            } else {
                "special".to_string()
            };
            let line = format!(
                "{what} mode={:o} owner={}:{}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid()
            );
            (path, line)
        })
        .collect()
}

/// buildah's own artifacts (TESTBED.md): empty files and directories it leaves.
fn buildah_artifact(path: &str, line: &str) -> bool {
    matches!(
        path,
        "/etc/hostname" | "/etc/hosts" | "/etc/resolv.conf" | "/dev" | "/proc" | "/sys" | "/run"
    ) && (line.starts_with("dir") || line.starts_with("file 0 "))
}

#[test]
fn links_to_files_of_earlier_layers_are_one_group_as_with_buildah_overlay() {
    let registry = kiln_testkit::Registry::start_plain();
    kiln_testkit::FixtureImage::busybox()
        .push(&registry, "fixtures/busybox:1", None)
        .unwrap();
    let base = format!("{}/fixtures/busybox:1", registry.host_port());
    let fx = Fixture::new(
        &DOCKERFILE.replace("BASE_IMAGE", &base),
        &[("copied.txt", "copied\n")],
    );

    // kiln, one layer per step.
    let (mut options, kiln_layout) = fx.layout_options();
    options.registry.insecure_pull = true;
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();

    // buildah with the overlay driver.
    let root = fx.work.path().join("buildah");
    let buildah = |args: &[&str]| {
        support::buildah(&root, "overlay", args);
    };
    let buildah_layout = fx.work.path().join("buildah-layout");
    let context = fx.path().display().to_string();
    buildah(&[
        "bud",
        "--isolation",
        "chroot",
        // A layer per step, so links are made across layers as in kiln's image.
        "--layers=true",
        "--format",
        "oci",
        "--tls-verify=false",
        "-f",
        &format!("{context}/Dockerfile"),
        "-t",
        "localhost/hardlinks:1",
        &context,
    ]);
    buildah(&[
        "push",
        "localhost/hardlinks:1",
        &format!("oci:{}:latest", buildah_layout.display()),
    ]);
    // Unmounts and removes buildah's overlay storage before the temp dir goes.
    buildah(&["rmi", "--all", "--force"]);

    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    // The same paths are filtered on both sides (the base has /dev, /proc and /sys).
    let unpacked = |layout: &Path, into: &Path| -> BTreeMap<String, String> {
        tree(&umoci_unpack(layout, "latest", into).join("rootfs"))
            .into_iter()
            .filter(|(p, l)| !buildah_artifact(p, l))
            .collect()
    };
    let kiln_tree = unpacked(&kiln_layout, a.path());
    let buildah_tree = unpacked(&buildah_layout, b.path());

    for [old, new] in GROUPS {
        let want = format!("group [{old:?}, {new:?}]");
        for name in [old, new] {
            let line = kiln_tree.get(name).map_or("", String::as_str);
            assert!(
                line.contains(&want),
                "{name} in kiln's image: want {want}, got {line:?}"
            );
        }
    }
    let mut differences = Vec::new();
    for (path, theirs) in &buildah_tree {
        match kiln_tree.get(path) {
            Some(ours) if ours == theirs => {}
            Some(ours) => differences.push(format!("{path}: kiln {ours} / buildah {theirs}")),
            None => differences.push(format!("{path}: only in buildah ({theirs})")),
        }
    }
    for (path, ours) in &kiln_tree {
        if !buildah_tree.contains_key(path) {
            differences.push(format!("{path}: only in kiln ({ours})"));
        }
    }
    assert!(
        differences.is_empty(),
        "file trees differ:\n{}",
        differences.join("\n")
    );
}
