//! Fixture base images (a static busybox rootfs) made offline.
//!
//! The rootfs has `/bin/busybox` (a copy of the host's busybox-static), one symlink to
//! `/bin/busybox` per applet at the path `busybox --list-full` names, `/etc/passwd` and
//! `/etc/group` with `root`, `user` (1000) and `nobody` (65534), `/root` (0700),
//! `/home/user` (owned by 1000), and `/tmp` (1777). The tar form is deterministic:
//! entries sorted by path, mtime [`FIXTURE_MTIME`], numeric owners, no user names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::tools;

/// The mtime of every entry in the fixture tar (2024-01-01T00:00:00Z).
pub const FIXTURE_MTIME: u64 = 1_704_067_200;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
user:x:1000:1000:user:/home/user:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nuser:x:1000:\nnobody:x:65534:\n";

/// One entry of the fixture rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory with mode and owner.
    Dir { mode: u32, uid: u64, gid: u64 },
    /// A regular file with contents and mode (owned by root).
    File { data: Vec<u8>, mode: u32 },
    /// A symlink to `target` (owned by root).
    Symlink { target: String },
}

/// The entries of the busybox rootfs, keyed by relative path (no leading `/`).
pub fn entries() -> BTreeMap<String, Entry> {
    let data = fs_err::read(tools::busybox()).expect("reading busybox binary");
    entries_with_binary(data)
}

/// The entries of a busybox rootfs whose `/bin/busybox` is `binary` (another architecture's
/// build of the same Debian version, see [`crate::foreign`]). The applet links are those
/// the host's busybox-static lists.
pub fn entries_with_binary(data: Vec<u8>) -> BTreeMap<String, Entry> {
    let busybox = tools::busybox();
    let mut out = BTreeMap::new();
    let dir = |mode| Entry::Dir {
        mode,
        uid: 0,
        gid: 0,
    };
    for d in [
        "bin", "dev", "etc", "home", "proc", "sys", "usr", "usr/bin", "usr/sbin", "sbin", "var",
    ] {
        out.insert(d.to_owned(), dir(0o755));
    }
    out.insert("root".to_owned(), dir(0o700));
    out.insert("tmp".to_owned(), dir(0o1777));
    out.insert(
        "home/user".to_owned(),
        Entry::Dir {
            mode: 0o755,
            uid: 1000,
            gid: 1000,
        },
    );
    out.insert(
        "etc/passwd".to_owned(),
        Entry::File {
            data: PASSWD.as_bytes().to_vec(),
            mode: 0o644,
        },
    );
    out.insert(
        "etc/group".to_owned(),
        Entry::File {
            data: GROUP.as_bytes().to_vec(),
            mode: 0o644,
        },
    );
    let list = std::process::Command::new(&busybox)
        .arg("--list-full")
        .output()
        .expect("running busybox --list-full");
    assert!(list.status.success(), "busybox --list-full failed");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim().trim_start_matches('/');
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        // Make sure the parent directories exist as entries.
        let mut parent = Path::new(applet).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            out.entry(p.to_string_lossy().into_owned())
                .or_insert(dir(0o755));
            parent = p.parent();
        }
        out.insert(
            applet.to_owned(),
            Entry::Symlink {
                target: "/bin/busybox".to_owned(),
            },
        );
    }
    out.insert("bin/busybox".to_owned(), Entry::File { data, mode: 0o755 });
    out
}

/// The busybox rootfs as an uncompressed, deterministic tar (about 2 MB).
pub fn rootfs_tar() -> Vec<u8> {
    tar_from_entries(&entries())
}

/// A deterministic uncompressed tar of `entries` (paths relative, in key order), every
/// entry with mtime [`FIXTURE_MTIME`]. Use it to make extra fixture layers.
pub fn tar_from_entries(entries: &BTreeMap<String, Entry>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, entry) in entries.iter().map(|(p, e)| (p.clone(), e.clone())) {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(FIXTURE_MTIME);
        header.set_uid(0);
        header.set_gid(0);
        match entry {
            Entry::Dir { mode, uid, gid } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(mode);
                header.set_uid(uid);
                header.set_gid(gid);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{path}/"), std::io::empty())
                    .expect("tar dir");
            }
            Entry::File { data, mode } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(mode);
                header.set_size(data.len() as u64);
                builder
                    .append_data(&mut header, &path, data.as_slice())
                    .expect("tar file");
            }
            Entry::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder
                    .append_link(&mut header, &path, &target)
                    .expect("tar symlink");
            }
        }
    }
    builder.into_inner().expect("finishing tar")
}

/// A busybox rootfs directory, removed on drop.
#[derive(Debug)]
pub struct BusyboxRootfs {
    dir: tempfile::TempDir,
}

impl BusyboxRootfs {
    /// Writes the rootfs into a new temp dir. Owners are set with `lchown`, so this
    /// needs root (tests run as root; panics with the reason otherwise).
    pub fn create() -> BusyboxRootfs {
        Self::create_from(entries())
    }

    /// [`BusyboxRootfs::create`] from `entries` (e.g. [`entries_with_binary`]).
    pub fn create_from(entries: BTreeMap<String, Entry>) -> BusyboxRootfs {
        let dir = tempfile::Builder::new()
            .prefix("kiln-busybox-")
            .tempdir()
            .expect("creating rootfs temp dir");
        let root = dir.path().join("rootfs");
        fs_err::create_dir(&root).expect("creating rootfs dir");
        let mut dirs: Vec<(PathBuf, u32)> = Vec::new();
        for (path, entry) in entries {
            let target = root.join(&path);
            match entry {
                Entry::Dir { mode, uid, gid } => {
                    fs_err::create_dir_all(&target).expect("creating rootfs dir");
                    std::os::unix::fs::lchown(&target, Some(uid as u32), Some(gid as u32))
                        .unwrap_or_else(|e| panic!("needs root: lchown {}: {e}", target.display()));
                    dirs.push((target, mode));
                }
                Entry::File { data, mode } => {
                    fs_err::write(&target, data).expect("writing rootfs file");
                    set_mode(&target, mode);
                }
                Entry::Symlink { target: link } => {
                    std::os::unix::fs::symlink(&link, &target)
                        .unwrap_or_else(|e| panic!("symlink {} -> {link}: {e}", target.display()));
                }
            }
        }
        // Modes last, so a 0700 or sticky dir does not get in the way of writing.
        for (path, mode) in dirs {
            set_mode(&path, mode);
        }
        BusyboxRootfs { dir }
    }

    /// The rootfs directory.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("setting mode");
}
