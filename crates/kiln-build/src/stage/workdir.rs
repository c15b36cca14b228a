//! WORKDIR: the config's working directory, and a layer only when it creates
//! directories (owned by USER, as BuildKit does). Always served by the cache
//! when it is on, so that it never forces the stage's files out. Without the
//! cache, a WORKDIR before the stage's files are laid out whose next file step
//! is a COPY does not force them out either: its history entry is recorded
//! and its directories (and layer) are made when the files are laid out, so
//! the COPY can run ahead of them (`copy_ahead`).

use std::path::Path;

use kiln_layer::{Entry, LayerPath, Metadata, Timestamp};
use kiln_oci::Digest;

use crate::rootfs_path::{host_of, join_workdir, resolve_in_root};

use super::cached::Cacheable;
use super::layer::{encode_step_layer, step_apply_options};
use super::state::{DeferredWorkdir, StageRun, StepResult};

/// Runs `WORKDIR raw`.
pub(super) fn step(run: &mut StageRun<'_, '_>, raw: &str) -> StepResult<Option<Digest>> {
    if raw.is_empty() {
        return Err("WORKDIR can not be empty".into());
    }
    let dir = join_workdir(&run.workdir(), raw);
    run.image.config.container_config_mut().working_dir = Some(dir.clone());
    let created_by = format!("WORKDIR {dir}");
    let key = run.advance_key(created_by.as_bytes());
    if run.rootfs.is_none()
        && let Some(result) = run.cached(Cacheable::Workdir, &key, &created_by)?
    {
        return Ok(result);
    }
    let env = run.env;
    let next = run.current_step.step.saturating_sub(1);
    if run.rootfs.is_none()
        && env.cache.is_none()
        && !env.in_place
        && !env.options.single_snapshot
        && super::uses::copy_next_needs_files(run.stage, next)
        && run.pending.is_some()
    {
        let deferred = DeferredWorkdir {
            dir,
            history: run.image.config.history.as_ref().map_or(0, Vec::len),
            user: run.user(),
            mtime: run.file_time(),
        };
        if let Some(pending) = run.pending.as_mut() {
            pending.workdirs.push(deferred);
        }
        let history = run.history(created_by);
        run.image.config.push_empty_step(history);
        return Ok(None);
    }
    // Create the directory, owned by USER as BuildKit does, when missing.
    let entries = match (&run.rootfs, &run.pending) {
        (None, None) => Vec::new(),
        _ => {
            let root = run.root()?;
            missing_dirs(&root, &dir, &run.user(), run.file_time())?
        }
    };
    let layer = if entries.is_empty() {
        let history = run.history(created_by.clone());
        run.image.config.push_empty_step(history);
        None
    } else {
        run.commit_entries(entries, created_by.clone())?
    };
    run.remember(Cacheable::Workdir, key, created_by, layer.as_ref());
    Ok(layer)
}

/// Creates the directories of the WORKDIR steps deferred until the stage's
/// files were laid out in `root`, in step order, each committed as a layer of
/// its step (whose history entry, recorded empty, gains it).
pub(super) fn create_deferred(
    run: &mut StageRun<'_, '_>,
    root: &Path,
    deferred: Vec<DeferredWorkdir>,
) -> StepResult<()> {
    for step in deferred {
        let entries = missing_dirs(root, &step.dir, &step.user, step.mtime)?;
        if entries.is_empty() {
            continue;
        }
        let options = step_apply_options();
        let layer = encode_step_layer(
            run.env,
            run.stage_index(),
            entries,
            Some((root, &options)),
            None,
        )?;
        if !run
            .image
            .config
            .add_layer_to_step(step.history, layer.diff_id.clone())
        {
            return Err(format!(
                "internal: the layer of WORKDIR {} comes after a later step's",
                step.dir
            ));
        }
        run.image.layers.push(layer.descriptor());
    }
    Ok(())
}

/// The directories of `dir` missing in `root`, owned by `user` as BuildKit
/// does, in path order.
fn missing_dirs(root: &Path, dir: &str, user: &str, mtime: Timestamp) -> StepResult<Vec<Entry>> {
    let resolved = resolve_in_root(root, dir);
    let (uid, gid) = user_ids(user, root);
    let mut entries = Vec::new();
    let mut path = String::new();
    for part in resolved.split('/').filter(|p| !p.is_empty()) {
        path.push('/');
        path.push_str(part);
        if std::fs::symlink_metadata(host_of(root, &path)).is_err() {
            entries.push(Entry::dir(
                LayerPath::new(&path).map_err(|e| e.to_string())?,
                Metadata {
                    mode: 0o755,
                    uid,
                    gid,
                    mtime,
                    ..Metadata::default()
                },
            ));
        }
    }
    Ok(entries)
}

/// Owner of directories WORKDIR creates: USER resolved as BuildKit's file
/// operations do (a name through /etc/passwd, `0:0` when it is not there;
/// a bare uid is also the gid).
fn user_ids(user: &str, root: &Path) -> (u64, u64) {
    if user.is_empty() {
        return (0, 0);
    }
    crate::owner::resolve_chown(user, Some(root)).map_or((0, 0), |o| (o.uid, o.gid))
}
