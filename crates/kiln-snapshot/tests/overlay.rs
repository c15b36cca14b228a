//! Overlay backend lifecycle: fallback to walk, refusal reasons, abandoned steps, and
//! mounting inside an unprivileged user namespace (user.overlay.* xattrs).

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;
use kiln_snapshot::{
    Backend, BackendChoice, Error, IgnoreList, OverlaySnapshotter, SnapshotMode, SnapshotOptions,
    Snapshotter,
};

fn options(backend: BackendChoice, scratch: &Path) -> SnapshotOptions {
    SnapshotOptions {
        mode: SnapshotMode::Full,
        ignore: IgnoreList::new(),
        backend,
        scratch: Some(scratch.to_path_buf()),
        overlay_over_root: false,
    }
}

/// The fixture tree in a temp dir and an overlay snapshotter over it (scratch beside
/// it); needs root.
fn overlay_on_fixture() -> (tempfile::TempDir, std::path::PathBuf, OverlaySnapshotter) {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    build_fixture(&root);
    let overlay = OverlaySnapshotter::new(
        &root,
        tmp.path().join("scratch"),
        SnapshotMode::Full,
        IgnoreList::new(),
    )
    .unwrap();
    (tmp, root, overlay)
}

#[test]
fn auto_falls_back_to_walk_when_overlay_cannot_be_used() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    build_fixture(&root);
    // /dev/shm is another filesystem: changes could not be moved into the rootfs by rename.
    let other_fs = tempfile::tempdir_in("/dev/shm").unwrap();
    let mut snap = Snapshotter::new(&root, options(BackendChoice::Auto, other_fs.path())).unwrap();
    assert_eq!(snap.backend(), Backend::Walk);
    let step = snap.begin().unwrap();
    assert_eq!(step.root(), root);
    write(step.root(), "etc/new", "n\n");
    normalize_recent_mtimes(&root, 1_600_000_000);
    assert_eq!(
        paths_and_kinds(step.finish().unwrap().entries()),
        ["etc directory", "etc/new file"]
    );

    let same_fs = tmp.path().join("scratch");
    let snap = Snapshotter::new(&root, options(BackendChoice::Auto, &same_fs)).unwrap();
    assert_eq!(snap.backend(), Backend::Overlay);
}

#[test]
fn overlay_refuses_unusable_scratch_dirs_with_a_reason() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    build_fixture(&root);
    let inside = OverlaySnapshotter::new(
        &root,
        root.join("scratch"),
        SnapshotMode::Full,
        IgnoreList::new(),
    );
    match inside {
        Err(Error::OverlayUnavailable { reason, .. }) => {
            assert!(reason.contains("inside the rootfs"), "{reason}")
        }
        other => panic!("expected OverlayUnavailable, got {other:?}"),
    }
    let comma = tmp.path().join("a,b");
    let r = OverlaySnapshotter::new(&root, &comma, SnapshotMode::Full, IgnoreList::new());
    match r {
        Err(Error::OverlayUnavailable { reason, .. }) => {
            assert!(reason.contains("','"), "{reason}")
        }
        other => panic!("expected OverlayUnavailable, got {other:?}"),
    }
}

#[test]
fn abandoned_overlay_step_unmounts_and_leaves_the_rootfs_untouched() {
    let (_tmp, root, mut overlay) = overlay_on_fixture();
    let before = tree_state(&root);
    {
        let step = overlay.begin().unwrap();
        let merged = step.merged().to_path_buf();
        write(&merged, "etc/discarded", "x\n");
        fs::remove_dir_all(merged.join("data")).unwrap();
        assert!(
            fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .contains(merged.to_str().unwrap())
        );
        drop(step);
        assert!(
            !fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .contains(merged.to_str().unwrap())
        );
    }
    assert_eq!(tree_state(&root), before);
    // The next step starts clean.
    let step = overlay.begin().unwrap();
    write(step.merged(), "etc/kept", "k\n");
    normalize_recent_mtimes(step.merged(), 1_600_000_000);
    assert_eq!(
        paths_and_kinds(step.finish().unwrap().entries()),
        ["etc directory", "etc/kept file"]
    );
    assert_eq!(fs::read_to_string(root.join("etc/kept")).unwrap(), "k\n");
}

/// Linux's (major, minor) from `uname -r`.
fn kernel_version() -> (u32, u32) {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release.trim().split(['.', '-']);
    let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (next(), next())
}

/// A step's overlay is `volatile` where the kernel knows the option (5.10 and later):
/// without it every unmount syncs the whole disk the build dir is on. Two steps in a
/// row work (the kernel's leftover in the work dir is cleared between them).
#[test]
fn step_overlays_are_volatile_where_the_kernel_allows() {
    let (_tmp, _root, mut overlay) = overlay_on_fixture();
    let expect_volatile = kernel_version() >= (5, 10);
    for name in ["one", "two"] {
        let step = overlay.begin().unwrap();
        let merged = step.merged().to_str().unwrap().to_owned();
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = mountinfo
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(merged.as_str()))
            .unwrap_or_else(|| panic!("{merged} not mounted:\n{mountinfo}"));
        assert_eq!(
            line.contains("volatile"),
            expect_volatile,
            "kernel {:?}, mount: {line}",
            kernel_version()
        );
        write(step.merged(), &format!("etc/{name}"), "x\n");
        normalize_recent_mtimes(step.merged(), 1_600_000_000);
        let changes = step.finish().unwrap();
        assert!(
            paths_and_kinds(changes.entries()).contains(&format!("etc/{name} file")),
            "step {name}"
        );
    }
}

const USERNS_CHILD: &str = "KILN_SNAPSHOT_USERNS_CHILD";

/// Runs itself again in a new user + mount namespace (`unshare -Urm`), where overlayfs
/// marks opaque directories with `user.overlay.opaque`; both backends must agree there.
#[test]
fn overlay_in_a_user_namespace_matches_walk() {
    if std::env::var_os(USERNS_CHILD).is_some() {
        return userns_child();
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount"])
        .arg(exe)
        .args([
            "--exact",
            "overlay_in_a_user_namespace_matches_walk",
            "--nocapture",
        ])
        .env(USERNS_CHILD, "1")
        .output()
        .expect("needs unshare (util-linux): install with .ci/install-deps");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child in user namespace failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn userns_child() {
    let uid_map = fs::read_to_string("/proc/self/uid_map").unwrap();
    assert!(
        !uid_map.contains("4294967295"),
        "not in a user namespace: {uid_map}"
    );
    let mut results = Vec::new();
    for backend in [BackendChoice::Walk, BackendChoice::Overlay] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rootfs");
        build_fixture(&root);
        let mut snap =
            Snapshotter::new(&root, options(backend, &tmp.path().join("scratch"))).unwrap();
        let step = snap.begin().unwrap();
        let r = step.root().to_path_buf();
        write(&r, "etc/new", "n\n");
        fs::remove_file(r.join("etc/gone")).unwrap();
        fs::remove_dir_all(r.join("var/lib/x")).unwrap();
        write(&r, "var/lib/x/three", "3\n");
        normalize_recent_mtimes(&r, 1_600_000_000);
        let changes = step.finish().unwrap();
        let described = describe(changes.entries());
        assert!(
            described.iter().all(|l| !l.contains("overlay.")),
            "overlay xattrs leaked: {described:?}"
        );
        results.push((
            paths_and_kinds(changes.entries()),
            tar_bytes(changes.entries()),
            tree_state(&root),
        ));
    }
    assert_eq!(
        results[1].0,
        [
            "etc directory",
            "etc/.wh.gone whiteout",
            "etc/new file",
            "var directory",
            "var/lib directory",
            "var/lib/x directory",
            "var/lib/x/.wh..wh..opq opaque-dir marker",
            "var/lib/x/three file",
        ]
    );
    assert!(
        results[0] == results[1],
        "walk and overlay differ in a user namespace"
    );
}
