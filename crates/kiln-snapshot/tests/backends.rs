//! Both backends give identical layers (tar bytes from kiln-layer's writer) for the
//! same steps, and leave identical rootfs behind; and each step's change set is what
//! Docker would write.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use common::*;
use kiln_snapshot::{
    Backend, BackendChoice, IgnoreList, SnapshotMode, SnapshotOptions, Snapshotter,
};

type StepFn = fn(&Path);

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The steps, each with the entries its layer must hold (tar path and kind).
fn steps() -> Vec<(&'static str, StepFn, Vec<&'static str>)> {
    vec![
        (
            "create",
            |r| {
                write(r, "etc/new.conf", "new\n");
                write(r, "opt/app/run.sh", "#!/bin/sh\n");
            },
            vec![
                "etc directory",
                "etc/new.conf file",
                "opt directory",
                "opt/app directory",
                "opt/app/run.sh file",
            ],
        ),
        (
            "modify",
            |r| fs::write(r.join("etc/app.conf"), "setting=2\nmore=1\n").unwrap(),
            vec!["etc directory", "etc/app.conf file"],
        ),
        (
            "chmod",
            |r| {
                fs::set_permissions(r.join("etc/perms"), fs::Permissions::from_mode(0o600))
                    .unwrap();
                fs::set_permissions(r.join("data/dirA/sub"), fs::Permissions::from_mode(0o700))
                    .unwrap();
            },
            vec![
                "data directory",
                "data/dirA directory",
                "data/dirA/sub directory",
                "etc directory",
                "etc/perms file",
            ],
        ),
        (
            "chown",
            |r| std::os::unix::fs::lchown(r.join("etc/owned"), Some(1000), Some(1000)).unwrap(),
            vec!["etc directory", "etc/owned file"],
        ),
        (
            "delete file",
            |r| fs::remove_file(r.join("etc/gone")).unwrap(),
            vec!["etc directory", "etc/.wh.gone whiteout"],
        ),
        (
            "delete dir",
            |r| fs::remove_dir_all(r.join("data/old")).unwrap(),
            vec!["data directory", "data/.wh.old whiteout"],
        ),
        (
            "replace dir by symlink",
            |r| {
                fs::remove_dir_all(r.join("usr/share/doc")).unwrap();
                symlink("/usr/local/doc", r.join("usr/share/doc")).unwrap();
            },
            vec![
                "usr directory",
                "usr/share directory",
                "usr/share/doc symlink",
            ],
        ),
        (
            "hardlink",
            |r| {
                fs::hard_link(r.join("usr/bin/tool"), r.join("usr/bin/tool2")).unwrap();
                write(r, "usr/bin/fresh", "fresh\n");
                fs::hard_link(r.join("usr/bin/fresh"), r.join("usr/bin/fresh-alias")).unwrap();
            },
            // tool2 joins the fixture's group {tool, tool-alias}: the whole group is
            // in the layer, as one group.
            vec![
                "usr directory",
                "usr/bin directory",
                "usr/bin/fresh file",
                "usr/bin/fresh-alias hardlink",
                "usr/bin/tool file",
                "usr/bin/tool-alias hardlink",
                "usr/bin/tool2 hardlink",
            ],
        ),
        (
            "xattr",
            |r| {
                xattr::set(r.join("etc/motd"), "user.kiln", b"1").unwrap();
                xattr::set(r.join("var/xattr.txt"), "user.existing", b"new").unwrap();
            },
            vec![
                "etc directory",
                "etc/motd file",
                "var directory",
                "var/xattr.txt file",
            ],
        ),
        (
            "rename",
            |r| {
                fs::rename(r.join("etc/old.conf"), r.join("etc/renamed.conf")).unwrap();
                // Like `mv` (copies when the kernel refuses to rename a directory).
                run(Command::new("mv")
                    .arg(r.join("data/dirA"))
                    .arg(r.join("data/dirB")));
            },
            vec![
                "data directory",
                "data/.wh.dirA whiteout",
                "data/dirB directory",
                "data/dirB/sub directory",
                "data/dirB/sub/y file",
                "data/dirB/x file",
                "etc directory",
                "etc/.wh.old.conf whiteout",
                "etc/renamed.conf file",
            ],
        ),
        (
            "touch with an old mtime",
            |r| set_mtime(&r.join("etc/touched"), 631_152_000, 0),
            vec!["etc directory", "etc/touched file"],
        ),
        (
            "same-size rewrite in the same second",
            |r| {
                let p = r.join("etc/same.txt");
                fs::write(&p, "bbbb").unwrap();
                // The rewrite keeps size and mtime: only ctime and content tell.
                set_mtime(&p, FIXTURE_TIME, 0);
            },
            vec!["etc directory", "etc/same.txt file"],
        ),
        (
            "nested dir deletion",
            |r| fs::remove_dir_all(r.join("data/nested/a")).unwrap(),
            vec![
                "data directory",
                "data/nested directory",
                "data/nested/.wh.a whiteout",
            ],
        ),
        (
            "file replaced by a dir",
            |r| {
                fs::remove_file(r.join("etc/motd")).unwrap();
                write(r, "etc/motd/part", "part\n");
            },
            vec![
                "etc directory",
                "etc/motd directory",
                "etc/motd/.wh..wh..opq opaque-dir marker",
                "etc/motd/part file",
            ],
        ),
        (
            "dir deleted and recreated",
            |r| {
                fs::remove_dir_all(r.join("var/lib/x")).unwrap();
                write(r, "var/lib/x/three", "3\n");
            },
            vec![
                "var directory",
                "var/lib directory",
                "var/lib/x directory",
                "var/lib/x/.wh..wh..opq opaque-dir marker",
                "var/lib/x/three file",
            ],
        ),
        (
            "touched but unchanged",
            |r| {
                // A copy-up in overlay, a new ctime for the walk: no change either way.
                fs::OpenOptions::new()
                    .append(true)
                    .open(r.join("etc/passwd"))
                    .unwrap();
                fs::set_permissions(r.join("etc/group"), fs::Permissions::from_mode(0o644))
                    .unwrap();
            },
            vec![],
        ),
        (
            "ignored paths",
            |r| {
                write(r, "proc/written", "never captured\n");
                write(r, "kaniko/cache", "never captured\n");
            },
            // Creating /kaniko changes the root dir only, which is never written.
            vec![],
        ),
        (
            "command in a chroot",
            |r| {
                run(Command::new("chroot").arg(r).args([
                    "/bin/busybox",
                    "sh",
                    "-c",
                    "echo hello > /hello && rm /etc/new.conf && mkdir -p /srv/www && /bin/busybox chmod 0751 /srv/www",
                ]))
            },
            vec![
                "etc directory",
                "etc/.wh.new.conf whiteout",
                "hello file",
                "srv directory",
                "srv/www directory",
            ],
        ),
        (
            "link to a file of an earlier layer, in another directory",
            |r| fs::hard_link(r.join("etc/passwd"), r.join("var/passwd-link")).unwrap(),
            // The old name comes along (overlayfs copies it up): one group.
            vec![
                "etc directory",
                "etc/passwd file",
                "var directory",
                "var/passwd-link hardlink",
            ],
        ),
        (
            "link to a file an earlier step made, by a command in a chroot",
            |r| {
                run(Command::new("chroot").arg(r).args([
                    "/bin/busybox",
                    "ln",
                    "/opt/app/run.sh",
                    "/srv/run-link",
                ]))
            },
            vec![
                "opt directory",
                "opt/app directory",
                "opt/app/run.sh file",
                "srv directory",
                "srv/run-link hardlink",
            ],
        ),
        (
            "link to a group whose other members are removed",
            |r| {
                fs::remove_file(r.join("usr/bin/tool-alias")).unwrap();
                fs::remove_file(r.join("usr/bin/tool2")).unwrap();
                fs::hard_link(r.join("usr/bin/tool"), r.join("usr/bin/tool3")).unwrap();
            },
            vec![
                "usr directory",
                "usr/bin directory",
                "usr/bin/.wh.tool-alias whiteout",
                "usr/bin/.wh.tool2 whiteout",
                "usr/bin/tool file",
                "usr/bin/tool3 hardlink",
            ],
        ),
        (
            "removing one name of a group",
            |r| fs::remove_file(r.join("usr/bin/tool3")).unwrap(),
            // The other name only lost a link: not a change.
            vec![
                "usr directory",
                "usr/bin directory",
                "usr/bin/.wh.tool3 whiteout",
            ],
        ),
        (
            "links from an ignored directory and a new name",
            |r| {
                fs::create_dir_all(r.join("kaniko")).unwrap();
                fs::hard_link(r.join("etc/group"), r.join("kaniko/group-link")).unwrap();
                fs::hard_link(r.join("etc/group"), r.join("etc/group-link")).unwrap();
            },
            vec!["etc directory", "etc/group file", "etc/group-link hardlink"],
        ),
        (
            "a file made and linked in the same step",
            |r| {
                write(r, "opt/made", "made\n");
                fs::hard_link(r.join("opt/made"), r.join("opt/made-link")).unwrap();
            },
            vec!["opt directory", "opt/made file", "opt/made-link hardlink"],
        ),
    ]
}

struct StepResult {
    name: &'static str,
    described: Vec<String>,
    tar: Vec<u8>,
}

fn run_all(
    choice: BackendChoice,
    expected: Backend,
    over_root: bool,
) -> (Vec<StepResult>, Vec<String>) {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    build_fixture(&root);
    let mut ignore = IgnoreList::kaniko_defaults(Path::new("/kaniko"), true).unwrap();
    ignore.add("/etc/resolv.conf").unwrap();
    let options = SnapshotOptions {
        mode: SnapshotMode::Full,
        ignore,
        backend: choice,
        scratch: Some(tmp.path().join("scratch")),
        overlay_over_root: over_root,
    };
    let mut snap = Snapshotter::new(&root, options).unwrap();
    assert_eq!(snap.backend(), expected);
    let mut results = Vec::new();
    for (i, (name, step, want)) in steps().into_iter().enumerate() {
        let s = snap.begin().unwrap();
        if over_root {
            assert_eq!(s.root(), root.canonicalize().unwrap());
        }
        step(s.root());
        normalize_recent_mtimes(s.root(), 1_600_000_000 + 1000 * i as i64);
        let changes = s.finish().unwrap_or_else(|e| panic!("step {name:?}: {e}"));
        let got = paths_and_kinds(changes.entries());
        assert_eq!(got, want, "step {name:?} with {expected:?}");
        results.push(StepResult {
            name,
            described: describe(changes.entries()),
            tar: tar_bytes(changes.entries()),
        });
    }
    (results, tree_state(&root))
}

/// Both backends on the same steps: the same entries, tar bytes and final rootfs.
fn assert_overlay_equals_walk(overlay_over_root: bool) {
    let (walk, walk_tree) = run_all(BackendChoice::Walk, Backend::Walk, false);
    let (overlay, overlay_tree) =
        run_all(BackendChoice::Overlay, Backend::Overlay, overlay_over_root);
    for (w, o) in walk.iter().zip(&overlay) {
        assert_eq!(
            w.described, o.described,
            "step {:?}: entries differ",
            w.name
        );
        assert!(w.tar == o.tar, "step {:?}: tar bytes differ", w.name);
    }
    assert_eq!(walk_tree, overlay_tree, "rootfs after all steps differ");
}

#[test]
fn walk_and_overlay_give_identical_layers_and_rootfs() {
    assert_overlay_equals_walk(false);
}

/// Applying the layers in order onto the original tree (kiln-layer's applier, as a
/// puller would) reproduces the snapshotted rootfs, ignored paths aside.
#[test]
fn layers_replayed_onto_the_base_reproduce_the_rootfs() {
    let (layers, tree) = run_all(BackendChoice::Overlay, Backend::Overlay, false);
    let tmp = tempfile::tempdir().unwrap();
    let replay = tmp.path().join("replay");
    build_fixture(&replay);
    for layer in &layers {
        kiln_layer::apply_tar(
            &layer.tar[..],
            layer.name,
            &replay,
            &kiln_layer::ApplyOptions::default(),
        )
        .unwrap_or_else(|e| panic!("applying layer of step {:?}: {e}", layer.name));
    }
    let not_ignored = |l: &String| !l.starts_with("proc") && !l.starts_with("kaniko");
    let captured: Vec<String> = tree.into_iter().filter(not_ignored).collect();
    let replayed: Vec<String> = tree_state(&replay)
        .into_iter()
        .filter(not_ignored)
        .collect();
    assert_eq!(replayed, captured);
}

#[test]
fn an_overlay_mounted_over_the_rootfs_gives_the_walk_layers() {
    assert_overlay_equals_walk(true);
}
