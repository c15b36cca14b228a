//! The overlay backend: the step runs on an overlay whose lower dir is the stage rootfs;
//! afterwards the upper dir *is* the change (compared with lower where a copy-up may
//! have changed nothing), and is then moved into the rootfs so the next step sees it.
//! Cost follows the change, not the size of the rootfs.

mod merge;
mod mount;
mod upper;

use std::path::{Path, PathBuf};

use crate::changeset::{self, ChangeSet};
use crate::error::{Error, IoContext, Result};
use crate::ignore::IgnoreList;
use crate::links;
use crate::mode::SnapshotMode;
use crate::stat;

use mount::{Layout, Sync, XattrNamespace};

/// Snapshots a rootfs by running each step on an overlay of it. Needs mount rights
/// (root, or a user namespace on Linux >= 5.11) and a scratch dir on the same filesystem
/// as the rootfs (changes are moved into the rootfs by rename).
#[derive(Debug)]
pub struct OverlaySnapshotter {
    root: PathBuf,
    scratch: PathBuf,
    mode: SnapshotMode,
    ignore: IgnoreList,
    ns: XattrNamespace,
    sync: Sync,
    over_root: bool,
}

impl OverlaySnapshotter {
    /// Checks that an overlay of `root` can be mounted using `scratch` (created if
    /// missing; must be outside `root` and on the same filesystem), by mounting a probe.
    /// [`Error::OverlayUnavailable`] says why not.
    pub fn new(
        root: impl Into<PathBuf>,
        scratch: impl Into<PathBuf>,
        mode: SnapshotMode,
        ignore: IgnoreList,
    ) -> Result<Self> {
        let root = root.into();
        let scratch = scratch.into();
        std::fs::create_dir_all(&scratch).at("creating overlay scratch directory", &scratch)?;
        let unavailable = |reason: String| Error::OverlayUnavailable {
            path: root.clone(),
            reason,
        };
        let canon_root = std::fs::canonicalize(&root).at("resolving rootfs", &root)?;
        let canon_scratch =
            std::fs::canonicalize(&scratch).at("resolving overlay scratch directory", &scratch)?;
        if canon_scratch.starts_with(&canon_root) {
            return Err(unavailable(format!(
                "scratch directory {} lies inside the rootfs",
                scratch.display()
            )));
        }
        let rdev = stat::lstat(&root).at("stat of", &root)?.dev;
        let sdev = stat::lstat(&scratch).at("stat of", &scratch)?.dev;
        if rdev != sdev {
            return Err(unavailable(format!(
                "scratch directory {} is on another filesystem than the rootfs",
                scratch.display()
            )));
        }
        let ns = XattrNamespace::detect();
        let sync = probe(&canon_scratch, ns)?;
        tracing::debug!(root = %root.display(), ?ns, ?sync, "overlay snapshots available");
        Ok(OverlaySnapshotter {
            root: canon_root,
            scratch: canon_scratch,
            mode,
            ignore,
            ns,
            sync,
            over_root: false,
        })
    }

    /// Mount each step's overlay over the rootfs itself (the rootfs's path then
    /// shows the merged view until [`OverlayStep::finish`]) instead of on a
    /// separate `merged` dir.
    pub fn over_root(mut self, yes: bool) -> Self {
        self.over_root = yes;
        self
    }

    /// The rootfs (the overlay's lower dir).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ignore list in use.
    pub fn ignore_list(&self) -> &IgnoreList {
        &self.ignore
    }

    /// The snapshot mode in use.
    pub fn mode(&self) -> SnapshotMode {
        self.mode
    }

    /// Mounts a fresh overlay of the rootfs; run the step in [`OverlayStep::merged`], then
    /// call [`OverlayStep::finish`]. The rootfs must not be modified directly meanwhile.
    pub fn begin(&mut self) -> Result<OverlayStep<'_>> {
        let layout = Layout {
            lower: self.root.clone(),
            upper: self.scratch.join("upper"),
            work: self.scratch.join("work"),
            merged: match self.over_root {
                true => self.root.clone(),
                false => self.scratch.join("merged"),
            },
        };
        layout.create_dirs()?;
        give_root_attrs(&self.root, &layout.upper)?;
        layout.mount(self.ns, self.sync)?;
        tracing::debug!(merged = %layout.merged.display(), "overlay mounted for step");
        Ok(OverlayStep {
            snap: self,
            layout,
            mounted: true,
        })
    }
}

/// One step on a mounted overlay. Dropping it without [`OverlayStep::finish`] unmounts
/// and discards the step's changes.
#[derive(Debug)]
pub struct OverlayStep<'a> {
    snap: &'a OverlaySnapshotter,
    layout: Layout,
    mounted: bool,
}

impl OverlayStep<'_> {
    /// Where the step must run: the merged view of the rootfs.
    pub fn merged(&self) -> &Path {
        &self.layout.merged
    }

    /// Unmounts the overlay (everything mounted inside it must be unmounted already),
    /// turns the upper dir into the change set, moves the changes into the rootfs and
    /// removes the scratch dirs.
    pub fn finish(mut self) -> Result<ChangeSet> {
        self.layout.unmount()?;
        self.mounted = false;
        let snap = self.snap;
        let scan = upper::UpperScan {
            upper: &self.layout.upper,
            lower: &snap.root,
            ignore: &snap.ignore,
            mode: snap.mode,
            ns: snap.ns,
        };
        let scanned = scan.scan()?;
        merge::merge_into_lower(&self.layout.upper, &snap.root, snap.ns, &scanned.links)?;
        let linked: Vec<PathBuf> = scanned.links.into_iter().map(|l| l.rel).collect();
        let changes = changeset::build(&snap.root, scanned.changes, |wanted| {
            links::search(&snap.root, &snap.ignore, &linked, wanted)
        })?;
        self.layout.remove_dirs()?;
        tracing::debug!(root = %snap.root.display(), entries = changes.len(), "overlay snapshot diffed");
        Ok(changes)
    }
}

impl Drop for OverlayStep<'_> {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = self.layout.unmount() {
                tracing::warn!(error = %e, "could not unmount abandoned overlay step");
            } else if let Err(e) = self.layout.remove_dirs() {
                tracing::warn!(error = %e, "could not remove abandoned overlay step");
            }
        }
    }
}

/// The merged root dir shows the upper root's owner, mode and mtime: start it as the
/// rootfs's.
fn give_root_attrs(root: &Path, upper: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let st = stat::lstat(root).at("stat of", root)?;
    std::os::unix::fs::lchown(upper, Some(st.uid), Some(st.gid)).at("changing owner of", upper)?;
    std::fs::set_permissions(upper, std::fs::Permissions::from_mode(st.perms()))
        .at("changing mode of", upper)?;
    merge::set_mtime(upper, st.mtime)
}

/// Mounts and unmounts a tiny overlay in `scratch/probe`: `volatile` where the kernel
/// takes it, else the kernel's default.
fn probe(scratch: &Path, ns: XattrNamespace) -> Result<Sync> {
    match probe_with(scratch, ns, Sync::Volatile) {
        Ok(()) => Ok(Sync::Volatile),
        Err(volatile) => {
            tracing::debug!(error = %volatile, "overlay without volatile");
            probe_with(scratch, ns, Sync::Synced).map(|()| Sync::Synced)
        }
    }
}

fn probe_with(scratch: &Path, ns: XattrNamespace, sync: Sync) -> Result<()> {
    let base = scratch.join("probe");
    let layout = Layout {
        lower: base.join("lower"),
        upper: base.join("upper"),
        work: base.join("work"),
        merged: base.join("merged"),
    };
    std::fs::create_dir_all(&layout.lower).at("creating overlay probe", &layout.lower)?;
    layout.create_dirs()?;
    let mounted = layout.mount(ns, sync);
    if mounted.is_ok() {
        layout.unmount()?;
    }
    std::fs::remove_dir_all(&base).at("removing overlay probe", &base)?;
    mounted
}
