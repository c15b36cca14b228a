//! The walk backend: snapshot the whole tree before a step, walk it again after, compare.
//! Works everywhere (no mounts), cost proportional to the size of the tree.

use std::path::{Path, PathBuf};

use crate::changeset::{self, ChangeSet};
use crate::diff::diff_trees;
use crate::error::Result;
use crate::ignore::IgnoreList;
use crate::mode::SnapshotMode;
use crate::tree::Snapshot;

/// Keeps the baseline of a rootfs and diffs it after each step. The walk that computes
/// a diff becomes the baseline of the next step, so each step costs one walk.
#[derive(Debug)]
pub struct WalkSnapshotter {
    root: PathBuf,
    ignore: IgnoreList,
    baseline: Snapshot,
}

impl WalkSnapshotter {
    /// Takes the baseline of `root` (one full walk; in `Full` mode this reads every
    /// regular file once).
    pub fn new(root: impl Into<PathBuf>, mode: SnapshotMode, ignore: IgnoreList) -> Result<Self> {
        let root = root.into();
        let baseline = Snapshot::take(&root, &ignore, mode, None)?;
        Ok(WalkSnapshotter {
            root,
            ignore,
            baseline,
        })
    }

    /// The rootfs being snapshotted.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ignore list in use.
    pub fn ignore_list(&self) -> &IgnoreList {
        &self.ignore
    }

    /// The snapshot mode in use.
    pub fn mode(&self) -> SnapshotMode {
        self.baseline.mode
    }

    /// Walks the tree, returns what changed since the baseline, and makes the current
    /// state the baseline for the next step.
    pub fn diff(&mut self) -> Result<ChangeSet> {
        let current = Snapshot::take(
            &self.root,
            &self.ignore,
            self.baseline.mode,
            Some(&self.baseline),
        )?;
        let raw = diff_trees(&self.baseline.tree, &current.tree, current.mode);
        let changes = changeset::build(&self.root, raw)?;
        tracing::debug!(root = %self.root.display(), entries = changes.len(), "walk snapshot diffed");
        self.baseline = current;
        Ok(changes)
    }

    /// Makes the current state the baseline without computing a change set (after a step
    /// whose changes are not wanted in a layer).
    pub fn rebaseline(&mut self) -> Result<()> {
        self.baseline = Snapshot::take(
            &self.root,
            &self.ignore,
            self.baseline.mode,
            Some(&self.baseline),
        )?;
        Ok(())
    }
}
