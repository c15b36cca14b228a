//! Writing change-set entries onto a stage's root filesystem, so that later
//! steps see what COPY/ADD/WORKDIR produced. Parents must be real directories
//! (a symlink parent is refused): paths were already resolved inside the root.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kiln_layer::{Entry, EntryKind, FileSource};

use crate::archive::{ensure_real_parents, running_as_root};

/// Applies `entries` (any order; sorted here parents-first) under `root`.
pub fn apply_entries(root: &Path, entries: &[Entry]) -> Result<(), String> {
    let as_root = running_as_root();
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| {
        a.path
            .depth()
            .cmp(&b.path.depth())
            .then(a.path.cmp(&b.path))
    });
    let mut dirs = Vec::new();
    for entry in sorted {
        let rel = Path::new(entry.path.as_os_str());
        let dest = root.join(rel);
        ensure_real_parents(root, rel)?;
        let existing = std::fs::symlink_metadata(&dest).ok();
        let keep_dir =
            existing.as_ref().is_some_and(|m| m.is_dir()) && matches!(entry.kind, EntryKind::Dir);
        if let (Some(meta), false) = (&existing, keep_dir) {
            let removed = if meta.is_dir() {
                fs_err::remove_dir_all(&dest)
            } else {
                fs_err::remove_file(&dest)
            };
            removed.map_err(|e| e.to_string())?;
        }
        match &entry.kind {
            EntryKind::File(FileSource::Path(source)) => {
                fs_err::copy(source, &dest).map_err(|e| e.to_string())?;
            }
            EntryKind::File(FileSource::Bytes(bytes)) => {
                fs_err::write(&dest, bytes).map_err(|e| e.to_string())?;
            }
            EntryKind::Dir => {
                if !keep_dir {
                    fs_err::create_dir(&dest).map_err(|e| e.to_string())?;
                }
            }
            EntryKind::Symlink { target } => {
                std::os::unix::fs::symlink(target, &dest)
                    .map_err(|e| format!("creating symlink {}: {e}", dest.display()))?;
            }
            EntryKind::Hardlink { target } => {
                let source = root.join(Path::new(target.as_os_str()));
                fs_err::hard_link(&source, &dest).map_err(|e| e.to_string())?;
                continue;
            }
            EntryKind::Whiteout => continue,
            other => {
                return Err(format!(
                    "cannot write a {} at {} from COPY/ADD",
                    other.name(),
                    entry.path
                ));
            }
        }
        let is_symlink = matches!(entry.kind, EntryKind::Symlink { .. });
        if as_root {
            std::os::unix::fs::lchown(
                &dest,
                Some(entry.meta.uid as u32),
                Some(entry.meta.gid as u32),
            )
            .map_err(|e| format!("chown {}: {e}", dest.display()))?;
        }
        if !is_symlink {
            fs_err::set_permissions(&dest, std::fs::Permissions::from_mode(entry.meta.mode))
                .map_err(|e| e.to_string())?;
        }
        let mtime = filetime::FileTime::from_unix_time(entry.meta.mtime.sec, entry.meta.mtime.nsec);
        if matches!(entry.kind, EntryKind::Dir) {
            dirs.push((dest, mtime));
        } else {
            filetime::set_symlink_file_times(&dest, mtime, mtime)
                .map_err(|e| format!("setting times of {}: {e}", dest.display()))?;
        }
    }
    // Directory times last, deepest first, so creating children does not change them.
    for (dir, mtime) in dirs.into_iter().rev() {
        filetime::set_symlink_file_times(&dir, mtime, mtime)
            .map_err(|e| format!("setting times of {}: {e}", dir.display()))?;
    }
    Ok(())
}
