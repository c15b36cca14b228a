//! Progress of blob transfers: a hook a [`crate::Client`] calls as blob bytes
//! go to or come from a registry.
//!
//! The hook runs on the transfer's task or on its blocking reader or writer
//! thread, once per chunk of at most 1 MiB (and once more when a blob is
//! complete), so it must be cheap and must never block: record the value,
//! send it on an unbounded channel, or drop it. A retried transfer starts
//! again from zero.

use std::fmt;
use std::sync::Arc;

use kiln_oci::Digest;

use crate::options::Direction;

/// Where one blob transfer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobProgress {
    /// Pull (download) or push (upload).
    pub direction: Direction,
    pub digest: Digest,
    /// Bytes transferred so far in this attempt.
    pub done: u64,
    /// The blob's size.
    pub total: u64,
}

/// The hook; see the module documentation for its contract.
#[derive(Clone)]
pub struct ProgressHook(Arc<dyn Fn(&BlobProgress) + Send + Sync>);

impl ProgressHook {
    pub fn new(f: impl Fn(&BlobProgress) + Send + Sync + 'static) -> ProgressHook {
        ProgressHook(Arc::new(f))
    }

    pub(crate) fn report(&self, direction: Direction, digest: &Digest, done: u64, total: u64) {
        (self.0)(&BlobProgress {
            direction,
            digest: digest.clone(),
            done,
            total,
        });
    }
}

impl fmt::Debug for ProgressHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProgressHook")
    }
}

/// A hook bound to one blob transfer.
#[derive(Debug, Clone)]
pub(crate) struct BlobMeter {
    hook: ProgressHook,
    direction: Direction,
    digest: Digest,
    total: u64,
}

impl BlobMeter {
    pub fn new(
        hook: Option<&ProgressHook>,
        direction: Direction,
        digest: &Digest,
        total: u64,
    ) -> Option<BlobMeter> {
        hook.map(|hook| BlobMeter {
            hook: hook.clone(),
            direction,
            digest: digest.clone(),
            total,
        })
    }

    pub fn report(&self, done: u64) {
        self.hook
            .report(self.direction, &self.digest, done, self.total);
    }
}
