//! Turning raw changes into the layer entries kiln-layer writes: parent directories
//! added as Docker does, each path described from disk once (stat, xattrs, link
//! target; file contents stay on disk as a source path), hard link groups completed
//! with names the step did not change (`links.rs`) and resolved, everything in layer
//! order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_layer::{Entry, EntryKind, LayerPath, Metadata, Timestamp};
use rayon::prelude::*;

use crate::attrs;
use crate::diff::RawChange;
use crate::error::{Error, IoContext, Result};
use crate::links::{InodeKey, Wanted};
use crate::stat::{self, FileType};

/// What a step changed, as layer entries in layer order (kiln-layer's order: parents
/// before children, opaque marker then whiteouts first inside a directory). Regular
/// files are [`kiln_layer::FileSource::Path`]s into the rootfs, read when the layer is
/// written; the rootfs must not change until then.
#[derive(Debug, Clone, Default)]
pub struct ChangeSet {
    entries: Vec<Entry>,
}

impl ChangeSet {
    /// The entries, in layer order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entries, in layer order, by value.
    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the step changed nothing that is captured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// An entry and, for a regular file with other links, its inode and link count.
type Described = (Entry, Option<(InodeKey, u32)>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Upsert,
    Opaque,
    Whiteout,
}

/// Describes `raw` changes of the tree at `root` as a [`ChangeSet`]. A captured regular
/// file with more links than captured names brings its other names along (one hard
/// link group in the layer, as overlayfs copies the old name up): `names_of` returns
/// every name (relative to `root`) of the inodes it is given.
pub(crate) fn build(
    root: &Path,
    raw: Vec<RawChange>,
    names_of: impl FnOnce(&Wanted) -> Result<Vec<PathBuf>>,
) -> Result<ChangeSet> {
    let mut paths: BTreeMap<PathBuf, Kind> = BTreeMap::new();
    for change in raw {
        let (path, kind) = match change {
            RawChange::Upsert(p) => (p, Kind::Upsert),
            RawChange::Opaque(p) => (p, Kind::Opaque),
            RawChange::Whiteout(p) => (p, Kind::Whiteout),
        };
        add_with_parents(&mut paths, path, kind);
    }
    let mut entries = describe_all(root, &paths)?;
    let wanted = incomplete_groups(&entries);
    if !wanted.is_empty() {
        let mut more = BTreeMap::new();
        for name in names_of(&wanted)? {
            if !paths.contains_key(&name) {
                add_with_parents(&mut more, name, Kind::Upsert);
            }
        }
        more.retain(|p, _| !paths.contains_key(p));
        tracing::debug!(
            inodes = wanted.len(),
            names = more.len(),
            "hard link groups completed with unchanged names"
        );
        entries.extend(describe_all(root, &more)?);
    }
    entries.sort_by(|a, b| kiln_layer::compare_entries(&a.0, &b.0));
    let mut first_of_inode: BTreeMap<InodeKey, LayerPath> = BTreeMap::new();
    let entries = entries
        .into_iter()
        .map(|(entry, inode)| match inode {
            Some((key, _)) => match first_of_inode.get(&key) {
                Some(target) => Entry::hardlink(entry.path, target.clone(), entry.meta),
                None => {
                    first_of_inode.insert(key, entry.path.clone());
                    entry
                }
            },
            None => entry,
        })
        .collect();
    Ok(ChangeSet { entries })
}

/// Records `path` as `kind`, and its parents (never the root) as directories to write
/// unless already recorded.
fn add_with_parents(paths: &mut BTreeMap<PathBuf, Kind>, path: PathBuf, kind: Kind) {
    for ancestor in path.ancestors().skip(1) {
        if ancestor.as_os_str().is_empty() {
            break;
        }
        paths.entry(ancestor.to_path_buf()).or_insert(Kind::Upsert);
    }
    paths.insert(path, kind);
}

fn describe_all(root: &Path, paths: &BTreeMap<PathBuf, Kind>) -> Result<Vec<Described>> {
    let described: Vec<Vec<Described>> = paths
        .par_iter()
        .map(|(rel, kind)| describe(root, rel, *kind))
        .collect::<Result<_>>()?;
    Ok(described.into_iter().flatten().collect())
}

/// The inodes of captured regular files that have more links than captured names,
/// with their link counts.
fn incomplete_groups(entries: &[Described]) -> Wanted {
    let mut captured: BTreeMap<InodeKey, (u32, u32)> = BTreeMap::new();
    for (_, inode) in entries {
        if let Some((key, nlink)) = inode {
            captured.entry(*key).or_insert((*nlink, 0)).1 += 1;
        }
    }
    captured
        .into_iter()
        .filter(|(_, (nlink, names))| names < nlink)
        .map(|(key, (nlink, _))| (key, nlink))
        .collect()
}

fn layer_path(rel: &Path) -> Result<LayerPath> {
    LayerPath::from_os(rel).map_err(|e| Error::InvalidPath {
        path: rel.to_path_buf(),
        reason: e.reason,
    })
}

/// The entries for one path as it is on disk now, with the (dev, ino) of regular files
/// that have other links.
fn describe(root: &Path, rel: &Path, kind: Kind) -> Result<Vec<Described>> {
    let lp = layer_path(rel)?;
    if kind == Kind::Whiteout {
        return Ok(vec![(Entry::whiteout(lp), None)]);
    }
    let path = root.join(rel);
    let st = stat::lstat(&path).at("stat of", &path)?;
    let meta = Metadata {
        mode: st.perms(),
        uid: u64::from(st.uid),
        gid: u64::from(st.gid),
        user_name: None,
        group_name: None,
        mtime: Timestamp {
            sec: st.mtime.sec,
            nsec: st.mtime.nsec,
        },
        xattrs: attrs::read_xattrs(&path)?,
    };
    let (major, minor) = (libc::major(st.rdev), libc::minor(st.rdev));
    let mut inode = None;
    let entry = match st.file_type() {
        FileType::File => {
            if st.nlink > 1 {
                inode = Some(((st.dev, st.ino), st.nlink));
            }
            Entry::file(lp.clone(), path.clone(), meta)
        }
        FileType::Dir => Entry::dir(lp.clone(), meta),
        FileType::Symlink => Entry::symlink(lp.clone(), attrs::read_link(&path)?, meta),
        FileType::CharDevice => Entry {
            path: lp.clone(),
            kind: EntryKind::CharDevice { major, minor },
            meta,
        },
        FileType::BlockDevice => Entry {
            path: lp.clone(),
            kind: EntryKind::BlockDevice { major, minor },
            meta,
        },
        FileType::Fifo => Entry {
            path: lp.clone(),
            kind: EntryKind::Fifo,
            meta,
        },
        FileType::Socket => {
            tracing::debug!(path = %path.display(), "socket not captured: tar cannot store it");
            return Ok(Vec::new());
        }
    };
    let mut out = vec![(entry, inode)];
    if kind == Kind::Opaque {
        if st.file_type() != FileType::Dir {
            return Err(Error::InvalidPath {
                path,
                reason: "an opaque directory is no longer a directory",
            });
        }
        out.push((Entry::opaque_dir(lp), None));
    }
    Ok(out)
}
