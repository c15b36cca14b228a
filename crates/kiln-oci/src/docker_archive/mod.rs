//! docker-archive: the tarball `docker save` writes and `docker load` reads.
//!
//! ```text
//! manifest.json      [{"Config":"…","RepoTags":["busybox:latest"],"Layers":["…",…]}]
//! repositories       {"busybox":{"latest":"<top layer id>"}}   (legacy, still read by tools)
//! <config>           the image config, exactly the bytes whose digest is the image ID
//! <layers>           uncompressed layer tars, named by their diff ID
//! ```
//!
//! Two file layouts exist and both are written and read: Docker ≥ 25's
//! `blobs/sha256/<hex>` ([`ArchiveLayout::Blobs`], the default) and the older
//! `<hex>.json` + `<id>/layer.tar` ([`ArchiveLayout::Legacy`]). Readers only trust
//! `manifest.json`, following symlinks and hardlinks inside the archive (skopeo and
//! old Docker write links). Layers stream in and out with known sizes; nothing but
//! `manifest.json`, `repositories` and configs is ever held in memory.

mod read;
mod write;

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};

pub use read::{ArchiveLayerReader, DockerArchive, MemberReader};
pub use write::{ArchiveLayerBlob, ArchiveLayout, DockerArchiveWriter};

use crate::manifest::DocumentError;

/// One image in `manifest.json`. Field order is Docker's Go struct's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveManifestEntry {
    /// Path of the config file inside the archive.
    #[serde(rename = "Config")]
    pub config: String,
    /// Familiar references (`busybox:latest`); null or absent for untagged images.
    #[serde(
        rename = "RepoTags",
        default,
        deserialize_with = "crate::serde_util::null_as_default"
    )]
    pub repo_tags: Vec<String>,
    /// Paths of the uncompressed layer tars, base first.
    #[serde(
        rename = "Layers",
        default,
        deserialize_with = "crate::serde_util::null_as_default"
    )]
    pub layers: Vec<String>,
    /// Fields not modelled above (`Parent`, `LayerSources`), kept.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// What went wrong reading or writing a docker-archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// An I/O error (the message names the file) and what was being done.
    #[error("{doing}: {source}")]
    Io {
        /// What was being done, to which archive.
        doing: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A file named by `manifest.json` is not in the archive.
    #[error("{archive}: {name:?} is named by manifest.json but is not in the archive")]
    MissingFile {
        /// The archive.
        archive: String,
        /// The missing member.
        name: String,
    },
    /// `manifest.json` or a config is invalid.
    #[error("{archive}: {name}: {source}")]
    Document {
        /// The archive.
        archive: String,
        /// The member.
        name: String,
        /// Why.
        #[source]
        source: DocumentError,
    },
    /// Serialising a document failed.
    #[error("serialising {what}: {source}")]
    Serialize {
        /// What.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The requested image is not in the archive.
    #[error("{archive}: no image tagged {wanted:?} (tags present: {available:?})")]
    ImageNotFound {
        /// The archive.
        archive: String,
        /// The requested tag.
        wanted: String,
        /// Tags present.
        available: Vec<String>,
    },
    /// No tag given and the archive does not hold exactly one image.
    #[error("{archive} holds {count} images; name one (tags present: {available:?})")]
    Ambiguous {
        /// The archive.
        archive: String,
        /// Number of images.
        count: usize,
        /// Tags present.
        available: Vec<String>,
    },
    /// The config lists a different number of diff IDs than there are layers.
    #[error("image config lists {diff_ids} diff IDs but {layers} layers were {what}")]
    LayerCount {
        /// Number of diff IDs.
        diff_ids: usize,
        /// Number of layers.
        layers: usize,
        /// `given` or `listed in manifest.json`.
        what: &'static str,
    },
    /// A layer index past the end.
    #[error("image has {count} layers, there is no layer {index}")]
    NoSuchLayer {
        /// Requested index.
        index: usize,
        /// Number of layers.
        count: usize,
    },
    /// A symlink loop or a link pointing outside the archive.
    #[error("{archive}: cannot resolve {name:?}: {reason}")]
    BadLink {
        /// The archive.
        archive: String,
        /// The member.
        name: String,
        /// Why.
        reason: &'static str,
    },
}

fn io_error(doing: impl Into<String>) -> impl FnOnce(io::Error) -> ArchiveError {
    let doing = doing.into();
    move |source| ArchiveError::Io { doing, source }
}
