//! The content-addressed blob store in kiln's work dir: `blobs/sha256/<hex>`.
//! Layers made by the build and base-image blobs pulled from registries live
//! here; outputs (OCI layout, tar, push) read from it.
//!
//! A blob is written once under a temporary name and renamed into place
//! (pulls likewise, as `NAME.<pid>-<n>.partial`); a stored blob is never rewritten or
//! truncated, so readers may map it (the layer applier does).
//!
//! A build killed halfway leaves its writers' files (`tmp/<pid>-<n>`,
//! `sha256/<hex>.<pid>-<n>.partial`); opening the store removes those of
//! writers that are gone (no such process here) and untouched for
//! [`ABANDONED_AFTER`] (a live writer touches its file far more often; the age
//! also spares a writer in another pid namespace sharing the directory), so
//! they never pile up across builds.
//!
//! A blob being downloaded by the pull pipeline is registered as an
//! [`Arrival`] while its download runs: the applier reads it as it arrives
//! instead of waiting for it (see `pull::pipeline`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kiln_oci::Digest;

use crate::error::BuildError;
use crate::pull::arrival::Arrival;

/// How long a writer's file must have been untouched before a store opened by
/// another process may remove it (when its writer's pid is not alive either).
pub const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// A directory of blobs named by digest.
#[derive(Debug)]
pub struct BlobStore {
    root: PathBuf,
    counter: AtomicU64,
    /// Blobs whose download is running, by digest.
    arrivals: Mutex<BTreeMap<Digest, Arc<Arrival>>>,
}

impl BlobStore {
    /// Opens (creating) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<BlobStore, BuildError> {
        let root = root.into();
        for dir in [root.join("sha256"), root.join("tmp")] {
            fs_err::create_dir_all(&dir)
                .map_err(|e| BuildError::io("creating the blob store", dir, e))?;
        }
        remove_abandoned(&root.join("tmp"), &root.join("sha256"));
        Ok(BlobStore {
            root,
            counter: AtomicU64::new(0),
            arrivals: Mutex::default(),
        })
    }

    /// Where the blob with this digest is (or would be).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// The running download of this blob, if any.
    pub fn arriving(&self, digest: &Digest) -> Option<Arc<Arrival>> {
        self.lock_arrivals().get(digest).cloned()
    }

    /// Registers a download of `digest` about to start; `None` when one already is.
    pub fn expect_arrival(&self, digest: &Digest) -> Option<Arc<Arrival>> {
        let mut arrivals = self.lock_arrivals();
        if arrivals.contains_key(digest) {
            return None;
        }
        let arrival = Arrival::new(self.path(digest));
        arrivals.insert(digest.clone(), arrival.clone());
        Some(arrival)
    }

    /// Forgets a download that is over (or cancelled).
    pub fn forget_arrival(&self, digest: &Digest) {
        self.lock_arrivals().remove(digest);
    }

    fn lock_arrivals(&self) -> std::sync::MutexGuard<'_, BTreeMap<Digest, Arc<Arrival>>> {
        self.arrivals.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh path in the store's temp dir, for writing a blob before its digest is known.
    pub fn temp_path(&self) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{}-{n}", std::process::id()))
    }

    /// Moves a finished temp file into place under `digest`.
    pub fn insert_file(&self, temp: &Path, digest: &Digest) -> Result<PathBuf, BuildError> {
        let dest = self.path(digest);
        fs_err::create_dir_all(dest.parent().unwrap_or(&self.root))
            .map_err(|e| BuildError::io("creating the blob store", &self.root, e))?;
        fs_err::rename(temp, &dest)
            .map_err(|e| BuildError::io("storing the blob", dest.clone(), e))?;
        Ok(dest)
    }

    /// Stores bytes (a config or manifest) and returns their digest.
    pub fn insert_bytes(&self, bytes: &[u8]) -> Result<Digest, BuildError> {
        let digest = Digest::sha256_of(bytes);
        if !self.contains(&digest) {
            let temp = self.temp_path();
            fs_err::write(&temp, bytes)
                .map_err(|e| BuildError::io("writing a blob", temp.clone(), e))?;
            self.insert_file(&temp, &digest)?;
        }
        Ok(digest)
    }
}

/// Removes the files of writers that are gone (see the module documentation).
/// Best effort: a file that cannot be read or removed stays for a later build.
fn remove_abandoned(tmp: &Path, store: &Path) {
    let now = std::time::SystemTime::now();
    for (dir, pid_of) in [
        (tmp, writer_pid_of_temp as fn(&str) -> Option<i32>),
        (store, writer_pid_of_partial),
    ] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(pid_of) else {
                continue;
            };
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            let idle = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            if meta.is_file() && idle >= ABANDONED_AFTER && !process_alive(pid) {
                tracing::debug!(file = %entry.path().display(), "removing a dead writer's file");
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// `<pid>-<n>`: a temp blob.
fn writer_pid_of_temp(name: &str) -> Option<i32> {
    let (pid, n) = name.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// `<hex>.<pid>-<n>.partial`: a download.
fn writer_pid_of_partial(name: &str) -> Option<i32> {
    let writer = name.strip_suffix(".partial")?.rsplit_once('.')?.1;
    writer_pid_of_temp(writer)
}

fn process_alive(pid: i32) -> bool {
    pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod abandoned_tests {
    use super::*;

    fn age(path: &Path, secs: u64) {
        let then = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
        filetime::set_file_mtime(path, filetime::FileTime::from_system_time(then)).unwrap();
    }

    /// A dead writer's old files go; a live writer's, or a recent one's, stay;
    /// stored blobs are never touched.
    #[test]
    fn opening_the_store_removes_only_dead_writers_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("blobs");
        BlobStore::open(&root).unwrap();
        let old = ABANDONED_AFTER.as_secs() + 60;
        // pid_max is at most 2^22: this pid is never alive
        let dead = 2_000_000_000;
        let me = std::process::id();
        let hex = "ab".repeat(32);
        let files = [
            (root.join(format!("tmp/{dead}-3")), old, false),
            (
                root.join(format!("sha256/{hex}.{dead}-0.partial")),
                old,
                false,
            ),
            (root.join(format!("tmp/{dead}-4")), 5, true),
            (root.join(format!("sha256/{hex}.{dead}-1.partial")), 5, true),
            (root.join(format!("tmp/{me}-7")), old, true),
            (root.join(format!("sha256/{hex}.{me}-2.partial")), old, true),
            (root.join(format!("sha256/{hex}")), old, true),
            (root.join("tmp/notes"), old, true),
        ];
        for (path, secs, _) in &files {
            std::fs::write(path, b"x").unwrap();
            age(path, *secs);
        }
        BlobStore::open(&root).unwrap();
        for (path, _, stays) in &files {
            assert_eq!(path.exists(), *stays, "{}", path.display());
        }
    }
}
