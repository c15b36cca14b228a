//! The compact per-path record a baseline keeps (stat plus digests, never contents), how
//! it is filled, and the one comparison both backends use to decide "changed".

use std::path::{Path, PathBuf};

use crate::attrs::{self, ContentHash, Digest128};
use crate::error::Result;
use crate::mode::SnapshotMode;
use crate::stat::{FileType, Stat, Timespec};

/// What a snapshot remembers about one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    pub stat: Stat,
    /// Digest of the xattrs (zero for none).
    pub xattrs: Digest128,
    /// Digest of the symlink target (zero for non-symlinks).
    pub link: Digest128,
    /// Content hash of a regular file, in `Full` mode.
    pub content: Option<ContentHash>,
}

impl Record {
    /// Reads everything stat does not give for `path`: xattrs, the symlink target and, in
    /// `Full` mode, the content hash.
    pub fn read(path: &Path, stat: Stat, mode: SnapshotMode) -> Result<Record> {
        let xattrs = attrs::xattr_digest(&attrs::read_xattrs(path)?);
        let ft = stat.file_type();
        let link = if ft == FileType::Symlink {
            attrs::link_digest(&attrs::read_link(path)?)
        } else {
            [0; 16]
        };
        let content = if ft == FileType::File && mode.hashes_content() {
            Some(attrs::content_hash(path)?)
        } else {
            None
        };
        Ok(Record {
            stat,
            xattrs,
            link,
            content,
        })
    }

    /// Builds the record for `path` now stat'ed as `stat`, reusing what `old` knew when
    /// the inode is untouched (same inode, same ctime) — the common case, which then
    /// costs no read at all. `racy_since`: inodes whose old ctime is at or after this
    /// instant were recorded too close to a change to trust their ctime (coarse kernel
    /// timestamps), so their content is hashed again in `Full` mode.
    pub fn refresh(
        path: impl FnOnce() -> PathBuf,
        stat: Stat,
        old: Option<&Record>,
        mode: SnapshotMode,
        racy_since: Option<Timespec>,
    ) -> Result<Record> {
        if let Some(old) = old
            && old.stat.same_inode(&stat)
            && old.stat.ctime == stat.ctime
            && old.stat.mode == stat.mode
            && (old.content.is_some()
                || !mode.hashes_content()
                || stat.file_type() != FileType::File)
        {
            let mut rec = *old;
            rec.stat = stat;
            if mode.hashes_content()
                && stat.file_type() == FileType::File
                && racy_since.is_some_and(|t| old.stat.ctime >= t)
            {
                rec.content = Some(attrs::content_hash(&path())?);
            }
            return Ok(rec);
        }
        Record::read(&path(), stat, mode)
    }
}

/// True when `new` differs from `old` in a way `mode` counts. Both backends decide with
/// this function, which is what makes their change sets identical. Hard link counts and
/// ctime are deliberately not compared: they say the inode was touched, not that what a
/// layer stores changed.
pub(crate) fn differs(old: &Record, new: &Record, mode: SnapshotMode) -> bool {
    let (o, n) = (&old.stat, &new.stat);
    if o.file_type() != n.file_type() {
        return true;
    }
    if o.mtime != n.mtime {
        return true;
    }
    if mode == SnapshotMode::Time {
        return false;
    }
    let is_dir = n.file_type() == FileType::Dir;
    if o.perms() != n.perms()
        || o.uid != n.uid
        || o.gid != n.gid
        || (!is_dir && o.size != n.size)
        || o.rdev != n.rdev
        || old.xattrs != new.xattrs
        || old.link != new.link
    {
        return true;
    }
    mode.hashes_content() && old.content != new.content
}
