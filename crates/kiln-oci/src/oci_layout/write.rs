//! Writing an OCI image layout.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::canonical_json;
use crate::descriptor::{ANNOTATION_REF_NAME, Descriptor};
use crate::digest::{Digest, DigestWriter};
use crate::index::Index;
use crate::manifest::Manifest;
use crate::platform::Platform;

use super::{IMAGE_LAYOUT_VERSION, LayoutError, io_error, validate_ref_name};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes blobs and images into an OCI layout directory.
///
/// Opening an existing layout keeps its `index.json` entries; adding an image under a
/// name that is already present moves the name to the new image (like `skopeo copy`).
/// Nothing is visible in `index.json` until [`OciLayoutWriter::finish`].
///
/// Blob writes take `&self` and may run from several threads at once (each goes to
/// its own temporary file); one writer per layout directory at a time, since
/// `finish` replaces `index.json`.
#[derive(Debug)]
pub struct OciLayoutWriter {
    root: PathBuf,
    index: Index,
}

impl OciLayoutWriter {
    /// Creates the layout directory (or opens an existing layout) for writing.
    pub fn create(root: impl Into<PathBuf>) -> Result<OciLayoutWriter, LayoutError> {
        let root = root.into();
        fs_err::create_dir_all(root.join("blobs").join("sha256"))
            .map_err(io_error("creating the OCI layout directories"))?;
        let layout_file = root.join("oci-layout");
        let layout_json = format!("{{\"imageLayoutVersion\":\"{IMAGE_LAYOUT_VERSION}\"}}");
        write_atomically(&layout_file, layout_json.as_bytes())?;
        let index_path = root.join("index.json");
        let index = if index_path.exists() {
            let bytes =
                fs_err::read(&index_path).map_err(io_error("reading the OCI layout index"))?;
            Index::from_slice(&bytes).map_err(|source| LayoutError::Document {
                path: index_path.clone(),
                source,
            })?
        } else {
            Index::new_oci(Vec::new())
        };
        tracing::debug!(layout = %root.display(), images = index.manifests.len(), "opened OCI layout for writing");
        Ok(OciLayoutWriter { root, index })
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob with this digest lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.root, digest)
    }

    /// Streams `reader` into the blob store; returns its digest and size.
    pub fn write_blob(&self, reader: impl Read) -> Result<(Digest, u64), LayoutError> {
        let dir = self.root.join("blobs").join("sha256");
        let temp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = stream_to_temp(reader, &temp);
        let (digest, size) = match result {
            Ok(done) => done,
            Err(error) => {
                let _ = fs_err::remove_file(&temp);
                return Err(error);
            }
        };
        let target = self.blob_path(&digest);
        fs_err::rename(&temp, &target).map_err(io_error(format!("storing blob {digest}")))?;
        tracing::trace!(%digest, size, "wrote blob");
        Ok((digest, size))
    }

    /// Streams `reader` into the blob store and checks it against `expected`
    /// (digest and size); a mismatching blob is not kept.
    pub fn write_blob_expecting(
        &self,
        reader: impl Read,
        expected: &Descriptor,
    ) -> Result<(), LayoutError> {
        let (digest, size) = self.write_blob(reader)?;
        if digest != expected.digest || size != expected.size {
            let path = self.blob_path(&digest);
            let _ = fs_err::remove_file(&path);
            return Err(LayoutError::BlobMismatch {
                path,
                reason: format!(
                    "expected {} ({} bytes), got {digest} ({size} bytes)",
                    expected.digest, expected.size
                ),
            });
        }
        Ok(())
    }

    /// Streams a file into the blob store.
    pub fn write_blob_from_file(&self, path: &Path) -> Result<(Digest, u64), LayoutError> {
        let file = fs_err::File::open(path).map_err(io_error("opening a blob to copy"))?;
        self.write_blob(file)
    }

    /// Stores small in-memory bytes (JSON documents).
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<Digest, LayoutError> {
        Ok(self.write_blob(bytes)?.0)
    }

    /// Writes `manifest` (canonical JSON) after checking that its config and layers are
    /// already in the layout; returns its descriptor. Not added to `index.json`.
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<Descriptor, LayoutError> {
        for descriptor in std::iter::once(&manifest.config).chain(&manifest.layers) {
            if !self.blob_path(&descriptor.digest).is_file() {
                return Err(LayoutError::MissingBlob {
                    layout: self.root.clone(),
                    digest: descriptor.digest.clone(),
                });
            }
        }
        let (descriptor, bytes) = manifest
            .to_blob()
            .map_err(|source| LayoutError::Serialize {
                what: "the manifest",
                source,
            })?;
        self.write_bytes(&bytes)?;
        Ok(descriptor)
    }

    /// Writes `index` (canonical JSON, e.g. a multi-platform image) after checking that
    /// the manifests it lists are in the layout; returns its descriptor.
    pub fn write_index(&self, index: &Index) -> Result<Descriptor, LayoutError> {
        for descriptor in &index.manifests {
            if !self.blob_path(&descriptor.digest).is_file() {
                return Err(LayoutError::MissingBlob {
                    layout: self.root.clone(),
                    digest: descriptor.digest.clone(),
                });
            }
        }
        let (descriptor, bytes) = index.to_blob().map_err(|source| LayoutError::Serialize {
            what: "the index",
            source,
        })?;
        self.write_bytes(&bytes)?;
        Ok(descriptor)
    }

    /// Writes `manifest` and lists it in `index.json`, under `ref_name` if given.
    pub fn add_image(
        &mut self,
        manifest: &Manifest,
        ref_name: Option<&str>,
        platform: Option<Platform>,
    ) -> Result<Descriptor, LayoutError> {
        let mut descriptor = self.write_manifest(manifest)?;
        descriptor.platform = platform;
        self.add_to_index(descriptor.clone(), ref_name)?;
        Ok(descriptor)
    }

    /// Lists a manifest or index already in the layout in `index.json`, under
    /// `ref_name` if given (taking the name away from any previous holder).
    pub fn add_to_index(
        &mut self,
        mut descriptor: Descriptor,
        ref_name: Option<&str>,
    ) -> Result<(), LayoutError> {
        if !self.blob_path(&descriptor.digest).is_file() {
            return Err(LayoutError::MissingBlob {
                layout: self.root.clone(),
                digest: descriptor.digest,
            });
        }
        if let Some(name) = ref_name {
            validate_ref_name(name)?;
            self.index.manifests.retain(|d| d.ref_name() != Some(name));
            descriptor.set_annotation(ANNOTATION_REF_NAME, name);
        } else if self
            .index
            .manifests
            .iter()
            .any(|d| d.digest == descriptor.digest && d.ref_name().is_none())
        {
            return Ok(());
        }
        self.index.manifests.push(descriptor);
        Ok(())
    }

    /// The index as it will be written.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Writes `index.json` (canonical JSON, atomically) and returns the index.
    pub fn finish(self) -> Result<Index, LayoutError> {
        let bytes =
            canonical_json::to_vec(&self.index).map_err(|source| LayoutError::Serialize {
                what: "index.json",
                source,
            })?;
        write_atomically(&self.root.join("index.json"), &bytes)?;
        tracing::debug!(layout = %self.root.display(), images = self.index.manifests.len(), "wrote OCI layout index");
        Ok(self.index)
    }
}

pub(crate) fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join("blobs")
        .join(digest.algorithm().as_str())
        .join(digest.hex())
}

fn stream_to_temp(mut reader: impl Read, temp: &Path) -> Result<(Digest, u64), LayoutError> {
    let file = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp)
        .map_err(io_error("creating a temporary blob file"))?;
    let mut writer = DigestWriter::new(io::BufWriter::with_capacity(256 * 1024, file));
    io::copy(&mut reader, &mut writer).map_err(io_error(format!(
        "streaming a blob into {}",
        temp.display()
    )))?;
    let (buffered, digest, size) = writer
        .finish()
        .map_err(io_error(format!("flushing {}", temp.display())))?;
    buffered
        .into_inner()
        .map_err(|e| LayoutError::Io {
            doing: format!("flushing {}", temp.display()),
            source: e.into_error(),
        })?
        .sync_all()
        .map_err(io_error("syncing a blob"))?;
    Ok((digest, size))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    let temp = path.with_extension(format!(
        "tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = fs_err::File::create(&temp).map_err(io_error("writing layout metadata"))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_error("writing layout metadata"))?;
    fs_err::rename(&temp, path).map_err(io_error("writing layout metadata"))
}
