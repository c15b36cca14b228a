//! A stage's files: laid out on first use from what is pending (an earlier
//! stage's tree, base and cached layers, VOLUME directories), in the stage's
//! private directory, or on `/` itself in kaniko's in-place model. With the
//! cache on, the layer blobs it lacks are fetched only here, through the pull
//! pipeline (concurrent bounded downloads applied as they arrive).

use std::path::{Path, PathBuf};

use kiln_oci::Descriptor;

use crate::pull::pipeline::Fetch;
use crate::rootfs_path::{host_of, join_workdir, resolve_in_root};
use crate::tree_copy::{copy_tree, copy_tree_filtered};

use super::state::{PendingRoot, StageRun, StepResult};

impl<'a, 'b> StageRun<'a, 'b> {
    /// The stage's filesystem, laid out on first use: the base (an earlier
    /// stage's tree or the base image's layers) then every cached layer since.
    pub(super) fn root(&mut self) -> StepResult<PathBuf> {
        if let Some(root) = &self.rootfs {
            return Ok(root.clone());
        }
        let mut pending = self
            .pending
            .take()
            .ok_or("internal: a stage without a filesystem")?;
        let workdirs = std::mem::take(&mut pending.workdirs);
        let layers = pending.layers.clone();
        let root = self.while_fetching(&layers, || {
            if self.env.in_place {
                let root = self.prepare_in_place(pending.from, &pending.layers)?;
                for volume in &pending.volumes {
                    make_volume_dir(&root, &self.workdir(), volume)?;
                }
                Ok(root)
            } else {
                self.lay_out_at(pending, self.planned_root())
            }
        })?;
        self.rootfs = Some(root.clone());
        super::workdir::create_deferred(self, &root, workdirs)?;
        Ok(root)
    }

    /// Runs `work`, which unpacks `layers`, while those missing from the blob
    /// store download through the pull pipeline (at most
    /// `pull::pipeline::CONCURRENT` at once, each applied from its stream as it
    /// arrives and verified). Only with the layer cache on: without it, the
    /// stage's caller already planned the base's downloads and every later
    /// layer is made here.
    pub(super) fn while_fetching<T>(
        &self,
        layers: &[Descriptor],
        work: impl FnOnce() -> StepResult<T>,
    ) -> StepResult<T> {
        let fetch = match self.env.cache {
            Some(cache) => Some(Fetch::plan_layers(
                cache.client(),
                self.env.blobs,
                layers,
                &self.image.origins,
            )?),
            None => None,
        };
        crate::pull::pipeline::while_fetching(fetch, self.env.blobs, self.env.observer, work)
    }

    /// Lays a pending filesystem out in the private directory `root`.
    pub(super) fn lay_out_at(&self, pending: PendingRoot, root: PathBuf) -> StepResult<PathBuf> {
        fs_err::create_dir_all(&root).map_err(|e| format!("creating the stage root: {e}"))?;
        if let Some(from) = &pending.from {
            copy_tree(from, &root)
                .map_err(|reason| format!("copying the base stage's filesystem: {reason}"))?;
        }
        crate::unpack::unpack_layers(
            self.env.blobs,
            &pending.layers,
            &root,
            self.env.options.retries.image_fs_extract_retry,
        )?;
        for volume in &pending.volumes {
            make_volume_dir(&root, &self.workdir(), volume)?;
        }
        Ok(root)
    }

    /// In-place mode: clear `/` (all but the ignore list) and lay the base onto it.
    /// Layers are unpacked into the work dir first and copied over without the
    /// ignored paths (a runtime's bind-mounted /etc/hosts cannot be replaced).
    fn prepare_in_place(
        &self,
        saved_base: Option<PathBuf>,
        layers: &[kiln_oci::Descriptor],
    ) -> StepResult<PathBuf> {
        let ignore = self
            .env
            .in_place_ignore
            .as_ref()
            .ok_or("internal: in-place mode without an ignore list")?;
        let root = PathBuf::from("/");
        crate::inplace::reset_root(&root, ignore)?;
        let source = match saved_base {
            Some(saved) if layers.is_empty() => Some(saved),
            saved => {
                let staging = self.env.work.join(format!("base-{}", self.stage.index));
                fs_err::create_dir_all(&staging).map_err(|e| e.to_string())?;
                if let Some(saved) = saved {
                    copy_tree(&saved, &staging)?;
                }
                crate::unpack::unpack_layers(
                    self.env.blobs,
                    layers,
                    &staging,
                    self.env.options.retries.image_fs_extract_retry,
                )?;
                Some(staging)
            }
        };
        if let Some(source) = source {
            copy_tree_filtered(&source, &root, &|rel| ignore.is_ignored(rel))?;
        }
        Ok(root)
    }
}

/// Creates a VOLUME's directory in `root` when it does not exist.
pub(super) fn make_volume_dir(root: &Path, workdir: &str, volume: &str) -> StepResult<()> {
    let dir = resolve_in_root(root, &join_workdir(workdir, volume));
    let host = host_of(root, &dir);
    if std::fs::symlink_metadata(&host).is_err() {
        fs_err::create_dir_all(&host).map_err(|e| e.to_string())?;
    }
    Ok(())
}
