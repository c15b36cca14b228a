//! Hard link groups that reach outside what a step changed.
//!
//! `ln old new` in a step changes only the link count and ctime of `old`, which no
//! backend counts as a change (they say "touched", not "changed"), so the change
//! would hold `new` alone and the image would end up with two separate files.
//! overlayfs, which Docker and buildah's overlay driver use, copies `old` up to link
//! it, so their layers hold both names as one group. The change set does the same:
//! when a captured regular file has more links than captured names, its other names
//! are looked up here and captured too. Each backend supplies the lookup it can do
//! cheaply: the walk searches the snapshot it just took (in memory); the overlay
//! backend first tries the names the upper dir held with several links, and reads
//! the rootfs's directories (no stat but for matching inode numbers) only for names
//! that are still missing.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirEntryExt;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::ignore::IgnoreList;
use crate::stat::{self, FileType};
use crate::tree::DirNode;

/// An inode: (device, inode number).
pub(crate) type InodeKey = (u64, u64);

/// Inodes whose names are wanted, each with its link count (how many names it has,
/// including those already captured and those in ignored paths).
pub(crate) type Wanted = BTreeMap<InodeKey, u32>;

/// Every name of a `wanted` inode in a walk snapshot (paths relative to its root).
pub(crate) fn in_tree(tree: &DirNode, wanted: &Wanted) -> Vec<PathBuf> {
    let mut out = Vec::new();
    collect_in_tree(tree, Path::new(""), wanted, &mut out);
    out
}

fn collect_in_tree(dir: &DirNode, rel: &Path, wanted: &Wanted, out: &mut Vec<PathBuf>) {
    for node in &dir.entries {
        let path = rel.join(OsStr::from_bytes(&node.name));
        if let Some(sub) = node.dir.as_deref() {
            collect_in_tree(sub, &path, wanted, out);
        } else {
            let st = &node.rec.stat;
            if st.file_type() == FileType::File
                && st.nlink > 1
                && wanted.contains_key(&(st.dev, st.ino))
            {
                out.push(path);
            }
        }
    }
}

/// The names of `wanted` inodes under `root` (relative paths, sorted): first among
/// `candidates` (relative paths likely to be names of them), then, for inodes with
/// names still unaccounted for, by reading every directory of the tree that is not
/// ignored, until every link is accounted for. Symlinks are never followed.
pub(crate) fn search(
    root: &Path,
    ignore: &IgnoreList,
    candidates: &[PathBuf],
    wanted: &Wanted,
) -> Result<Vec<PathBuf>> {
    let mut missing = wanted.clone();
    let mut found = BTreeSet::new();
    for rel in candidates {
        let path = root.join(rel);
        let st = match stat::lstat(&path) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e).at("stat of", &path),
        };
        if st.file_type() == FileType::File
            && !found.contains(rel)
            && take(&mut missing, (st.dev, st.ino))
        {
            found.insert(rel.clone());
        }
    }
    if missing.is_empty() {
        return Ok(found.into_iter().collect());
    }
    tracing::debug!(
        root = %root.display(),
        inodes = missing.len(),
        "reading the rootfs for other names of hard-linked files"
    );
    let mut search = Search {
        root,
        ignore,
        missing,
        found,
    };
    search.dir(Path::new(""))?;
    Ok(search.found.into_iter().collect())
}

/// Counts one name of `key` as found; false when it was not wanted (or all its names
/// are found).
fn take(missing: &mut Wanted, key: InodeKey) -> bool {
    match missing.get_mut(&key) {
        Some(n) => {
            *n -= 1;
            if *n == 0 {
                missing.remove(&key);
            }
            true
        }
        None => false,
    }
}

struct Search<'a> {
    root: &'a Path,
    ignore: &'a IgnoreList,
    missing: Wanted,
    found: BTreeSet<PathBuf>,
}

impl Search<'_> {
    fn dir(&mut self, rel: &Path) -> Result<()> {
        let dir = self.root.join(rel);
        let mut subdirs = Vec::new();
        for entry in std::fs::read_dir(&dir).at("reading directory", &dir)? {
            if self.missing.is_empty() {
                return Ok(());
            }
            let entry = entry.at("reading directory", &dir)?;
            let child = rel.join(entry.file_name());
            if self.ignore.is_ignored(&child) {
                continue;
            }
            // d_type and d_ino: no stat unless the inode number is a wanted one.
            let ft = entry.file_type().at("reading directory", &dir)?;
            if ft.is_dir() {
                subdirs.push(child);
            } else if ft.is_file() && self.missing.keys().any(|&(_, ino)| ino == entry.ino()) {
                let path = self.root.join(&child);
                let st = stat::lstat(&path).at("stat of", &path)?;
                if st.file_type() == FileType::File
                    && !self.found.contains(&child)
                    && take(&mut self.missing, (st.dev, st.ino))
                {
                    self.found.insert(child);
                }
            }
        }
        for sub in subdirs {
            self.dir(&sub)?;
        }
        Ok(())
    }
}
