//! Cache mounts (`RUN --mount=type=cache`): directories kept under
//! `<kaniko dir>/cache-mounts/` across the builds of one container, with
//! BuildKit's sharing modes enforced by `flock(2)` so that they hold between
//! concurrent builds in separate processes too.
//!
//! Layout: one directory per cache id, `<digest of id>-<readable id>/`, holding
//! `data/` (the cache every mode starts from), `private-N/` (extra caches made
//! when `data/` was busy) and one `<dir>.lock` file per cache directory. A user
//! holds a lock on the directory's lock file for the whole RUN:
//! - `shared` (default): a shared lock on `data/`; when a `locked` or `private`
//!   user holds it exclusively, BuildKit hands out another cache instead of
//!   waiting, and so does kiln (a free `private-N/`, else a new one);
//! - `locked`: an exclusive lock on `data/`, waiting for every other user;
//! - `private`: an exclusive lock on `data/` when it is free, else on the first
//!   free `private-N/`, else on a new one.
//!
//! A cache directory is created with the mount's `mode` (default 0755) and
//! `uid`/`gid` (default 0) when it does not exist yet; an existing one is
//! used as it is, as BuildKit does.

use std::fs::{File, TryLockError};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kiln_dockerfile::instructions::CacheSharing;

/// A cache directory in use; the lock is released when this is dropped.
pub(crate) struct CacheDir {
    /// The host directory to bind-mount.
    pub path: PathBuf,
    _lock: File,
}

/// How a new cache directory is made.
pub(crate) struct NewDir {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Takes the cache directory for `id` in `cache_root` as `sharing` says, waiting only
/// for `locked`.
pub(crate) fn acquire(
    cache_root: &Path,
    id: &str,
    sharing: CacheSharing,
    new_dir: &NewDir,
) -> Result<CacheDir, String> {
    let home = cache_root.join(dir_name(id));
    fs_err::create_dir_all(&home).map_err(|e| e.to_string())?;
    let data = home.join("data");
    let lock = open_lock(&data)?;
    let taken = match sharing {
        CacheSharing::Shared => try_lock(&lock, &data, Lock::Shared)?,
        CacheSharing::Private => try_lock(&lock, &data, Lock::Exclusive)?,
        CacheSharing::Locked => {
            if !try_lock(&lock, &data, Lock::Exclusive)? {
                tracing::info!(cache = id, "cache mount is locked by another RUN; waiting");
                lock.lock()
                    .map_err(|e| format!("locking cache mount {id:?}: {e}"))?;
            }
            true
        }
    };
    if taken {
        ensure_dir(&data, new_dir)?;
        return Ok(CacheDir {
            path: data,
            _lock: lock,
        });
    }
    drop(lock);
    tracing::debug!(cache = id, ?sharing, "cache mount busy; using another copy");
    let mut n = 1u32;
    loop {
        let dir = home.join(format!("private-{n}"));
        let lock = open_lock(&dir)?;
        if try_lock(&lock, &dir, Lock::Exclusive)? {
            ensure_dir(&dir, new_dir)?;
            return Ok(CacheDir {
                path: dir,
                _lock: lock,
            });
        }
        n += 1;
    }
}

/// `<sha256 of id, 16 hex>-<id with unsafe characters replaced, at most 48>`: distinct
/// ids never share a directory, and the name stays readable.
fn dir_name(id: &str) -> String {
    let digest = kiln_oci::Digest::sha256_of(id.as_bytes()).to_string();
    let hex = digest.trim_start_matches("sha256:");
    let readable: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    format!("{}-{}", &hex[..16], readable)
}

fn open_lock(dir: &Path) -> Result<File, String> {
    let path = dir.with_extension("lock");
    fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map(File::from)
        .map_err(|e| e.to_string())
}

enum Lock {
    Shared,
    Exclusive,
}

/// Tries to lock `lock` without waiting: `Ok(false)` when someone else holds it.
fn try_lock(lock: &File, dir: &Path, kind: Lock) -> Result<bool, String> {
    let result = match kind {
        Lock::Shared => lock.try_lock_shared(),
        Lock::Exclusive => lock.try_lock(),
    };
    match result {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(format!(
            "locking cache mount {}: {e}",
            dir.with_extension("lock").display()
        )),
    }
}

/// Creates `dir` with the mount's mode and owner when it does not exist.
fn ensure_dir(dir: &Path, new_dir: &NewDir) -> Result<(), String> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        // A concurrent shared user made it first.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(format!("creating cache mount {}: {e}", dir.display())),
    }
    fs_err::set_permissions(dir, std::fs::Permissions::from_mode(new_dir.mode))
        .map_err(|e| e.to_string())?;
    if crate::archive::running_as_root() {
        std::os::unix::fs::lchown(dir, Some(new_dir.uid), Some(new_dir.gid))
            .map_err(|e| format!("setting the owner of cache mount {}: {e}", dir.display()))?;
    }
    Ok(())
}
