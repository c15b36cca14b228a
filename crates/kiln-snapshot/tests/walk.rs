//! Walk backend specifics: huge directories (stat'ed by several threads), consecutive
//! diffs, rebaselining, errors naming their path.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use kiln_snapshot::{IgnoreList, SnapshotMode, WalkSnapshotter};

#[test]
fn a_huge_directory_is_diffed_like_a_small_one() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    for i in 0..6000 {
        write(&root, &format!("big/f{i:05}"), &format!("{i}\n"));
    }
    normalize_recent_mtimes(&root, FIXTURE_TIME);
    let mut walk = WalkSnapshotter::new(&root, SnapshotMode::Full, IgnoreList::new()).unwrap();
    fs::write(root.join("big/f00007"), "changed\n").unwrap();
    fs::write(root.join("big/f05999"), "changed\n").unwrap();
    fs::remove_file(root.join("big/f03000")).unwrap();
    write(&root, "big/zz-new", "new\n");
    normalize_recent_mtimes(&root, 1_600_000_000);
    let changes = walk.diff().unwrap();
    assert_eq!(
        paths_and_kinds(changes.entries()),
        [
            "big directory",
            "big/.wh.f03000 whiteout",
            "big/f00007 file",
            "big/f05999 file",
            "big/zz-new file"
        ]
    );
}

#[test]
fn each_diff_is_relative_to_the_previous_one() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    build_fixture(&root);
    let mut walk = WalkSnapshotter::new(&root, SnapshotMode::Full, IgnoreList::new()).unwrap();
    assert!(walk.diff().unwrap().is_empty(), "nothing changed yet");
    write(&root, "etc/one", "1\n");
    normalize_recent_mtimes(&root, 1_600_000_000);
    assert_eq!(
        paths_and_kinds(walk.diff().unwrap().entries()),
        ["etc directory", "etc/one file"]
    );
    assert!(
        walk.diff().unwrap().is_empty(),
        "second diff after no change"
    );
    // Changes accepted with rebaseline are not reported later.
    write(&root, "etc/two", "2\n");
    walk.rebaseline().unwrap();
    assert!(walk.diff().unwrap().is_empty());
}

#[test]
fn errors_name_the_path() {
    let missing = Path::new("/nonexistent/kiln-snapshot-root");
    let err = WalkSnapshotter::new(missing, SnapshotMode::Redo, IgnoreList::new()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/kiln-snapshot-root"), "{msg}");
    assert!(msg.contains("opening directory"), "{msg}");
}
