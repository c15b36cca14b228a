//! Reading an OCI image layout.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::config::ImageConfig;
use crate::descriptor::Descriptor;
use crate::digest::VerifyingReader;
use crate::index::Index;
use crate::manifest::Manifest;
use crate::platform::Platform;

use super::write::blob_path;
use super::{IMAGE_LAYOUT_VERSION, LayoutError, MAX_DOCUMENT_SIZE, io_error};

/// A read-only view of an OCI layout directory.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
    index: Index,
}

/// One image resolved from a layout: the manifest's descriptor, the manifest and its
/// config (both verified against their digests).
#[derive(Debug, Clone)]
pub struct LayoutImage {
    /// Descriptor of the manifest.
    pub descriptor: Descriptor,
    /// The manifest.
    pub manifest: Manifest,
    /// The parsed config.
    pub config: ImageConfig,
    /// The config exactly as stored (its digest is the image ID).
    pub config_bytes: Vec<u8>,
}

impl OciLayout {
    /// Opens a layout, checking `oci-layout` and parsing `index.json`.
    pub fn open(root: impl Into<PathBuf>) -> Result<OciLayout, LayoutError> {
        let root = root.into();
        let not_a_layout = |reason: String| LayoutError::NotALayout {
            path: root.clone(),
            reason,
        };
        let layout_path = root.join("oci-layout");
        let layout_bytes = fs_err::read(&layout_path)
            .map_err(|e| not_a_layout(format!("cannot read oci-layout: {e}")))?;
        let layout: serde_json::Value = serde_json::from_slice(&layout_bytes)
            .map_err(|e| not_a_layout(format!("oci-layout is not JSON: {e}")))?;
        match layout.get("imageLayoutVersion").and_then(|v| v.as_str()) {
            Some(IMAGE_LAYOUT_VERSION) => {}
            other => {
                return Err(not_a_layout(format!(
                    "imageLayoutVersion is {other:?}, expected {IMAGE_LAYOUT_VERSION:?}"
                )));
            }
        }
        let index_path = root.join("index.json");
        let index_bytes =
            fs_err::read(&index_path).map_err(io_error("reading the OCI layout index"))?;
        let index = Index::from_slice(&index_bytes).map_err(|source| LayoutError::Document {
            path: index_path,
            source,
        })?;
        Ok(OciLayout { root, index })
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The top-level `index.json`.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The `org.opencontainers.image.ref.name` values in `index.json`.
    pub fn ref_names(&self) -> Vec<String> {
        self.index
            .manifests
            .iter()
            .filter_map(|d| d.ref_name().map(str::to_owned))
            .collect()
    }

    /// Where the blob for `descriptor` lives.
    pub fn blob_path(&self, descriptor: &Descriptor) -> PathBuf {
        blob_path(&self.root, &descriptor.digest)
    }

    /// Opens a blob for streaming; the reader fails at the end if the content does not
    /// match the descriptor's digest and size.
    pub fn open_blob(
        &self,
        descriptor: &Descriptor,
    ) -> Result<VerifyingReader<io::BufReader<fs_err::File>>, LayoutError> {
        let path = self.blob_path(descriptor);
        let file = fs_err::File::open(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                LayoutError::MissingBlob {
                    layout: self.root.clone(),
                    digest: descriptor.digest.clone(),
                }
            } else {
                LayoutError::Io {
                    doing: "opening a blob".to_owned(),
                    source,
                }
            }
        })?;
        Ok(VerifyingReader::new(
            io::BufReader::with_capacity(256 * 1024, file),
            descriptor.digest.clone(),
            Some(descriptor.size),
        ))
    }

    /// Reads a small blob (a JSON document) whole, verified.
    pub fn read_document(&self, descriptor: &Descriptor) -> Result<Vec<u8>, LayoutError> {
        if descriptor.size > MAX_DOCUMENT_SIZE {
            return Err(LayoutError::DocumentTooLarge {
                layout: self.root.clone(),
                digest: descriptor.digest.clone(),
                size: descriptor.size,
            });
        }
        let mut bytes = Vec::with_capacity(descriptor.size as usize);
        self.open_blob(descriptor)?
            .read_to_end(&mut bytes)
            .map_err(|source| self.read_error(descriptor, source))?;
        Ok(bytes)
    }

    /// Reads and parses a manifest.
    pub fn read_manifest(&self, descriptor: &Descriptor) -> Result<Manifest, LayoutError> {
        let bytes = self.read_document(descriptor)?;
        Manifest::from_slice(&bytes).map_err(|source| LayoutError::Document {
            path: self.blob_path(descriptor),
            source,
        })
    }

    /// Reads and parses a nested index.
    pub fn read_index(&self, descriptor: &Descriptor) -> Result<Index, LayoutError> {
        let bytes = self.read_document(descriptor)?;
        Index::from_slice(&bytes).map_err(|source| LayoutError::Document {
            path: self.blob_path(descriptor),
            source,
        })
    }

    /// Reads and parses an image config; returns it with its exact bytes.
    pub fn read_config(
        &self,
        descriptor: &Descriptor,
    ) -> Result<(ImageConfig, Vec<u8>), LayoutError> {
        let bytes = self.read_document(descriptor)?;
        let config = ImageConfig::from_slice(&bytes).map_err(|source| LayoutError::Document {
            path: self.blob_path(descriptor),
            source,
        })?;
        Ok((config, bytes))
    }

    /// The `index.json` entry named `ref_name`, or the only entry when `None`.
    pub fn entry(&self, ref_name: Option<&str>) -> Result<&Descriptor, LayoutError> {
        match ref_name {
            Some(name) => {
                self.index
                    .manifest_by_ref_name(name)
                    .ok_or_else(|| LayoutError::RefNotFound {
                        layout: self.root.clone(),
                        name: name.to_owned(),
                        available: self.ref_names(),
                    })
            }
            None => match self.index.manifests.as_slice() {
                [only] => Ok(only),
                entries => Err(LayoutError::Ambiguous {
                    layout: self.root.clone(),
                    count: entries.len(),
                    available: self.ref_names(),
                }),
            },
        }
    }

    /// Resolves an image: the entry named `ref_name` (or the only one); if it is an
    /// index, the manifest for `platform` (required unless the index has one entry).
    pub fn image(
        &self,
        ref_name: Option<&str>,
        platform: Option<&Platform>,
    ) -> Result<LayoutImage, LayoutError> {
        let mut descriptor = self.entry(ref_name)?.clone();
        // Nested indexes are followed a bounded number of times.
        for _ in 0..8 {
            if descriptor.media_type.is_manifest() {
                let manifest = self.read_manifest(&descriptor)?;
                let (config, config_bytes) = self.read_config(&manifest.config)?;
                return Ok(LayoutImage {
                    descriptor,
                    manifest,
                    config,
                    config_bytes,
                });
            }
            if !descriptor.media_type.is_index() {
                return Err(LayoutError::NotAnImage {
                    digest: descriptor.digest.clone(),
                    media_type: descriptor.media_type.to_string(),
                });
            }
            let index = self.read_index(&descriptor)?;
            let chosen = match (platform, index.manifests.as_slice()) {
                (Some(platform), _) => index.manifest_for_platform(platform).ok_or_else(|| {
                    LayoutError::NoPlatformMatch {
                        layout: self.root.clone(),
                        digest: descriptor.digest.clone(),
                        platform: platform.to_string(),
                        available: platforms_of(&index),
                    }
                })?,
                (None, [only]) => only,
                (None, _) => {
                    return Err(LayoutError::NoPlatformMatch {
                        layout: self.root.clone(),
                        digest: descriptor.digest.clone(),
                        platform: "(none given)".to_owned(),
                        available: platforms_of(&index),
                    });
                }
            };
            descriptor = chosen.clone();
        }
        Err(LayoutError::NotAnImage {
            digest: descriptor.digest.clone(),
            media_type: "an index nested more than 8 levels deep".to_owned(),
        })
    }

    /// Reads every layer of `image` to the end, verifying digests and sizes; returns
    /// the number of bytes checked.
    pub fn verify_layers(&self, image: &LayoutImage) -> Result<u64, LayoutError> {
        let mut total = 0;
        for layer in &image.manifest.layers {
            let mut reader = self.open_blob(layer)?;
            total += io::copy(&mut reader, &mut io::sink())
                .map_err(|source| self.read_error(layer, source))?;
        }
        Ok(total)
    }
}

impl OciLayout {
    /// A content mismatch reported by [`VerifyingReader`] becomes `BlobMismatch`;
    /// anything else is an I/O error naming the blob.
    fn read_error(&self, descriptor: &Descriptor, source: io::Error) -> LayoutError {
        let path = self.blob_path(descriptor);
        match source.kind() {
            io::ErrorKind::InvalidData => LayoutError::BlobMismatch {
                path,
                reason: source.to_string(),
            },
            _ => LayoutError::Io {
                doing: format!("reading {}", path.display()),
                source,
            },
        }
    }
}

fn platforms_of(index: &Index) -> String {
    let platforms: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
        .collect();
    platforms.join(", ")
}
