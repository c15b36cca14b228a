//! Writing a docker-archive.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};

use crate::canonical_json;
use crate::config::ImageConfig;
use crate::digest::{Digest, VerifyingReader};
use crate::reference::Reference;

use super::{ArchiveError, ArchiveManifestEntry, io_error};

/// Where files go inside the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveLayout {
    /// Docker ≥ 25: `blobs/sha256/<hex>` for configs and layers.
    #[default]
    Blobs,
    /// Older Docker: `<config hex>.json` and `<diff id hex>/layer.tar`.
    Legacy,
}

/// Streams images into a docker-archive tarball.
///
/// Entries get fixed metadata (mtime 0, uid/gid 0, mode 0644/0755) so the same images
/// make the same archive bytes. If a method fails, the archive is incomplete and
/// must be discarded.
pub struct DockerArchiveWriter<W: Write> {
    builder: tar::Builder<W>,
    layout: ArchiveLayout,
    entries: Vec<ArchiveManifestEntry>,
    repositories: BTreeMap<String, BTreeMap<String, String>>,
    written: BTreeSet<String>,
    layer_names: BTreeMap<Digest, String>,
}

/// One layer as stored in the archive.
pub struct ArchiveLayerBlob<R> {
    /// The bytes to store: the uncompressed tar (what `docker save` writes), or a
    /// gzip/zstd-compressed tar (what go-containerregistry's tarballs hold; `docker
    /// load` and skopeo detect the compression).
    pub reader: R,
    /// Their exact length.
    pub size: u64,
    /// Their sha256: the diff ID when uncompressed, the compressed digest otherwise.
    pub digest: Digest,
}

impl<R> ArchiveLayerBlob<R> {
    /// An uncompressed layer tar (its digest is its diff ID).
    pub fn uncompressed(reader: R, size: u64, diff_id: &Digest) -> ArchiveLayerBlob<R> {
        ArchiveLayerBlob {
            reader,
            size,
            digest: diff_id.clone(),
        }
    }
}

impl<W: Write> DockerArchiveWriter<W> {
    /// Starts an archive on `writer`.
    pub fn new(writer: W, layout: ArchiveLayout) -> DockerArchiveWriter<W> {
        let mut builder = tar::Builder::new(writer);
        builder.mode(tar::HeaderMode::Deterministic);
        DockerArchiveWriter {
            builder,
            layout,
            entries: Vec::new(),
            repositories: BTreeMap::new(),
            written: BTreeSet::new(),
            layer_names: BTreeMap::new(),
        }
    }

    /// Adds one image: its config (exact bytes), the tags it is saved under, and a
    /// function that opens each layer given its diff ID (layers are opened one at a
    /// time, in `rootfs.diff_ids` order, and a layer shared with an earlier image is
    /// not opened again). Each blob is checked against its declared digest and size
    /// while it streams.
    pub fn add_image<R: Read>(
        &mut self,
        config_bytes: &[u8],
        repo_tags: &[Reference],
        mut open_layer: impl FnMut(&Digest) -> io::Result<ArchiveLayerBlob<R>>,
    ) -> Result<(), ArchiveError> {
        let config =
            ImageConfig::from_slice(config_bytes).map_err(|source| ArchiveError::Document {
                archive: "(being written)".to_owned(),
                name: "image config".to_owned(),
                source,
            })?;
        let config_digest = Digest::sha256_of(config_bytes);
        let config_name = match self.layout {
            ArchiveLayout::Blobs => blob_name(&config_digest),
            ArchiveLayout::Legacy => format!("{}.json", config_digest.hex()),
        };
        self.append_bytes(&config_name, config_bytes)?;

        let mut layer_names = Vec::with_capacity(config.rootfs.diff_ids.len());
        for diff_id in &config.rootfs.diff_ids {
            if let Some(name) = self.layer_names.get(diff_id) {
                layer_names.push(name.clone());
                continue;
            }
            let blob = open_layer(diff_id).map_err(io_error(format!("opening layer {diff_id}")))?;
            let name = match self.layout {
                ArchiveLayout::Blobs => blob_name(&blob.digest),
                ArchiveLayout::Legacy => {
                    self.append_dir(&format!("{}/", diff_id.hex()))?;
                    format!("{}/layer.tar", diff_id.hex())
                }
            };
            let verified = VerifyingReader::new(blob.reader, blob.digest.clone(), Some(blob.size));
            self.append_stream(&name, verified, blob.size)?;
            tracing::debug!(%diff_id, blob = %blob.digest, size = blob.size, "added layer to docker-archive");
            self.layer_names.insert(diff_id.clone(), name.clone());
            layer_names.push(name);
        }

        let mut tags = Vec::new();
        for reference in repo_tags {
            let Some(tag) = reference.tag() else { continue };
            let familiar_name = reference.familiar_name();
            tags.push(format!("{familiar_name}:{tag}"));
            if let Some(top) = config.rootfs.diff_ids.last() {
                self.repositories
                    .entry(familiar_name)
                    .or_default()
                    .insert(tag.to_owned(), top.hex().to_owned());
            }
        }
        // A tag belongs to one image only: the newest one added.
        for entry in &mut self.entries {
            entry.repo_tags.retain(|t| !tags.contains(t));
        }
        self.entries.push(ArchiveManifestEntry {
            config: config_name,
            repo_tags: tags,
            layers: layer_names,
            extra: BTreeMap::new(),
        });
        Ok(())
    }

    /// Writes `manifest.json` and `repositories`, ends the tar and returns the writer.
    pub fn finish(mut self) -> Result<W, ArchiveError> {
        let manifest =
            canonical_json::to_vec(&self.entries).map_err(|source| ArchiveError::Serialize {
                what: "manifest.json",
                source,
            })?;
        self.append_bytes("manifest.json", &manifest)?;
        if !self.repositories.is_empty() {
            let repositories = canonical_json::to_vec(&self.repositories).map_err(|source| {
                ArchiveError::Serialize {
                    what: "repositories",
                    source,
                }
            })?;
            self.append_bytes("repositories", &repositories)?;
        }
        self.builder
            .into_inner()
            .map_err(io_error("finishing the docker-archive"))
    }

    fn append_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<(), ArchiveError> {
        if name != "manifest.json"
            && name != "repositories"
            && !self.written.insert(name.to_owned())
        {
            return Ok(());
        }
        self.append_stream(name, bytes, bytes.len() as u64)
    }

    fn append_stream(
        &mut self,
        name: &str,
        reader: impl Read,
        size: u64,
    ) -> Result<(), ArchiveError> {
        self.ensure_blob_dirs(name)?;
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        self.builder
            .append_data(&mut header, name, reader)
            .map_err(io_error(format!("writing {name} into the docker-archive")))?;
        self.written.insert(name.to_owned());
        Ok(())
    }

    fn ensure_blob_dirs(&mut self, name: &str) -> Result<(), ArchiveError> {
        if name.starts_with("blobs/") {
            self.append_dir("blobs/")?;
            self.append_dir("blobs/sha256/")?;
        }
        Ok(())
    }

    fn append_dir(&mut self, name: &str) -> Result<(), ArchiveError> {
        if !self.written.insert(name.to_owned()) {
            return Ok(());
        }
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o755);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        self.builder
            .append_data(&mut header, name, io::empty())
            .map_err(io_error(format!("writing {name} into the docker-archive")))
    }
}

fn blob_name(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().as_str(), digest.hex())
}
