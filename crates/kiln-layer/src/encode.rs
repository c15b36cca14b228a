//! Encoding a change set into a layer blob in one streaming pass.
//!
//! ```text
//! entries -> tar writer -> sha256 (diff_id) -> compressor -> sha256 + count (digest, size) -> sink
//! ```
//!
//! Nothing is held whole in memory: file contents stream through a 256 KiB
//! buffer, gzip holds a bounded number of 512 KiB blocks, zstd its window.

use std::io::{BufWriter, Write};
use std::path::Path;

use kiln_oci::{Descriptor, Digest, DigestWriter, LayerCompression, MediaType};

use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::pgzip::{DEFAULT_BLOCK_SIZE, ParallelGzEncoder};
use crate::tar_writer::{TarOptions, write_tar};

/// Layer compression with its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip, level 0-9 (parallel, see [`crate::pgzip`]).
    Gzip {
        /// 0 (store) to 9 (best).
        level: u32,
    },
    /// zstd, level 1-22 (libzstd with worker threads).
    Zstd {
        /// 1 (fast) to 22 (best); negative levels are libzstd's fast modes.
        level: i32,
    },
}

impl Default for Compression {
    /// gzip level 6, what Docker, kaniko and buildah produce.
    fn default() -> Self {
        Compression::Gzip { level: 6 }
    }
}

impl Compression {
    /// The compression family, without the level.
    pub fn kind(self) -> LayerCompression {
        match self {
            Compression::None => LayerCompression::None,
            Compression::Gzip { .. } => LayerCompression::Gzip,
            Compression::Zstd { .. } => LayerCompression::Zstd,
        }
    }

    /// The OCI media type of a layer compressed this way.
    pub fn oci_media_type(self) -> MediaType {
        MediaType::oci_layer(self.kind())
    }

    fn validate(self) -> Result<()> {
        match self {
            Compression::Gzip { level } if level > 9 => Err(Error::InvalidOption(format!(
                "gzip level {level} is out of range 0-9"
            ))),
            Compression::Zstd { level } if !(-7..=22).contains(&level) || level == 0 => Err(
                Error::InvalidOption(format!("zstd level {level} is out of range 1-22")),
            ),
            _ => Ok(()),
        }
    }
}

/// Options of [`encode_layer`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Compression and level.
    pub compression: Compression,
    /// Tar options (`SOURCE_DATE_EPOCH` clamping).
    pub tar: TarOptions,
    /// Compression threads; `None` means all available cores. The output
    /// does not depend on this value.
    pub threads: Option<usize>,
}

/// What encoding produced: the blob's digest and size and the diff_id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedLayer {
    /// sha256 of the blob as written (compressed).
    pub digest: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// sha256 of the uncompressed tar: the image config's `rootfs.diff_ids`.
    pub diff_id: Digest,
    /// Size of the uncompressed tar in bytes.
    pub uncompressed_size: u64,
    /// OCI media type matching the compression.
    pub media_type: MediaType,
}

impl EncodedLayer {
    /// A descriptor of the blob (OCI media type).
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type.clone(), self.digest.clone(), self.size)
    }
}

fn threads(options: &EncodeOptions) -> usize {
    options
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

/// Writes `entries` as a layer blob into `sink` in one pass and returns the
/// digests, along with the sink (not flushed beyond what `Write::flush`
/// does; fsync is the caller's business).
pub fn encode_layer<W: Write>(
    entries: Vec<Entry>,
    options: &EncodeOptions,
    sink: W,
) -> Result<(EncodedLayer, W)> {
    options.compression.validate()?;
    if options.compression == Compression::None {
        // The blob is the tar: one hash gives both digests.
        let mut tar = DigestWriter::new(sink);
        write_tar(entries, &options.tar, &mut tar)?;
        let (sink, digest, size) = tar.finish().map_err(Error::Sink)?;
        let encoded = EncodedLayer {
            diff_id: digest.clone(),
            digest,
            size,
            uncompressed_size: size,
            media_type: options.compression.oci_media_type(),
        };
        return Ok((encoded, sink));
    }
    let blob = DigestWriter::new(sink);
    let (blob, diff_id, uncompressed_size) = match options.compression {
        Compression::None => unreachable!("handled above"),
        Compression::Gzip { level } => {
            let gz = ParallelGzEncoder::new(blob, level, threads(options), DEFAULT_BLOCK_SIZE);
            let mut tar = DigestWriter::new(gz);
            write_tar(entries, &options.tar, &mut tar)?;
            let (gz, diff_id, size) = tar.finish().map_err(Error::Sink)?;
            (gz.finish().map_err(Error::Sink)?, diff_id, size)
        }
        Compression::Zstd { level } => {
            let mut zst = zstd::stream::write::Encoder::new(blob, level).map_err(Error::Sink)?;
            // Always use libzstd's multithreaded mode (even with 1 thread):
            // its output is the same for any number of workers >= 1.
            let workers = u32::try_from(threads(options)).unwrap_or(1);
            zst.multithread(workers).map_err(Error::Sink)?;
            zst.include_checksum(true).map_err(Error::Sink)?;
            let mut tar = DigestWriter::new(zst);
            write_tar(entries, &options.tar, &mut tar)?;
            let (zst, diff_id, size) = tar.finish().map_err(Error::Sink)?;
            (zst.finish().map_err(Error::Sink)?, diff_id, size)
        }
    };
    let (sink, digest, size) = blob.finish().map_err(Error::Sink)?;
    let encoded = EncodedLayer {
        digest,
        size,
        diff_id,
        uncompressed_size,
        media_type: options.compression.oci_media_type(),
    };
    tracing::debug!(digest = %encoded.digest, size, diff_id = %encoded.diff_id, "layer encoded");
    Ok((encoded, sink))
}

/// [`encode_layer`] into a new file at `path` (created or truncated).
pub fn encode_layer_to_path(
    entries: Vec<Entry>,
    options: &EncodeOptions,
    path: &Path,
) -> Result<EncodedLayer> {
    let file = std::fs::File::create(path).map_err(|source| Error::Io {
        action: "creating layer blob",
        path: path.to_owned(),
        source,
    })?;
    let (encoded, writer) =
        encode_layer(entries, options, BufWriter::with_capacity(1 << 20, file))?;
    writer.into_inner().map_err(|e| Error::Io {
        action: "writing layer blob",
        path: path.to_owned(),
        source: e.into_error(),
    })?;
    Ok(encoded)
}
