//! Reading a docker-archive.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::config::ImageConfig;
use crate::digest::VerifyingReader;
use crate::manifest::DocumentError;
use crate::media_type::LayerCompression;
use crate::oci_layout::MAX_DOCUMENT_SIZE;
use crate::reference::Reference;

use super::{ArchiveError, ArchiveManifestEntry, io_error};

#[derive(Debug, Clone)]
enum Member {
    File { offset: u64, size: u64 },
    Symlink { target: String },
    Hardlink { target: String },
    Other,
}

/// An indexed docker-archive: one pass over the tar headers at open, then members are
/// read by seeking, so layers stream straight from the file.
#[derive(Debug, Clone)]
pub struct DockerArchive {
    path: PathBuf,
    members: BTreeMap<String, Member>,
    manifest: Vec<ArchiveManifestEntry>,
}

/// A reader over one archive member.
pub type MemberReader = io::Take<io::BufReader<fs_err::File>>;

/// A layer blob read from a docker-archive.
pub struct ArchiveLayerReader {
    inner: LayerInner,
    size: u64,
    compression: LayerCompression,
}

enum LayerInner {
    Verified(Box<VerifyingReader<MemberReader>>),
    Raw(MemberReader),
}

impl ArchiveLayerReader {
    /// Size of the stored blob.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Compression detected from the blob's first bytes.
    pub fn compression(&self) -> LayerCompression {
        self.compression
    }

    /// Whether the content is checked against the diff ID while it is read (true for
    /// uncompressed layers).
    pub fn is_verified(&self) -> bool {
        matches!(self.inner, LayerInner::Verified(_))
    }
}

impl Read for ArchiveLayerReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            LayerInner::Verified(reader) => reader.read(buf),
            LayerInner::Raw(reader) => reader.read(buf),
        }
    }
}

fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Normalises a member name: no leading `./` or `/`, no `.`, `..` resolved; `None` if
/// it climbs above the archive root.
fn normalize(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

impl DockerArchive {
    /// Indexes the archive and parses `manifest.json`.
    pub fn open(path: impl Into<PathBuf>) -> Result<DockerArchive, ArchiveError> {
        let path = path.into();
        let archive_name = path.display().to_string();
        let file = fs_err::File::open(&path).map_err(io_error("opening a docker-archive"))?;
        let mut archive = tar::Archive::new(file);
        let mut members = BTreeMap::new();
        let reading = || io_error(format!("reading the docker-archive {archive_name}"));
        for entry in archive.entries_with_seek().map_err(reading())? {
            let entry = entry.map_err(reading())?;
            let raw_name = entry
                .path()
                .map_err(reading())?
                .to_string_lossy()
                .into_owned();
            let Some(name) = normalize(&raw_name) else {
                continue;
            };
            let link_target = || {
                entry
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            let member = match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => Member::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                },
                tar::EntryType::Symlink => Member::Symlink {
                    target: link_target(),
                },
                tar::EntryType::Link => Member::Hardlink {
                    target: link_target(),
                },
                _ => Member::Other,
            };
            members.insert(name, member);
        }
        let mut reader = DockerArchive {
            path,
            members,
            manifest: Vec::new(),
        };
        let bytes = reader.read_small("manifest.json")?;
        reader.manifest =
            serde_json::from_slice(&bytes).map_err(|source| ArchiveError::Document {
                archive: archive_name.clone(),
                name: "manifest.json".to_owned(),
                source: DocumentError::Json {
                    kind: "docker-archive manifest.json",
                    source,
                },
            })?;
        tracing::debug!(archive = %archive_name, images = reader.manifest.len(), "opened docker-archive");
        Ok(reader)
    }

    /// The archive file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The images listed in `manifest.json`.
    pub fn images(&self) -> &[ArchiveManifestEntry] {
        &self.manifest
    }

    /// The image tagged `wanted` (compared after normalisation, so `busybox` finds
    /// `docker.io/library/busybox:latest`), or the only image when `None`.
    pub fn image(&self, wanted: Option<&str>) -> Result<&ArchiveManifestEntry, ArchiveError> {
        let available = || -> Vec<String> {
            self.manifest
                .iter()
                .flat_map(|e| e.repo_tags.iter().cloned())
                .collect()
        };
        let Some(wanted) = wanted else {
            return match self.manifest.as_slice() {
                [only] => Ok(only),
                entries => Err(ArchiveError::Ambiguous {
                    archive: self.path.display().to_string(),
                    count: entries.len(),
                    available: available(),
                }),
            };
        };
        let wanted_reference = Reference::parse(wanted).ok();
        self.manifest
            .iter()
            .find(|entry| {
                entry.repo_tags.iter().any(|tag| {
                    tag == wanted
                        || (wanted_reference.is_some()
                            && Reference::parse(tag).ok() == wanted_reference)
                })
            })
            .ok_or_else(|| ArchiveError::ImageNotFound {
                archive: self.path.display().to_string(),
                wanted: wanted.to_owned(),
                available: available(),
            })
    }

    /// Reads and parses an image's config; returns it with its exact bytes.
    pub fn read_config(
        &self,
        image: &ArchiveManifestEntry,
    ) -> Result<(ImageConfig, Vec<u8>), ArchiveError> {
        let bytes = self.read_small(&image.config)?;
        let config = ImageConfig::from_slice(&bytes).map_err(|source| ArchiveError::Document {
            archive: self.path.display().to_string(),
            name: image.config.clone(),
            source,
        })?;
        if config.rootfs.diff_ids.len() != image.layers.len() {
            return Err(ArchiveError::LayerCount {
                diff_ids: config.rootfs.diff_ids.len(),
                layers: image.layers.len(),
                what: "listed in manifest.json",
            });
        }
        Ok((config, bytes))
    }

    /// Opens layer `index` (base first) of `image`. The compression is detected from
    /// the content (magic bytes), never trusted from names. An uncompressed layer is
    /// verified against its diff ID in `config` while it streams (the reader fails at
    /// its end on a mismatch); a compressed one cannot be checked here: whoever
    /// decompresses it must compare the result with the diff ID.
    pub fn open_layer(
        &self,
        image: &ArchiveManifestEntry,
        config: &ImageConfig,
        index: usize,
    ) -> Result<ArchiveLayerReader, ArchiveError> {
        let (Some(name), Some(diff_id)) =
            (image.layers.get(index), config.rootfs.diff_ids.get(index))
        else {
            return Err(ArchiveError::NoSuchLayer {
                index,
                count: image.layers.len().min(config.rootfs.diff_ids.len()),
            });
        };
        let mut magic = [0u8; 4];
        let (mut peek, size) = self.open_member(name)?;
        let peeked = read_up_to(&mut peek, &mut magic).map_err(io_error(format!(
            "reading {name} from {}",
            self.path.display()
        )))?;
        let compression = match &magic[..peeked] {
            [0x1f, 0x8b, ..] => LayerCompression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd] => LayerCompression::Zstd,
            _ => LayerCompression::None,
        };
        let (reader, _) = self.open_member(name)?;
        let inner = match compression {
            LayerCompression::None => LayerInner::Verified(Box::new(VerifyingReader::new(
                reader,
                diff_id.clone(),
                Some(size),
            ))),
            _ => LayerInner::Raw(reader),
        };
        Ok(ArchiveLayerReader {
            inner,
            size,
            compression,
        })
    }

    /// Opens any member by name (links followed); returns it with its size.
    pub fn open_member(&self, name: &str) -> Result<(MemberReader, u64), ArchiveError> {
        let (offset, size) = self.resolve(name)?;
        let mut file =
            fs_err::File::open(&self.path).map_err(io_error("opening a docker-archive"))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(io_error(format!(
                "seeking to {name} in {}",
                self.path.display()
            )))?;
        Ok((
            io::BufReader::with_capacity(256 * 1024, file).take(size),
            size,
        ))
    }

    fn read_small(&self, name: &str) -> Result<Vec<u8>, ArchiveError> {
        let (mut reader, size) = self.open_member(name)?;
        if size > MAX_DOCUMENT_SIZE {
            return Err(ArchiveError::Document {
                archive: self.path.display().to_string(),
                name: name.to_owned(),
                source: DocumentError::Json {
                    kind: "docker-archive member",
                    source: serde::de::Error::custom(format!(
                        "{size} bytes is more than the {MAX_DOCUMENT_SIZE} allowed for a JSON document"
                    )),
                },
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader.read_to_end(&mut bytes).map_err(io_error(format!(
            "reading {name} from {}",
            self.path.display()
        )))?;
        Ok(bytes)
    }

    /// Follows links (at most 16) to a regular file; returns its offset and size.
    fn resolve(&self, name: &str) -> Result<(u64, u64), ArchiveError> {
        let bad_link = |reason| ArchiveError::BadLink {
            archive: self.path.display().to_string(),
            name: name.to_owned(),
            reason,
        };
        let mut current =
            normalize(name).ok_or_else(|| bad_link("the name climbs above the archive root"))?;
        for _ in 0..16 {
            let member = self
                .members
                .get(&current)
                .ok_or_else(|| ArchiveError::MissingFile {
                    archive: self.path.display().to_string(),
                    name: current.clone(),
                })?;
            current = match member {
                Member::File { offset, size } => return Ok((*offset, *size)),
                Member::Other => return Err(bad_link("it is not a regular file")),
                Member::Hardlink { target } => normalize(target)
                    .ok_or_else(|| bad_link("a hardlink points above the archive root"))?,
                Member::Symlink { target } => {
                    if target.starts_with('/') {
                        return Err(bad_link("a symlink has an absolute target"));
                    }
                    let parent = current.rsplit_once('/').map_or("", |(dir, _)| dir);
                    normalize(&format!("{parent}/{target}"))
                        .ok_or_else(|| bad_link("a symlink points above the archive root"))?
                }
            };
        }
        Err(bad_link("too many levels of links"))
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn member_names_are_normalised_and_confined() {
        assert_eq!(normalize("./a/./b/").as_deref(), Some("a/b"));
        assert_eq!(normalize("a/../b").as_deref(), Some("b"));
        assert_eq!(
            normalize("/manifest.json").as_deref(),
            Some("manifest.json")
        );
        assert_eq!(normalize("../x"), None);
        assert_eq!(normalize("a/../../x"), None);
    }
}
