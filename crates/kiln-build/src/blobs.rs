//! The content-addressed blob store in kiln's work dir: `blobs/sha256/<hex>`.
//! Layers made by the build and base-image blobs pulled from registries live
//! here; outputs (OCI layout, tar, push) read from it.
//!
//! A blob is written once under a temporary name and renamed into place
//! (pulls likewise, as `NAME.<pid>-<n>.partial`); a stored blob is never rewritten or
//! truncated, so readers may map it (the layer applier does).
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
