//! Reading an overlay's upper dir as raw changes against its lower dir. Cost follows the
//! upper dir (what the step touched), never the lower tree.
//!
//! overlayfs copies a file up when it is merely opened for writing, chmod'ed to the same
//! mode, linked, ... so every non-directory in upper is compared with its lower
//! counterpart using the same decision as the walk backend ([`crate::record::differs`]),
//! contents included in `Full` mode.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::attrs;
use crate::diff::RawChange;
use crate::error::{IoContext, Result};
use crate::ignore::IgnoreList;
use crate::links::InodeKey;
use crate::mode::SnapshotMode;
use crate::record::{Record, differs};
use crate::stat::{self, FileType, Stat};

use super::mount::XattrNamespace;

/// True for overlayfs' whiteout: a character device 0:0.
pub(crate) fn is_whiteout(st: &Stat) -> bool {
    st.file_type() == FileType::CharDevice && st.rdev == 0
}

/// True when the upper directory at `path` carries the opaque marker.
pub(crate) fn is_opaque(path: &Path, ns: XattrNamespace) -> Result<bool> {
    match xattr::get(path, ns.opaque_name()) {
        Ok(v) => Ok(v.as_deref() == Some(b"y")),
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Ok(false),
        Err(e) => Err(e).at("reading overlay opaque marker of", path),
    }
}

/// A regular file in the upper dir with several links: one name of an upper inode.
/// A link made in the step lives in upper with the name it links to (copied up).
#[derive(Debug, Clone)]
pub(crate) struct UpperLink {
    /// Relative to the upper dir (and the rootfs).
    pub rel: PathBuf,
    /// The upper inode.
    pub inode: InodeKey,
    /// The lower dir has this path's parent and shows it through (not hidden by an
    /// opaque or new directory).
    pub lower_visible: bool,
}

/// What the upper dir holds: the raw changes, and its names of hard-linked files.
#[derive(Debug, Default)]
pub(crate) struct Scanned {
    pub changes: Vec<RawChange>,
    pub links: Vec<UpperLink>,
}

pub(crate) struct UpperScan<'a> {
    pub upper: &'a Path,
    pub lower: &'a Path,
    pub ignore: &'a IgnoreList,
    pub mode: SnapshotMode,
    pub ns: XattrNamespace,
}

impl UpperScan<'_> {
    /// The raw changes in upper, compared with lower, and the hard-linked files.
    pub fn scan(&self) -> Result<Scanned> {
        let mut out = Scanned::default();
        self.scan_dir(Path::new(""), true, &mut out)?;
        Ok(out)
    }

    /// `lower_visible`: the lower directory at `rel` exists and shows through (not
    /// hidden by an opaque or new directory).
    fn scan_dir(&self, rel: &Path, lower_visible: bool, out: &mut Scanned) -> Result<()> {
        let dir = self.upper.join(rel);
        let mut names: Vec<OsString> = std::fs::read_dir(&dir)
            .at("reading upper directory", &dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .at("reading upper directory", &dir)?;
        names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let child = rel.join(&name);
            if self.ignore.is_ignored(&child) {
                continue;
            }
            self.scan_entry(&child, lower_visible, out)?;
        }
        Ok(())
    }

    fn scan_entry(&self, rel: &Path, lower_visible: bool, out: &mut Scanned) -> Result<()> {
        let up = self.upper.join(rel);
        let ust = stat::lstat(&up).at("stat of", &up)?;
        let low = self.lower.join(rel);
        let lst = if lower_visible {
            match stat::lstat(&low) {
                Ok(st) => Some(st),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
                Err(e) => return Err(e).at("stat of", &low),
            }
        } else {
            None
        };
        if is_whiteout(&ust) {
            if lst.is_some() {
                out.changes.push(RawChange::Whiteout(rel.to_path_buf()));
            }
            return Ok(());
        }
        if ust.file_type() == FileType::Dir {
            match lst {
                Some(l) if l.file_type() == FileType::Dir && !is_opaque(&up, self.ns)? => {
                    if self.differs(&low, l, &up, ust)? {
                        out.changes.push(RawChange::Upsert(rel.to_path_buf()));
                    }
                    self.scan_dir(rel, true, out)
                }
                Some(_) => {
                    out.changes.push(RawChange::Opaque(rel.to_path_buf()));
                    self.scan_dir(rel, false, out)
                }
                None => {
                    out.changes.push(RawChange::Upsert(rel.to_path_buf()));
                    self.scan_dir(rel, false, out)
                }
            }
        } else {
            if ust.file_type() == FileType::File && ust.nlink > 1 {
                out.links.push(UpperLink {
                    rel: rel.to_path_buf(),
                    inode: (ust.dev, ust.ino),
                    lower_visible,
                });
            }
            let changed = match lst {
                Some(l) => self.differs(&low, l, &up, ust)?,
                None => true,
            };
            if changed {
                out.changes.push(RawChange::Upsert(rel.to_path_buf()));
            }
            Ok(())
        }
    }

    /// The walk backend's decision, applied to lower vs upper. Contents are compared last
    /// and only when everything else is equal.
    fn differs(&self, low: &Path, lst: Stat, up: &Path, ust: Stat) -> Result<bool> {
        let cheap = if self.mode == SnapshotMode::Full {
            SnapshotMode::Redo
        } else {
            self.mode
        };
        let old = Record::read(low, lst, cheap)?;
        let new = Record::read(up, ust, cheap)?;
        if differs(&old, &new, cheap) {
            return Ok(true);
        }
        if self.mode.hashes_content() && ust.file_type() == FileType::File {
            return Ok(attrs::content_hash(low)? != attrs::content_hash(up)?);
        }
        Ok(false)
    }
}
