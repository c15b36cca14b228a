//! The layer cache behind kaniko's `--cache`: every cacheable step of a build
//! has a deterministic key (a digest of the previous key, the platform, the
//! canonical instruction, the environment it sees and the content of its
//! inputs — computed by kiln-build before the step runs), and the cache maps
//! that key to what the step left behind: one layer and its history line.
//!
//! An entry is stored as an ordinary image — one layer (or none), a config
//! carrying the key and the storing time as labels — so that it lives in any
//! registry repository (tagged by the key's hex digest, kaniko's model) or in a
//! local OCI layout (`--cache-repo oci:/dir`, named by the same hex digest).
//! Reading an entry checks that it was stored under the key asked for and is
//! younger than `--cache-ttl`; anything else is a miss. A hit hands back the
//! layer descriptor and where its blob is, so the engine can reuse the layer
//! without downloading it unless a later step needs the filesystem.
//!
//! The crate never decides whether a build fails: lookup errors and store
//! errors are returned to the engine, which treats them as misses and
//! warnings.
//!
//! # Example: miss, store, hit
//!
//! A cache in a local OCI layout (`--cache-repo oci:/dir`); [`LayerCache::in_registry`]
//! takes a repository and a kiln-registry [`Client`] instead and works the same.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//!
//! use kiln_cache::{CachedStep, DEFAULT_TTL, LayerCache, LayerSource, Lookup, StepToStore};
//! use kiln_oci::{Descriptor, Digest, MediaType, Platform};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let temp = tempfile::tempdir()?;
//! # let (cache_dir, blob) = (temp.path().join("cache"), temp.path().join("layer.tar"));
//! let cache = LayerCache::in_layout(cache_dir, DEFAULT_TTL, Platform::new("linux", "amd64"));
//! // kiln-build derives a step's key from everything that decides its result.
//! let key = Digest::sha256_of(b"previous key, platform, RUN make, its inputs");
//! assert_eq!(cache.lookup(&key, SystemTime::now()).await?, Lookup::Absent);
//!
//! // The step ran: store its layer (an empty tar here) and its history line.
//! let layer = vec![0u8; 1024];
//! std::fs::write(&blob, &layer)?;
//! let descriptor = Descriptor::for_bytes(MediaType::OciLayer, &layer);
//! let diff_id = descriptor.digest.clone(); // uncompressed: the same digest
//! let step = CachedStep {
//!     layer: Some((descriptor, diff_id)),
//!     created_by: "RUN make".into(),
//!     stored: SystemTime::now(),
//! };
//! cache.store(&StepToStore { key: key.clone(), step, blob: Some(blob) }).await?;
//!
//! // The next build with the same key reuses the layer without running the step.
//! match cache.lookup(&key, SystemTime::now()).await? {
//!     Lookup::Hit { step, source: LayerSource::File(path) } => {
//!         assert_eq!(step.created_by, "RUN make");
//!         assert_eq!(std::fs::read(path)?, layer);
//!     }
//!     other => panic!("expected a hit in the layout, got {other:?}"),
//! }
//! // Older than the TTL (`--cache-ttl`), the entry is a miss.
//! let later = SystemTime::now() + DEFAULT_TTL + Duration::from_secs(60);
//! assert!(matches!(cache.lookup(&key, later).await?, Lookup::Expired { .. }));
//! # Ok(()) }
//! ```

mod entry;
mod error;
mod layout_store;
mod registry_store;
mod repo;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kiln_oci::{Digest, Platform};
use kiln_registry::{Client, RepoRef};

pub use entry::{CREATED_LABEL, CachedStep, KEY_LABEL};
pub use error::CacheError;
pub use repo::CacheRepo;

/// kaniko's default `--cache-ttl`: two weeks.
pub const DEFAULT_TTL: Duration = Duration::from_secs(336 * 3600);

/// Where a hit's layer blob can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSource {
    /// In this registry repository (fetch it, or mount it at push).
    Registry(RepoRef),
    /// In this file (a blob of the cache's OCI layout).
    File(PathBuf),
    /// The step made no layer.
    Nothing,
}

/// The answer to a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The cache has the step.
    Hit {
        /// What the step left.
        step: Box<CachedStep>,
        /// Where its layer is.
        source: LayerSource,
    },
    /// Nothing stored under the key.
    Absent,
    /// An entry exists but is older than the TTL.
    Expired {
        /// Its age.
        age: Duration,
    },
}

/// A step to store under its key.
#[derive(Debug, Clone)]
pub struct StepToStore {
    /// The step's key.
    pub key: Digest,
    /// What it left (with `stored` set to now).
    pub step: CachedStep,
    /// The layer blob on disk, when the step made a layer.
    pub blob: Option<PathBuf>,
}

/// A layer cache in one repository or layout.
#[derive(Debug, Clone)]
pub struct LayerCache {
    store: Store,
    ttl: Duration,
    platform: Platform,
}

#[derive(Debug, Clone)]
enum Store {
    Registry { repo: RepoRef, client: Arc<Client> },
    Layout(PathBuf),
}

impl LayerCache {
    /// A cache in a registry repository, reached with `client`.
    /// `platform` goes into the entries' configs (registries and tools that
    /// list the repository see what each entry was built for).
    pub fn in_registry(
        repo: RepoRef,
        client: Arc<Client>,
        ttl: Duration,
        platform: Platform,
    ) -> LayerCache {
        LayerCache {
            store: Store::Registry { repo, client },
            ttl,
            platform,
        }
    }

    /// A cache in a local OCI layout directory (created on first store).
    pub fn in_layout(dir: PathBuf, ttl: Duration, platform: Platform) -> LayerCache {
        LayerCache {
            store: Store::Layout(dir),
            ttl,
            platform,
        }
    }

    /// Where the cache lives.
    pub fn repo(&self) -> CacheRepo {
        match &self.store {
            Store::Registry { repo, .. } => CacheRepo::Registry(repo.clone()),
            Store::Layout(dir) => CacheRepo::Layout(dir.clone()),
        }
    }

    /// Looks `key` up at time `now`.
    pub async fn lookup(&self, key: &Digest, now: SystemTime) -> Result<Lookup, CacheError> {
        let found = match &self.store {
            Store::Registry { repo, client } => registry_store::lookup(client, repo, key).await?,
            Store::Layout(dir) => layout_store::lookup(dir, key)?,
        };
        Ok(match found {
            None => Lookup::Absent,
            Some((step, _)) if step.age(now) > self.ttl => Lookup::Expired { age: step.age(now) },
            Some((step, source)) => Lookup::Hit {
                step: Box::new(step),
                source,
            },
        })
    }

    /// Stores a step under its key.
    pub async fn store(&self, step: &StepToStore) -> Result<(), CacheError> {
        match &self.store {
            Store::Registry { repo, client } => {
                registry_store::store(client, repo, step, &self.platform).await
            }
            Store::Layout(dir) => layout_store::store(dir, step, &self.platform),
        }
    }
}
