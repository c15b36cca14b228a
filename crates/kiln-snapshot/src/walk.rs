//! The walk backend: snapshot the whole tree before a step, walk it again after, compare.
//! Works everywhere (no mounts). The first walk costs the size of the tree; after a step,
//! an inotify journal limits the walk to the directories where something happened (a
//! full walk again when the journal is unavailable or lost events).

use std::path::{Path, PathBuf};

use crate::changeset::{self, ChangeSet};
use crate::diff::diff_trees;
use crate::error::Result;
use crate::ignore::IgnoreList;
use crate::journal::Journal;
use crate::links;
use crate::mode::SnapshotMode;
use crate::tree::Snapshot;

/// Keeps the baseline of a rootfs and diffs it after each step. The walk that computes
/// a diff becomes the baseline of the next step, so each step costs one walk.
#[derive(Debug)]
pub struct WalkSnapshotter {
    root: PathBuf,
    ignore: IgnoreList,
    baseline: Snapshot,
    /// Watches the directories of the baseline; `None` where inotify is unavailable.
    journal: Option<Journal>,
}

impl WalkSnapshotter {
    /// Takes the baseline of `root` (one full walk; in `Full` mode this reads every
    /// regular file once).
    pub fn new(root: impl Into<PathBuf>, mode: SnapshotMode, ignore: IgnoreList) -> Result<Self> {
        let root = root.into();
        let journal = Journal::new();
        let baseline = Snapshot::take(&root, &ignore, mode, None, journal.as_ref())?;
        Ok(WalkSnapshotter {
            root,
            ignore,
            baseline,
            journal,
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
        let (current, changes) = self.or_forget(|w| {
            let current = w.current()?;
            let raw = diff_trees(&w.baseline.tree, &current.tree, current.mode);
            let changes = changeset::build(&w.root, raw, |wanted| {
                Ok(links::in_tree(&current.tree, wanted))
            })?;
            Ok((current, changes))
        })?;
        tracing::debug!(root = %self.root.display(), entries = changes.len(), "walk snapshot diffed");
        self.baseline = current;
        Ok(changes)
    }

    /// Makes the current state the baseline without computing a change set (after a step
    /// whose changes are not wanted in a layer).
    pub fn rebaseline(&mut self) -> Result<()> {
        self.baseline = self.or_forget(Self::current)?;
        Ok(())
    }

    /// Runs `f`; when it fails, the journal's drained events were not acted upon, so the
    /// next diff walks the whole tree instead of missing them.
    fn or_forget<T>(&self, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        let result = f(self);
        if result.is_err()
            && let Some(journal) = &self.journal
        {
            journal.invalidate();
        }
        result
    }

    /// The tree as it is now: refreshed from the baseline with the journal's events, or
    /// walked whole without a journal.
    fn current(&self) -> Result<Snapshot> {
        match &self.journal {
            Some(journal) => Snapshot::refresh(&self.root, &self.ignore, &self.baseline, journal),
            None => Snapshot::take(
                &self.root,
                &self.ignore,
                self.baseline.mode,
                Some(&self.baseline),
                None,
            ),
        }
    }
}
