//! kaniko's --snapshot-mode semantics, identical in both backends: `full` reads contents
//! where stat cannot decide, `redo` trusts stat, `time` only looks at mtimes.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use kiln_snapshot::{BackendChoice, IgnoreList, SnapshotMode, SnapshotOptions, Snapshotter};

/// Runs `step` on a fresh fixture with `mode` and `backend`; the layer's paths and kinds.
fn one_step(mode: SnapshotMode, backend: BackendChoice, step: fn(&Path)) -> Vec<String> {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    build_fixture(&root);
    let mut snap = Snapshotter::new(
        &root,
        SnapshotOptions {
            mode,
            ignore: IgnoreList::new(),
            backend,
            scratch: Some(tmp.path().join("scratch")),
            overlay_over_root: false,
        },
    )
    .unwrap();
    let s = snap.begin().unwrap();
    step(s.root());
    paths_and_kinds(s.finish().unwrap().entries())
}

fn same_size_rewrite(r: &Path) {
    let p = r.join("etc/same.txt");
    fs::write(&p, "bbbb").unwrap();
    set_mtime(&p, FIXTURE_TIME, 0);
}

fn chmod_only(r: &Path) {
    fs::set_permissions(r.join("etc/perms"), fs::Permissions::from_mode(0o600)).unwrap();
}

fn touch_old(r: &Path) {
    set_mtime(&r.join("etc/touched"), 631_152_000, 0);
}

#[test]
fn full_mode_catches_a_rewrite_that_keeps_size_and_mtime() {
    for backend in [BackendChoice::Walk, BackendChoice::Overlay] {
        assert_eq!(
            one_step(SnapshotMode::Full, backend, same_size_rewrite),
            ["etc directory", "etc/same.txt file"],
            "{backend:?}"
        );
    }
}

#[test]
fn redo_mode_trusts_stat_and_misses_it() {
    for backend in [BackendChoice::Walk, BackendChoice::Overlay] {
        assert!(
            one_step(SnapshotMode::Redo, backend, same_size_rewrite).is_empty(),
            "{backend:?}"
        );
        assert_eq!(
            one_step(SnapshotMode::Redo, backend, chmod_only),
            ["etc directory", "etc/perms file"],
            "{backend:?}"
        );
    }
}

#[test]
fn time_mode_only_sees_mtimes() {
    for backend in [BackendChoice::Walk, BackendChoice::Overlay] {
        assert!(
            one_step(SnapshotMode::Time, backend, chmod_only).is_empty(),
            "{backend:?}"
        );
        assert_eq!(
            one_step(SnapshotMode::Time, backend, touch_old),
            ["etc directory", "etc/touched file"],
            "{backend:?}"
        );
    }
}

#[test]
fn snapshot_mode_parses_kaniko_flag_values() {
    assert_eq!("full".parse::<SnapshotMode>().unwrap(), SnapshotMode::Full);
    assert_eq!("redo".parse::<SnapshotMode>().unwrap(), SnapshotMode::Redo);
    assert_eq!("time".parse::<SnapshotMode>().unwrap(), SnapshotMode::Time);
    let err = "fast".parse::<SnapshotMode>().unwrap_err();
    assert!(err.to_string().contains("\"fast\""), "{err}");
}
