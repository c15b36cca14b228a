//! The ignore list: kaniko's defaults, --ignore-path, mount points from mountinfo (with
//! octal escapes), and a real bind mount inside a walked tree.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use kiln_snapshot::{IgnoreList, SnapshotMode, WalkSnapshotter, mountinfo};

/// Shaped like a CI runner's /proc/self/mountinfo, with a space and a backslash in names.
const MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw
24 22 0:5 / /dev rw,nosuid shared:3 - devtmpfs udev rw,size=4096k
40 22 254:0 /builds /builds/my\\040group/project rw,relatime - ext4 /dev/vda rw
41 22 0:40 / /run/secrets rw - tmpfs tmpfs rw
42 22 0:41 / /var/lib/odd\\134name ro - tmpfs tmpfs ro
43 22 0:42 / /work/rootfs/mnt/cache rw - tmpfs tmpfs rw
garbage line
";

#[test]
fn mountinfo_mount_points_are_unescaped() {
    let points = mountinfo::mount_points(MOUNTINFO);
    let want: Vec<&Path> = [
        "/",
        "/proc",
        "/dev",
        "/builds/my group/project",
        "/run/secrets",
        "/var/lib/odd\\name",
        "/work/rootfs/mnt/cache",
    ]
    .iter()
    .map(Path::new)
    .collect();
    assert_eq!(points, want);
}

#[test]
fn mount_points_are_ignored_relative_to_the_snapshotted_root() {
    let mut in_place = IgnoreList::new();
    assert_eq!(
        in_place
            .add_mount_points(MOUNTINFO, Path::new("/"))
            .unwrap(),
        6
    );
    assert!(in_place.is_ignored(Path::new("builds/my group/project/src/main.rs")));
    assert!(in_place.is_ignored(Path::new("run/secrets")));
    assert!(in_place.is_ignored(Path::new("var/lib/odd\\name")));
    assert!(!in_place.is_ignored(Path::new("builds/my group")));
    assert!(!in_place.is_ignored(Path::new("var/lib")));

    let mut chroot = IgnoreList::new();
    assert_eq!(
        chroot
            .add_mount_points(MOUNTINFO, Path::new("/work/rootfs"))
            .unwrap(),
        1
    );
    assert_eq!(chroot.paths().collect::<Vec<_>>(), [Path::new("mnt/cache")]);
}

#[test]
fn kaniko_defaults_and_user_paths() {
    let mut list = IgnoreList::kaniko_defaults(Path::new("/kaniko"), true).unwrap();
    for p in [
        "proc/1/status",
        "sys",
        "dev/null",
        "kaniko/executor",
        "etc/mtab",
        "var/run/docker.sock",
    ] {
        assert!(list.is_ignored(Path::new(p)), "{p}");
    }
    for p in ["etc", "var", "run", "kanikox", "etc/mtab2"] {
        assert!(!list.is_ignored(Path::new(p)), "{p}");
    }
    list.add("/etc/resolv.conf").unwrap();
    list.add("./opt//cache/").unwrap();
    assert!(list.is_ignored(Path::new("etc/resolv.conf")));
    assert!(list.is_ignored(Path::new("opt/cache/x")));

    let custom = IgnoreList::kaniko_defaults(Path::new("/workspace/kiln"), false).unwrap();
    assert!(custom.is_ignored(Path::new("workspace/kiln/bin")));
    assert!(!custom.is_ignored(Path::new("kaniko")));
    assert!(!custom.is_ignored(Path::new("var/run/x")));

    assert!(IgnoreList::new().add("/a/../b").is_err());
    assert!(IgnoreList::new().add("/").is_err());
}

/// Unmounts on drop (the test's own mount, by path).
struct Unmount<'a>(&'a Path);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn walk_never_captures_a_mount_point_or_an_added_path() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    build_fixture(&root);
    let outside = tmp.path().join("workspace");
    std::fs::create_dir_all(root.join("builds/project")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let st = Command::new("mount")
        .arg("--bind")
        .arg(&outside)
        .arg(root.join("builds/project"))
        .status()
        .unwrap();
    assert!(st.success(), "bind mount failed");
    let _guard = Unmount(&root.join("builds/project"));
    normalize_recent_mtimes(&root, FIXTURE_TIME);

    let mut ignore = IgnoreList::kaniko_defaults(Path::new("/kaniko"), true).unwrap();
    let own = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(ignore.add_mount_points(&own, &root).unwrap() >= 1);
    ignore.add("/etc/resolv.conf").unwrap();
    let mut walk = WalkSnapshotter::new(&root, SnapshotMode::Full, ignore).unwrap();

    write(&root, "builds/project/artifact", "built\n");
    write(&root, "etc/resolv.conf", "nameserver 127.0.0.1\n");
    write(&root, "proc/1/status", "x\n");
    write(&root, "etc/captured", "yes\n");
    normalize_recent_mtimes(&root, 1_600_000_000);
    let changes = walk.diff().unwrap();
    assert_eq!(
        paths_and_kinds(changes.entries()),
        ["etc directory", "etc/captured file"]
    );
}
