//! Snapshots of a stage's files for RUN (and single-snapshot mode): the
//! kiln-snapshot backend chosen for the stage (overlay where mounts are
//! allowed, else a walk), its ignore list, and the stage's one layer in
//! single-snapshot mode.

use super::state::{StageRun, StepResult};

impl<'a, 'b> StageRun<'a, 'b> {
    pub(super) fn ensure_snapshotter(&mut self) -> StepResult<()> {
        if self.snapshotter.is_some() {
            return Ok(());
        }
        let root = self
            .rootfs
            .clone()
            .ok_or("internal: a snapshot of a stage without a filesystem")?;
        let ignore = match &self.env.in_place_ignore {
            Some(list) => list.clone(),
            None => {
                let mut ignore = kiln_snapshot::IgnoreList::new();
                for p in ["/proc", "/sys", "/dev", "/etc/mtab"] {
                    ignore.add(p).map_err(|e| e.to_string())?;
                }
                if self.env.options.ignore_var_run {
                    ignore.add("/var/run").map_err(|e| e.to_string())?;
                }
                for p in &self.env.options.ignore_paths {
                    ignore.add(p).map_err(|e| e.to_string())?;
                }
                ignore
            }
        };
        let mode = match self.env.options.snapshot_mode {
            crate::options::SnapshotMode::Full => kiln_snapshot::SnapshotMode::Full,
            crate::options::SnapshotMode::Redo => kiln_snapshot::SnapshotMode::Redo,
            crate::options::SnapshotMode::Time => kiln_snapshot::SnapshotMode::Time,
        };
        // An overlay over the stage root where mounts are allowed (its upper
        // dir is the change, whatever the size of the root); a walk in place
        // (`/` cannot be overlaid under ourselves), for single-snapshot stages
        // (one baseline for all steps) and wherever overlay cannot be mounted.
        let backend = if self.env.in_place || self.env.options.single_snapshot {
            kiln_snapshot::BackendChoice::Walk
        } else {
            kiln_snapshot::BackendChoice::Auto
        };
        let options = kiln_snapshot::SnapshotOptions {
            mode,
            ignore,
            backend,
            scratch: Some(self.env.work.join(format!("overlay-{}", self.stage.index))),
            overlay_over_root: true,
        };
        let snap = kiln_snapshot::Snapshotter::new(root, options)
            .map_err(|e| format!("preparing the filesystem snapshots: {e}"))?;
        tracing::debug!(backend = ?snap.backend(), "snapshot backend");
        self.snapshotter = Some(snap);
        Ok(())
    }

    pub(super) fn finish_single_snapshot(&mut self) -> StepResult<()> {
        let changes = self
            .snapshotter
            .as_mut()
            .ok_or("internal: no snapshotter")?
            .begin()
            .and_then(|s| s.finish())
            .map_err(|e| format!("snapshotting the stage: {e}"))?;
        let steps = std::mem::take(&mut self.single_snapshot_steps);
        let created_by = if steps.is_empty() {
            "single snapshot".to_string()
        } else {
            steps.join(" && ")
        };
        self.push_layer(changes.into_entries(), created_by)?;
        Ok(())
    }
}
