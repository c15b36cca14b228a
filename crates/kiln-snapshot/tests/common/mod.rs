//! Test support: a small rootfs fixture with fixed timestamps, helpers to set times,
//! and a canonical description of a change set and of a tree.

#![allow(dead_code)]

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use kiln_layer::{Entry, EntryKind, FileSource, TarOptions};

/// 2000-01-01T00:00:00Z: every fixture path's mtime.
pub const FIXTURE_TIME: i64 = 946_684_800;

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "these tests need root (chown, trusted xattrs, mounts): run them as root as CI does"
    );
}

/// Sets the mtime (and atime) of `path` without following a symlink.
pub fn set_mtime(path: &Path, sec: i64, nsec: i64) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let t = libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    // SAFETY: valid C string and two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            [t, t].as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(
        rc,
        0,
        "utimensat {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

pub fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
}

/// All paths below `root` (not root itself), deepest first.
pub fn all_paths(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn rec(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                rec(&p, out);
            }
            out.push(p);
        }
    }
    rec(root, &mut out);
    out
}

/// Sets every mtime newer than 2023 (what the step itself touched) to `sec`, so that what a step touched has the same
/// time in every run (and with every backend).
pub fn normalize_recent_mtimes(root: &Path, sec: i64) {
    for p in all_paths(root) {
        if fs::symlink_metadata(&p).unwrap().mtime() > 1_700_000_000 {
            set_mtime(&p, sec, 0);
        }
    }
}

/// A small rootfs: config files, a hardlink pair, a symlink, nested dirs, xattrs,
/// busybox, an ignored `proc` dir. Every mtime is [`FIXTURE_TIME`].
pub fn build_fixture(root: &Path) {
    fs::create_dir_all(root).unwrap();
    write(root, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
    write(root, "etc/group", "root:x:0:\n");
    write(root, "etc/motd", "welcome\n");
    write(root, "etc/old.conf", "old\n");
    write(root, "etc/app.conf", "setting=1\n");
    write(root, "etc/same.txt", "aaaa");
    write(root, "etc/touched", "t\n");
    write(root, "etc/perms", "p\n");
    write(root, "etc/owned", "o\n");
    write(root, "etc/gone", "bye\n");
    write(root, "usr/bin/tool", "tool-binary\n");
    fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool-alias")).unwrap();
    write(root, "usr/share/doc/pkg/README", "readme\n");
    write(root, "usr/share/doc/pkg/COPYING", "gpl\n");
    symlink("../share/doc", root.join("usr/bin/doc-link")).unwrap();
    write(root, "data/old/a", "a\n");
    write(root, "data/old/b/c", "c\n");
    write(root, "data/dirA/x", "x\n");
    write(root, "data/dirA/sub/y", "y\n");
    write(root, "data/nested/keep.txt", "keep\n");
    write(root, "data/nested/a/b/c/deep.txt", "deep\n");
    write(root, "data/nested/a/top.txt", "top\n");
    write(root, "var/lib/x/one", "1\n");
    write(root, "var/lib/x/two", "2\n");
    write(root, "var/xattr.txt", "x\n");
    xattr::set(root.join("var/xattr.txt"), "user.existing", b"old").unwrap();
    write(root, "proc/ignored-before", "p\n");
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::copy("/usr/bin/busybox", root.join("bin/busybox")).unwrap_or_else(|e| {
        panic!("needs /usr/bin/busybox (busybox-static): install with .ci/install-deps: {e}")
    });
    symlink("busybox", root.join("bin/sh")).unwrap();
    for p in all_paths(root) {
        set_mtime(&p, FIXTURE_TIME, 0);
    }
    set_mtime(root, FIXTURE_TIME, 0);
}

/// One line per entry: tar path, kind (with target), mode, owner, mtime, xattrs, and
/// the content of files.
pub fn describe(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            let path = String::from_utf8_lossy(&e.tar_path()).into_owned();
            let kind = match &e.kind {
                EntryKind::File(FileSource::Path(p)) => {
                    format!("file {:?}", String::from_utf8_lossy(&fs::read(p).unwrap()))
                }
                EntryKind::File(FileSource::Bytes(b)) => format!("bytes {}", b.len()),
                EntryKind::Symlink { target } => format!("symlink -> {}", target.to_string_lossy()),
                EntryKind::Hardlink { target } => format!("hardlink -> {target}"),
                other => other.name().to_owned(),
            };
            let xattrs: Vec<String> = e
                .meta
                .xattrs
                .iter()
                .map(|(k, v)| format!("{}={}", k.to_string_lossy(), String::from_utf8_lossy(v)))
                .collect();
            format!(
                "{path} {kind} {:o} {}:{} {} [{}]",
                e.meta.mode,
                e.meta.uid,
                e.meta.gid,
                e.meta.mtime.sec,
                xattrs.join(",")
            )
        })
        .collect()
}

/// Only the tar path and the kind of each entry.
pub fn paths_and_kinds(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                String::from_utf8_lossy(&e.tar_path()),
                e.kind.name()
            )
        })
        .collect()
}

/// The tar stream kiln-layer writes for `entries`.
pub fn tar_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    kiln_layer::write_tar(entries.to_vec(), &TarOptions::default(), &mut out).unwrap();
    out
}

/// Every path of a tree with its type, mode, owner, mtime, size, content, link target,
/// hard link group (named by its first path) and xattrs: what two rootfs must agree on.
pub fn tree_state(root: &Path) -> Vec<String> {
    let paths = all_paths(root);
    // Each hard link group by its first path: two trees agree on the groups too.
    let mut groups: std::collections::BTreeMap<(u64, u64), Vec<&Path>> = Default::default();
    for p in &paths {
        let m = fs::symlink_metadata(p).unwrap();
        if m.is_file() && m.nlink() > 1 {
            groups.entry((m.dev(), m.ino())).or_default().push(p);
        }
    }
    let group_of: std::collections::BTreeMap<(u64, u64), &Path> = groups
        .into_iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(inode, names)| (inode, names.into_iter().min().unwrap()))
        .collect();
    paths
        .iter()
        .map(|p| {
            let m = fs::symlink_metadata(p).unwrap();
            let ft = m.file_type();
            let what = if ft.is_symlink() {
                format!("-> {}", fs::read_link(p).unwrap().display())
            } else if ft.is_file() {
                let group = match group_of.get(&(m.dev(), m.ino())) {
                    Some(first) => {
                        format!(" group={}", first.strip_prefix(root).unwrap().display())
                    }
                    None => String::new(),
                };
                format!(
                    "{:?}{group}",
                    String::from_utf8_lossy(&fs::read(p).unwrap())
                        .chars()
                        .take(40)
                        .collect::<String>()
                )
            } else if ft.is_dir() {
                "dir".to_owned()
            } else {
                format!("special {:x}", m.rdev())
            };
            let mut xattrs: Vec<String> = xattr::list(p)
                .unwrap()
                .map(|k| {
                    let v = xattr::get(p, &k).unwrap().unwrap_or_default();
                    format!("{}={}", k.to_string_lossy(), String::from_utf8_lossy(&v))
                })
                .collect();
            xattrs.sort();
            let mtime = m.mtime();
            format!(
                "{} {what} {:o} {}:{} {mtime} [{}]",
                p.strip_prefix(root).unwrap().display(),
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                xattrs.join(",")
            )
        })
        .collect()
}
