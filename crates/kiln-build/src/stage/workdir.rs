//! WORKDIR: the config's working directory, and a layer only when it creates
//! directories (owned by USER, as BuildKit does). Always served by the cache
//! when it is on, so that it never forces the stage's files out.

use std::path::Path;

use kiln_layer::{Entry, LayerPath, Metadata};
use kiln_oci::Digest;

use crate::rootfs_path::{host_of, join_workdir, resolve_in_root};

use super::cached::Cacheable;
use super::state::{StageRun, StepResult};

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
    // Create the directory, owned by USER as BuildKit does, when missing.
    let mut entries = Vec::new();
    let root = match (&run.rootfs, &run.pending) {
        (None, None) => None,
        _ => Some(run.root()?),
    };
    if let Some(root) = root {
        let resolved = resolve_in_root(&root, &dir);
        let (uid, gid) = user_ids(run, &root);
        let mut path = String::new();
        for part in resolved.split('/').filter(|p| !p.is_empty()) {
            path.push('/');
            path.push_str(part);
            if std::fs::symlink_metadata(host_of(&root, &path)).is_err() {
                entries.push(Entry::dir(
                    LayerPath::new(&path).map_err(|e| e.to_string())?,
                    Metadata {
                        mode: 0o755,
                        uid,
                        gid,
                        mtime: run.file_time(),
                        ..Metadata::default()
                    },
                ));
            }
        }
    }
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

/// Owner of directories WORKDIR creates: USER resolved as BuildKit's file
/// operations do (a name through /etc/passwd, `0:0` when it is not there;
/// a bare uid is also the gid).
fn user_ids(run: &StageRun<'_, '_>, root: &Path) -> (u64, u64) {
    let user = run.user();
    if user.is_empty() {
        return (0, 0);
    }
    crate::owner::resolve_chown(&user, Some(root)).map_or((0, 0), |o| (o.uid, o.gid))
}
