//! kaniko's `--snapshot-mode`: which differences count as a change.

use std::fmt;
use std::str::FromStr;

/// Which differences between the baseline and the current tree make a path part of the
/// change set. Type changes, additions and deletions always count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotMode {
    /// kaniko's default: permissions, owner, mtime, size, xattrs, symlink target and the
    /// content of regular files. Contents are hashed once when a file is first seen
    /// and afterwards only when its inode changed (ctime, inode number) or its stat is
    /// too recent to be trusted, never for untouched files.
    #[default]
    Full,
    /// Like `Full` but never reads contents: a rewrite keeping size and mtime is missed.
    Redo,
    /// Only the modification time (and type) counts.
    Time,
}

impl SnapshotMode {
    /// Whether regular-file contents are hashed.
    pub fn hashes_content(self) -> bool {
        matches!(self, SnapshotMode::Full)
    }
}

impl fmt::Display for SnapshotMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SnapshotMode::Full => "full",
            SnapshotMode::Redo => "redo",
            SnapshotMode::Time => "time",
        })
    }
}

/// An unknown `--snapshot-mode` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown snapshot mode {0:?}: expected full, redo or time")]
pub struct UnknownSnapshotMode(pub String);

impl FromStr for SnapshotMode {
    type Err = UnknownSnapshotMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(SnapshotMode::Full),
            "redo" => Ok(SnapshotMode::Redo),
            "time" => Ok(SnapshotMode::Time),
            other => Err(UnknownSnapshotMode(other.to_owned())),
        }
    }
}
