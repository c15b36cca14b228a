//! Encoding a change set into a layer blob in one streaming pass.
//!
//! ```text
//! [tar thread]   entries -> tar writer                        --queue-->
//! [caller]       sha256 (diff_id) -> compressor (its workers) --queue-->
//! [write thread] sha256 + count (digest, size) -> sink
//! ```
//!
//! Compressed layers go through three threads joined by bounded queues
//! (`chunk_queue`), so reading files and hashing overlap
//! compression; a plain tar is written and hashed in line. Nothing is held
//! whole in memory: at most 4 MiB queued per queue, gzip a bounded number of
//! 512 KiB blocks, zstd its jobs of 4 MiB.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use zstd::zstd_safe::CParameter;

use kiln_oci::{Descriptor, Digest, DigestWriter, LayerCompression, MediaType};

use crate::chunk_queue::{ChunkReceiver, ChunkSender, chunk_queue};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::pgzip::{DEFAULT_BLOCK_SIZE, ParallelGzEncoder};
use crate::tar_writer::{TarOptions, write_tar, write_tar_to};
use crate::tee::{TeeSink, TeeWriter};
use crate::threads::{join, spawn_named};

/// libzstd's job size: the tar is compressed in jobs of this size by its
/// workers. Jobs of 4 MiB keep a job's input and tables in a core's cache
/// (measured: less CPU per byte than the default 8 MiB at level 3, with the
/// same ratio) and bound the memory in flight.
const ZSTD_JOB_SIZE: u32 = 4 << 20;

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
pub fn encode_layer<W: Write + Send>(
    entries: Vec<Entry>,
    options: &EncodeOptions,
    sink: W,
) -> Result<(EncodedLayer, W)> {
    encode_layer_teed(entries, options, sink, None)
}

/// [`encode_layer`], with every byte of the tar stream also written to `tee`
/// (by the thread that reads the files; see `tee.rs`).
pub(crate) fn encode_layer_teed<W: Write + Send>(
    entries: Vec<Entry>,
    options: &EncodeOptions,
    sink: W,
    tee: Option<&mut (dyn Write + Send)>,
) -> Result<(EncodedLayer, W)> {
    options.compression.validate()?;
    if options.compression == Compression::None {
        // The blob is the tar: one hash gives both digests.
        let mut tar = DigestWriter::new(sink);
        match tee {
            Some(tee) => write_tar(
                entries,
                &options.tar,
                &mut TeeWriter {
                    a: &mut tar,
                    b: tee,
                },
            )?,
            None => write_tar(entries, &options.tar, &mut tar)?,
        }
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
    let (encoded, sink) = encode_in_stages(entries, options, sink, tee)?;
    tracing::debug!(digest = %encoded.digest, size = encoded.size, diff_id = %encoded.diff_id, "layer encoded");
    Ok((encoded, sink))
}

/// A compressed encode as three stages on their own threads, joined by
/// bounded queues (`chunk_queue`): the tar writer (reads the
/// files), the compressor on the calling thread (hashes the tar, feeds its
/// workers), the blob writer (hashes the blob, writes the sink). Reading
/// then overlaps compression, and a write that blocks on the disk does not
/// leave the compressor's workers idle. Each hash is taken by the thread
/// that reads the chunk anyway, while it is in cache (measured: 2-3% less
/// CPU than hashing on the tar thread).
///
/// A stage that fails drops its ends of the queues, so the stages next to
/// it fail with `BrokenPipe`; errors are therefore taken in the order sink,
/// compressor, tar: the first one there is the cause.
fn encode_in_stages<W: Write + Send>(
    entries: Vec<Entry>,
    options: &EncodeOptions,
    sink: W,
    tee: Option<&mut (dyn Write + Send)>,
) -> Result<(EncodedLayer, W)> {
    let (tar_tx, tar_rx) = chunk_queue();
    let (blob_tx, blob_rx) = chunk_queue();
    std::thread::scope(|scope| {
        let tar = spawn_named(scope, "kiln-layer-tar", move || {
            let mut tar_tx = tar_tx;
            match tee {
                Some(tee) => {
                    write_tar_to(entries, &options.tar, &mut TeeSink::new(&mut tar_tx, tee))?
                }
                None => write_tar_to(entries, &options.tar, &mut tar_tx)?,
            }
            tar_tx.finish().map_err(Error::Sink)
        });
        let writer = spawn_named(scope, "kiln-layer-write", move || {
            let mut sink = sink;
            let (digest, size) = blob_rx.drain_hashed_into(&mut sink)?;
            sink.flush()?;
            Ok::<_, io::Error>((sink, digest, size))
        });
        let compressed = compress(tar_rx, options, blob_tx);
        let (sink, digest, size) = join(writer).map_err(Error::Sink)?;
        let (diff_id, uncompressed_size) = compressed.map_err(Error::Sink)?;
        join(tar)?;
        let encoded = EncodedLayer {
            digest,
            size,
            diff_id,
            uncompressed_size,
            media_type: options.compression.oci_media_type(),
        };
        Ok((encoded, sink))
    })
}

/// The compressor stage: compresses the tar stream `tar` into `blob`;
/// returns the tar's sha256 (the diff_id) and size.
fn compress(
    tar: ChunkReceiver,
    options: &EncodeOptions,
    blob: ChunkSender,
) -> io::Result<(Digest, u64)> {
    let (blob, tarred) = match options.compression {
        Compression::None => unreachable!("plain layers are not staged"),
        Compression::Gzip { level } => {
            let mut gz = ParallelGzEncoder::new(blob, level, threads(options), DEFAULT_BLOCK_SIZE);
            let tarred = tar.drain_hashed_into(&mut gz)?;
            (gz.finish()?, tarred)
        }
        Compression::Zstd { level } => {
            let mut zst = zstd::stream::write::Encoder::new(blob, level)?;
            // Always use libzstd's multithreaded mode (even with 1 thread)
            // with a fixed job size: its output then depends on the level
            // and the job size only, never on the number of workers.
            let workers = u32::try_from(threads(options)).unwrap_or(1);
            zst.multithread(workers)?;
            zst.set_parameter(CParameter::JobSize(ZSTD_JOB_SIZE))?;
            // No XXH64 frame checksum: the blob's sha256 digest, which every
            // reader verifies, already covers every byte (measured: ~3% of
            // the encode's CPU).
            zst.include_checksum(false)?;
            let tarred = tar.drain_hashed_into(&mut zst)?;
            (zst.finish()?, tarred)
        }
    };
    blob.finish()?;
    Ok(tarred)
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
    let named = |source| Error::Io {
        action: "writing layer blob",
        path: path.to_owned(),
        source,
    };
    let (encoded, writer) = encode_layer(entries, options, BufWriter::with_capacity(1 << 20, file))
        .map_err(|e| match e {
            // The sink is this file: say which (a full disk names its directory).
            Error::Sink(source) => named(source),
            other => other,
        })?;
    writer.into_inner().map_err(|e| named(e.into_error()))?;
    Ok(encoded)
}
