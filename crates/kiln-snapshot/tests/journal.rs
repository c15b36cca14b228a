//! The walk backend reads again only the directories its inotify journal saw events in.
//! These are the changes such a journal could miss, each checked against the change set
//! a full walk gives: writes through `mmap`, writes through a hard link in another
//! directory, links made during a step, a subdirectory's own record in a quiet parent,
//! and more events than the kernel queues.

mod common;

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use kiln_snapshot::{IgnoreList, SnapshotMode, WalkSnapshotter};

fn fixture(root: &Path) {
    write(root, "a/deep/er/file.txt", "aaaa");
    write(root, "a/sibling", "s\n");
    write(root, "b/linked", "shared\n");
    fs::create_dir_all(root.join("c")).unwrap();
    fs::hard_link(root.join("b/linked"), root.join("c/other-name")).unwrap();
    write(root, "quiet/orig", "original\n");
    write(root, "busy/x", "x\n");
    write(root, "busy/y", "y\n");
    write(root, "elsewhere/z", "z\n");
    for p in all_paths(root) {
        set_mtime(&p, FIXTURE_TIME, 0);
    }
}

/// Runs `step` and returns what the walk captured. Times are left as the step set them
/// (setting them would itself be an event and could hide a missed one).
fn step(walk: &mut WalkSnapshotter, step: impl FnOnce(&Path)) -> Vec<String> {
    let root = walk.root().to_path_buf();
    step(&root);
    paths_and_kinds(walk.diff().unwrap().entries())
}

fn new_walk(root: &Path, mode: SnapshotMode) -> WalkSnapshotter {
    require_root();
    fixture(root);
    WalkSnapshotter::new(root, mode, IgnoreList::new()).unwrap()
}

/// Rewrites the first byte of `path` through a shared mapping: no write(2), so no
/// IN_MODIFY; only the close after writing tells.
fn write_through_mmap(path: &Path, byte: u8) {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    // SAFETY: maps one page of a non-empty file we hold open read-write; the mapping is
    // written within the file's length and unmapped before the file is closed.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "mmap {}", path.display());
        *p.cast::<u8>() = byte;
        assert_eq!(libc::munmap(p, 4096), 0);
    }
}

#[test]
fn a_write_through_mmap_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    let mut walk = new_walk(&root, SnapshotMode::Full);
    let got = step(&mut walk, |r| {
        write_through_mmap(&r.join("a/deep/er/file.txt"), b'z');
    });
    assert_eq!(
        got,
        [
            "a directory",
            "a/deep directory",
            "a/deep/er directory",
            "a/deep/er/file.txt file"
        ]
    );
    assert_eq!(fs::read(root.join("a/deep/er/file.txt")).unwrap(), b"zaaa");
}

#[test]
fn a_write_through_a_link_in_another_directory_changes_both_names() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    let mut walk = new_walk(&root, SnapshotMode::Redo);
    let got = step(&mut walk, |r| {
        fs::write(r.join("c/other-name"), "changed through c\n").unwrap();
    });
    assert_eq!(
        got,
        [
            "b directory",
            "b/linked file",
            "c directory",
            "c/other-name hardlink"
        ]
    );
}

#[test]
fn a_link_made_in_one_step_is_followed_in_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    let mut walk = new_walk(&root, SnapshotMode::Redo);
    let got = step(&mut walk, |r| {
        fs::hard_link(r.join("quiet/orig"), r.join("busy/alias")).unwrap();
    });
    // The old name comes along: one group in the layer.
    assert_eq!(
        got,
        [
            "busy directory",
            "busy/alias file",
            "quiet directory",
            "quiet/orig hardlink"
        ]
    );
    // `quiet` sees no event when its file is written through `busy/alias`.
    let got = step(&mut walk, |r| {
        fs::write(r.join("busy/alias"), "written through the alias\n").unwrap();
    });
    assert_eq!(
        got,
        [
            "busy directory",
            "busy/alias file",
            "quiet directory",
            "quiet/orig hardlink"
        ]
    );
}

#[test]
fn a_subdirectory_record_is_refreshed_with_its_parent() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    let mut walk = new_walk(&root, SnapshotMode::Redo);
    // Changes a/deep/er's mtime; a/deep itself sees nothing happen inside it.
    let got = step(&mut walk, |r| write(r, "a/deep/er/new", "new\n"));
    assert_eq!(
        got,
        [
            "a directory",
            "a/deep directory",
            "a/deep/er directory",
            "a/deep/er/new file"
        ]
    );
    // A stale record of a/deep/er would make it reappear here.
    let got = step(&mut walk, |r| {
        fs::write(r.join("a/deep/new-too"), "2\n").unwrap();
    });
    assert_eq!(
        got,
        ["a directory", "a/deep directory", "a/deep/new-too file"]
    );
    // Mode of a directory: an event of the directory itself.
    let got = step(&mut walk, |r| {
        fs::set_permissions(r.join("a/deep/er"), fs::Permissions::from_mode(0o700)).unwrap();
    });
    assert_eq!(
        got,
        ["a directory", "a/deep directory", "a/deep/er directory"]
    );
    assert!(step(&mut walk, |_| {}).is_empty(), "nothing changed");
}

/// More events than the kernel queues: whether the journal's reader thread kept up or
/// the queue overflowed (a full walk), nothing is lost. (`journal::tests` check each
/// of the two paths on its own.)
#[test]
fn a_flood_of_events_loses_no_change() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    let mut walk = new_walk(&root, SnapshotMode::Redo);
    let got = step(&mut walk, |r| {
        let limit: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(16384);
        // Alternating between two files so that the kernel cannot merge the events.
        for i in 0..=limit {
            let name = if i % 2 == 0 { "busy/x" } else { "busy/y" };
            set_mtime(&r.join(name), FIXTURE_TIME + (i % 7) as i64, 0);
        }
        set_mtime(&r.join("busy/x"), FIXTURE_TIME, 0);
        set_mtime(&r.join("busy/y"), FIXTURE_TIME, 0);
        fs::write(r.join("elsewhere/z"), "zz\n").unwrap();
    });
    assert_eq!(got, ["elsewhere directory", "elsewhere/z file"]);
    let got = step(&mut walk, |r| {
        fs::write(r.join("a/sibling"), "s2\n").unwrap();
    });
    assert_eq!(got, ["a directory", "a/sibling file"]);
}

/// Creates `levels` nested directories of 200-byte names below `dir`, relative to each
/// parent's fd: the full path ends up longer than PATH_MAX.
fn make_too_deep(dir: &Path, levels: usize) {
    use nix::fcntl::{OFlag, open, openat};
    use nix::sys::stat::{Mode, mkdirat};
    let name = "d".repeat(200);
    let mut fd = open(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
    for _ in 0..levels {
        mkdirat(Some(fd), name.as_str(), Mode::from_bits_truncate(0o755)).unwrap();
        let next = openat(
            Some(fd),
            name.as_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        nix::unistd::close(fd).unwrap();
        fd = next;
    }
    nix::unistd::close(fd).unwrap();
}

#[test]
fn a_failed_diff_loses_no_change_for_the_next_one() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    let mut walk = new_walk(&root, SnapshotMode::Redo);
    fs::write(root.join("a/new-file"), "new\n").unwrap();
    fs::create_dir(root.join("deep")).unwrap();
    make_too_deep(&root.join("deep"), 24);
    let err = walk
        .diff()
        .expect_err("paths beyond PATH_MAX cannot be described");
    assert!(err.to_string().contains("deep"), "{err}");
    let out = std::process::Command::new("rm")
        .arg("-rf")
        .arg(root.join("deep"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rm -rf: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What the failed diff saw must be seen again.
    assert_eq!(
        paths_and_kinds(walk.diff().unwrap().entries()),
        ["a directory", "a/new-file file"]
    );
}
