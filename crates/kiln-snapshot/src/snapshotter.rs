//! One API over both backends: what the engine drives, one step at a time.

use std::path::{Path, PathBuf};

use crate::changeset::ChangeSet;
use crate::error::{Error, Result};
use crate::ignore::IgnoreList;
use crate::mode::SnapshotMode;
use crate::overlay::{OverlaySnapshotter, OverlayStep};
use crate::walk::WalkSnapshotter;

/// Which backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// Overlay where it can be mounted, else walk (said at debug level).
    #[default]
    Auto,
    /// Always walk.
    Walk,
    /// Overlay or an error.
    Overlay,
}

/// The backend in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// [`WalkSnapshotter`].
    Walk,
    /// [`OverlaySnapshotter`].
    Overlay,
}

/// How to snapshot a rootfs.
#[derive(Debug, Clone, Default)]
pub struct SnapshotOptions {
    /// kaniko's `--snapshot-mode`.
    pub mode: SnapshotMode,
    /// Paths never captured.
    pub ignore: IgnoreList,
    /// Backend preference.
    pub backend: BackendChoice,
    /// Scratch dir for the overlay backend: outside the rootfs, on its filesystem.
    /// `None` means a `.kiln-overlay` sibling of the rootfs.
    pub scratch: Option<PathBuf>,
    /// Mount each step's overlay over the rootfs itself, so that the step runs
    /// at the rootfs's own path ([`Step::root`] is the rootfs for both
    /// backends): for runners that fix the root path before a step begins.
    pub overlay_over_root: bool,
}

/// Snapshots one rootfs across the steps of a stage.
#[derive(Debug)]
pub struct Snapshotter {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Walk(WalkSnapshotter),
    Overlay(OverlaySnapshotter),
}

impl Snapshotter {
    /// Prepares snapshots of `root`: checks overlay support or takes the walk baseline.
    pub fn new(root: impl Into<PathBuf>, options: SnapshotOptions) -> Result<Self> {
        let root = root.into();
        let walk = |ignore| WalkSnapshotter::new(&root, options.mode, ignore).map(Inner::Walk);
        let inner = match options.backend {
            BackendChoice::Walk => walk(options.ignore)?,
            BackendChoice::Overlay => Inner::Overlay(
                OverlaySnapshotter::new(
                    &root,
                    scratch_for(&root, options.scratch.as_deref())?,
                    options.mode,
                    options.ignore,
                )?
                .over_root(options.overlay_over_root),
            ),
            BackendChoice::Auto => match OverlaySnapshotter::new(
                &root,
                scratch_for(&root, options.scratch.as_deref())?,
                options.mode,
                options.ignore.clone(),
            ) {
                Ok(o) => Inner::Overlay(o.over_root(options.overlay_over_root)),
                Err(e @ Error::OverlayUnavailable { .. }) => {
                    tracing::debug!(reason = %e, "falling back to walk snapshots");
                    walk(options.ignore)?
                }
                Err(e) => return Err(e),
            },
        };
        Ok(Snapshotter { inner })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Walk(_) => Backend::Walk,
            Inner::Overlay(_) => Backend::Overlay,
        }
    }

    /// Starts a step: run it in [`Step::root`], then [`Step::finish`] for its changes.
    pub fn begin(&mut self) -> Result<Step<'_>> {
        Ok(Step {
            inner: match &mut self.inner {
                Inner::Walk(w) => StepInner::Walk(w),
                Inner::Overlay(o) => StepInner::Overlay(o.begin()?),
            },
        })
    }

    /// Accepts changes made to the rootfs outside a step as the new baseline (walk; the
    /// overlay backend has no baseline to refresh).
    pub fn rebaseline(&mut self) -> Result<()> {
        match &mut self.inner {
            Inner::Walk(w) => w.rebaseline(),
            Inner::Overlay(_) => Ok(()),
        }
    }
}

/// One step in progress.
#[derive(Debug)]
pub struct Step<'a> {
    inner: StepInner<'a>,
}

#[derive(Debug)]
enum StepInner<'a> {
    Walk(&'a mut WalkSnapshotter),
    Overlay(OverlayStep<'a>),
}

impl Step<'_> {
    /// The directory the step must run in (and write to): the rootfs itself for the walk
    /// backend, the overlay's merged view for the overlay backend (the rootfs's own
    /// path too with [`SnapshotOptions::overlay_over_root`]).
    pub fn root(&self) -> &Path {
        match &self.inner {
            StepInner::Walk(w) => w.root(),
            StepInner::Overlay(o) => o.merged(),
        }
    }

    /// Ends the step: its change set, the rootfs updated, the next baseline taken.
    pub fn finish(self) -> Result<ChangeSet> {
        match self.inner {
            StepInner::Walk(w) => w.diff(),
            StepInner::Overlay(o) => o.finish(),
        }
    }
}

fn scratch_for(root: &Path, scratch: Option<&Path>) -> Result<PathBuf> {
    if let Some(s) = scratch {
        return Ok(s.to_path_buf());
    }
    let name = root.file_name().ok_or_else(|| Error::InvalidPath {
        path: root.to_path_buf(),
        reason: "the rootfs needs a parent directory for the overlay scratch dir",
    })?;
    let mut scratch_name = std::ffi::OsString::from(".kiln-overlay-");
    scratch_name.push(name);
    Ok(root.with_file_name(scratch_name))
}
