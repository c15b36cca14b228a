//! kaniko's in-place model, used when RUN isolation is in-place (kiln runs in
//! its own disposable container without namespaces): the stage root is `/`.
//! Before a stage, everything under `/` that is not ignored (kiln's dir,
//! `/proc`, `/sys`, `/dev`, mount points such as the CI workspace and the
//! runtime's resolv.conf/hosts, `--ignore-path`s) is removed and the base is
//! unpacked onto `/`; a stage that a later stage builds on or copies from is
//! saved under kiln's dir first. kiln-sandbox refuses in-place mode outside
//! such a container, so none of this runs on a developer's machine.

use std::path::{Path, PathBuf};

use kiln_snapshot::IgnoreList;

use crate::options::BuildOptions;

/// Where kiln's debug image keeps its static busybox.
const DEBUG_SHELL_DIR: &str = "/busybox";

/// The paths in-place mode never touches nor snapshots.
pub fn ignore_list(options: &BuildOptions) -> Result<IgnoreList, String> {
    let mut list = IgnoreList::kaniko_defaults(&options.kaniko_dir, options.ignore_var_run)
        .map_err(|e| e.to_string())?;
    list.add_own_mount_points(Path::new("/"))
        .map_err(|e| e.to_string())?;
    // The debug image's shell. Docker mounts its declared VOLUME, but
    // Kubernetes does not: kept out of snapshots and never removed, so the
    // job's later script lines still have their shell and tools.
    list.add(Path::new(DEBUG_SHELL_DIR))
        .map_err(|e| e.to_string())?;
    for p in &options.ignore_paths {
        list.add(p).map_err(|e| e.to_string())?;
    }
    Ok(list)
}

fn has_ignored_below(ignore: &IgnoreList, rel: &Path) -> bool {
    ignore.paths().any(|p| p != rel && p.starts_with(rel))
}

/// Removes everything under `root` (`/`) except ignored paths and their ancestors.
pub fn reset_root(root: &Path, ignore: &IgnoreList) -> Result<(), String> {
    clear_dir(root, Path::new(""), ignore)
}

fn clear_dir(root: &Path, rel: &Path, ignore: &IgnoreList) -> Result<(), String> {
    let dir = root.join(rel);
    for entry in fs_err::read_dir(&dir).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let child_rel = rel.join(entry.file_name());
        if ignore.is_ignored(&child_rel) {
            continue;
        }
        let path = entry.path();
        let meta = fs_err::symlink_metadata(&path).map_err(|e| e.to_string())?;
        if meta.is_dir() && has_ignored_below(ignore, &child_rel) {
            clear_dir(root, &child_rel, ignore)?;
        } else if meta.is_dir() {
            fs_err::remove_dir_all(&path).map_err(|e| e.to_string())?;
        } else {
            fs_err::remove_file(&path).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Copies `root` (`/`) minus ignored paths to `dest`, for later stages.
pub fn save_root(root: &Path, ignore: &IgnoreList, dest: &Path) -> Result<PathBuf, String> {
    fs_err::create_dir_all(dest).map_err(|e| e.to_string())?;
    crate::tree_copy::copy_tree_filtered(root, dest, &|rel| ignore.is_ignored(rel))?;
    Ok(dest.to_path_buf())
}
