//! Hard links across layers: a step that links a new name to a file it did not change
//! (from the base, a COPY, an earlier step) gives a layer holding both names as one
//! group, as overlayfs does for Docker and buildah. Each case runs on a fresh fixture
//! with both backends; the layers must list the expected entries, be byte-identical,
//! leave identical rootfs, and, applied onto the tree as it was before the step (as a
//! puller would), reproduce the rootfs, link groups included.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;
use kiln_snapshot::{
    Backend, BackendChoice, IgnoreList, SnapshotMode, SnapshotOptions, Snapshotter,
};

type Change = fn(&Path);

struct Case {
    name: &'static str,
    /// Changes made before the step, outside any snapshot (a COPY: the engine applies
    /// its entries to the rootfs and takes a fresh baseline afterwards).
    copy: Option<Change>,
    /// An earlier step, snapshotted on its own.
    earlier_step: Option<Change>,
    step: Change,
    want: Vec<&'static str>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "link to a file of the base layer",
            copy: None,
            earlier_step: None,
            step: |r| fs::hard_link(r.join("etc/passwd"), r.join("etc/passwd-link")).unwrap(),
            want: vec![
                "etc directory",
                "etc/passwd file",
                "etc/passwd-link hardlink",
            ],
        },
        Case {
            name: "link in another directory to a copied file",
            copy: Some(|r| write(r, "opt/copied.txt", "copied\n")),
            earlier_step: None,
            step: |r| fs::hard_link(r.join("opt/copied.txt"), r.join("usr/copied-link")).unwrap(),
            want: vec![
                "opt directory",
                "opt/copied.txt file",
                "usr directory",
                "usr/copied-link hardlink",
            ],
        },
        Case {
            name: "link by a command to a file an earlier step made",
            copy: None,
            earlier_step: Some(|r| write(r, "srv/made.txt", "made\n")),
            step: |r| {
                let out = Command::new("chroot")
                    .arg(r)
                    .args(["/bin/busybox", "ln", "/srv/made.txt", "/srv/made-link"])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            },
            // The first name in layer order carries the content.
            want: vec![
                "srv directory",
                "srv/made-link file",
                "srv/made.txt hardlink",
            ],
        },
        Case {
            name: "link to a base group: the whole group comes along",
            copy: None,
            earlier_step: None,
            step: |r| fs::hard_link(r.join("usr/bin/tool"), r.join("usr/bin/tool2")).unwrap(),
            want: vec![
                "usr directory",
                "usr/bin directory",
                "usr/bin/tool file",
                "usr/bin/tool-alias hardlink",
                "usr/bin/tool2 hardlink",
            ],
        },
        Case {
            name: "link in a new directory to a base group",
            copy: None,
            earlier_step: None,
            step: |r| {
                fs::create_dir(r.join("new")).unwrap();
                fs::hard_link(r.join("usr/bin/tool-alias"), r.join("new/tool")).unwrap();
            },
            want: vec![
                "new directory",
                "new/tool file",
                "usr directory",
                "usr/bin directory",
                "usr/bin/tool hardlink",
                "usr/bin/tool-alias hardlink",
            ],
        },
        Case {
            name: "link to a group whose other member is removed",
            copy: None,
            earlier_step: None,
            step: |r| {
                fs::remove_file(r.join("usr/bin/tool-alias")).unwrap();
                fs::hard_link(r.join("usr/bin/tool"), r.join("usr/bin/tool3")).unwrap();
            },
            want: vec![
                "usr directory",
                "usr/bin directory",
                "usr/bin/.wh.tool-alias whiteout",
                "usr/bin/tool file",
                "usr/bin/tool3 hardlink",
            ],
        },
        Case {
            name: "removing one name of a group changes nothing else",
            copy: None,
            earlier_step: None,
            step: |r| fs::remove_file(r.join("usr/bin/tool-alias")).unwrap(),
            want: vec![
                "usr directory",
                "usr/bin directory",
                "usr/bin/.wh.tool-alias whiteout",
            ],
        },
        Case {
            // In place, kiln's own dir is inside the walked root but ignored.
            name: "a name in an ignored directory is never captured",
            copy: None,
            earlier_step: None,
            step: |r| {
                fs::create_dir_all(r.join("kaniko")).unwrap();
                fs::hard_link(r.join("etc/group"), r.join("kaniko/group-link")).unwrap();
                fs::hard_link(r.join("etc/group"), r.join("etc/group-link")).unwrap();
            },
            want: vec!["etc directory", "etc/group file", "etc/group-link hardlink"],
        },
    ]
}

struct Outcome {
    described: Vec<String>,
    tar: Vec<u8>,
    rootfs: Vec<String>,
}

/// Runs `case` with `choice`; checks the entries and that the layer replayed onto the
/// tree as it was before the step gives the rootfs.
fn run(case: &Case, choice: BackendChoice, expected: Backend) -> Outcome {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    build_fixture(&root);
    let options = || SnapshotOptions {
        mode: SnapshotMode::Full,
        ignore: IgnoreList::kaniko_defaults(Path::new("/kaniko"), true).unwrap(),
        backend: choice,
        scratch: Some(tmp.path().join("scratch")),
        overlay_over_root: false,
    };
    if let Some(copy) = case.copy {
        copy(&root);
        normalize_recent_mtimes(&root, 1_600_000_000);
    }
    let mut snap = Snapshotter::new(&root, options()).unwrap();
    assert_eq!(snap.backend(), expected);
    if let Some(earlier) = case.earlier_step {
        let s = snap.begin().unwrap();
        earlier(s.root());
        normalize_recent_mtimes(s.root(), 1_600_000_000);
        s.finish().unwrap();
    }
    let before = tmp.path().join("before");
    copy_tree(&root, &before);

    let s = snap.begin().unwrap();
    (case.step)(s.root());
    normalize_recent_mtimes(s.root(), 1_700_000_000);
    let changes = s
        .finish()
        .unwrap_or_else(|e| panic!("{:?} with {expected:?}: {e}", case.name));
    assert_eq!(
        paths_and_kinds(changes.entries()),
        case.want,
        "{:?} with {expected:?}",
        case.name
    );
    let tar = tar_bytes(changes.entries());
    kiln_layer::apply_tar(
        &tar[..],
        case.name,
        &before,
        &kiln_layer::ApplyOptions::default(),
    )
    .unwrap();
    let not_ignored = |l: &String| !l.starts_with("proc") && !l.starts_with("kaniko");
    let rootfs: Vec<String> = tree_state(&root).into_iter().filter(not_ignored).collect();
    let replayed: Vec<String> = tree_state(&before)
        .into_iter()
        .filter(not_ignored)
        .collect();
    assert_eq!(
        replayed, rootfs,
        "{:?} with {expected:?}: the layer applied onto the tree before the step",
        case.name
    );
    Outcome {
        described: describe(changes.entries()),
        tar,
        rootfs,
    }
}

/// `cp -a`: hard links, owners, xattrs and times kept.
fn copy_tree(from: &Path, to: &Path) {
    let out = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every case is run (a failure is reported with the others), on both backends.
#[test]
fn links_to_unchanged_files_give_one_group_with_both_backends() {
    let mut failed = Vec::new();
    for case in cases() {
        let outcome = std::panic::catch_unwind(|| {
            let walk = run(&case, BackendChoice::Walk, Backend::Walk);
            let overlay = run(&case, BackendChoice::Overlay, Backend::Overlay);
            assert_eq!(walk.described, overlay.described, "{:?}", case.name);
            assert!(walk.tar == overlay.tar, "{:?}: tar bytes differ", case.name);
            assert_eq!(
                walk.rootfs, overlay.rootfs,
                "{:?}: rootfs differ",
                case.name
            );
        });
        if outcome.is_err() {
            failed.push(case.name);
        }
    }
    assert!(failed.is_empty(), "failed cases (see above): {failed:#?}");
}
