//! Comparing two snapshots of the same tree into raw changes: which paths to write, which
//! to white out, which directories are opaque. In memory, no I/O.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::mode::SnapshotMode;
use crate::record::differs;
use crate::stat::FileType;
use crate::tree::{DirNode, Node};

/// One change found by a backend, before it is described as a layer entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum RawChange {
    /// The path is new or changed: write what is there now.
    Upsert(PathBuf),
    /// The path was removed.
    Whiteout(PathBuf),
    /// The directory replaces what was at its path before (a deleted and recreated
    /// directory, or a directory where a non-directory was): nothing below it in lower
    /// layers survives. Its current contents are listed as separate upserts.
    Opaque(PathBuf),
}

/// The changes that turn `old` into `new`.
pub(crate) fn diff_trees(old: &DirNode, new: &DirNode, mode: SnapshotMode) -> Vec<RawChange> {
    let mut out = Vec::new();
    diff_dir(Some(old), new, Path::new(""), mode, &mut out);
    out
}

fn diff_dir(
    old: Option<&DirNode>,
    new: &DirNode,
    rel: &Path,
    mode: SnapshotMode,
    out: &mut Vec<RawChange>,
) {
    let old_entries: &[Node] = old.map_or(&[], |o| &o.entries);
    let (mut i, mut j) = (0, 0);
    while i < old_entries.len() || j < new.entries.len() {
        let o = old_entries.get(i);
        let n = new.entries.get(j);
        match (o, n) {
            (Some(o), Some(n)) if o.name == n.name => {
                diff_node(Some(o), n, rel, mode, out);
                i += 1;
                j += 1;
            }
            (Some(o), Some(n)) if o.name < n.name => {
                out.push(RawChange::Whiteout(rel.join(name(o))));
                i += 1;
            }
            (Some(o), None) => {
                out.push(RawChange::Whiteout(rel.join(name(o))));
                i += 1;
            }
            (_, Some(n)) => {
                diff_node(None, n, rel, mode, out);
                j += 1;
            }
            (None, None) => unreachable!("loop condition"),
        }
    }
}

fn diff_node(
    old: Option<&Node>,
    new: &Node,
    rel: &Path,
    mode: SnapshotMode,
    out: &mut Vec<RawChange>,
) {
    let path = rel.join(name(new));
    let new_is_dir = new.rec.stat.file_type() == FileType::Dir;
    match old {
        None => {
            out.push(RawChange::Upsert(path.clone()));
            if let Some(d) = new.dir.as_deref() {
                diff_dir(None, d, &path, mode, out);
            }
        }
        Some(old) if new_is_dir => {
            let same_dir =
                old.rec.stat.file_type() == FileType::Dir && old.rec.stat.same_inode(&new.rec.stat);
            let empty = DirNode::default();
            let new_dir = new.dir.as_deref().unwrap_or(&empty);
            if same_dir {
                if differs(&old.rec, &new.rec, mode) {
                    out.push(RawChange::Upsert(path.clone()));
                }
                // A subtree shared by both snapshots was not touched.
                let shared =
                    matches!((&old.dir, &new.dir), (Some(a), Some(b)) if Arc::ptr_eq(a, b));
                if !shared {
                    diff_dir(old.dir.as_deref(), new_dir, &path, mode, out);
                }
            } else {
                out.push(RawChange::Opaque(path.clone()));
                diff_dir(None, new_dir, &path, mode, out);
            }
        }
        Some(old) => {
            if differs(&old.rec, &new.rec, mode) {
                out.push(RawChange::Upsert(path));
            }
        }
    }
}

fn name(n: &Node) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(&n.name)
}
