//! Layer codec: tar writer from a change set, gzip/zstd, one-pass digests,
//! safe layer applier.
//!
//! # Writing a layer
//!
//! A layer to write is a list of [`Entry`] values (the *change set*): a
//! [`LayerPath`] (relative, raw bytes), an [`EntryKind`] (file read from disk
//! or from memory, directory, symlink, hardlink, device, fifo, whiteout,
//! opaque-directory marker) and [`Metadata`] (full mode, ids, names, mtime,
//! xattrs). [`encode_layer`] turns it into a blob in one streaming pass:
//!
//! ```text
//! entries --sort--> tar writer --> sha256 (diff_id) --> gzip|zstd|none --> sha256+count --> sink
//! ```
//!
//! - Order ([`order`]): component-wise byte order, so parents precede
//!   children; inside a directory the opaque marker first, then whiteouts,
//!   then the rest (the OCI image spec's recommendation).
//! - Headers ([`tar_writer`]): ustar, plus a PAX header whenever a field does
//!   not fit (long or non-ASCII names and link targets, ids, sizes of 8 GiB
//!   and more, xattrs as `SCHILY.xattr.*`), as Go's `archive/tar` does.
//!   Mtimes are whole seconds, optionally clamped to `SOURCE_DATE_EPOCH`.
//! - Threads: for a compressed layer the tar writer, the compressor and the
//!   blob writer run on their own threads joined by bounded queues of 1 MiB
//!   chunks (`chunk_queue`), so reading and hashing overlap compression.
//! - gzip ([`pgzip`]): pigz's technique on worker threads, fixed 512 KiB
//!   blocks with the previous 32 KiB as dictionary, so the bytes do not
//!   depend on the thread count. zstd runs libzstd's multithreaded mode
//!   (always with >= 1 worker and 4 MiB jobs: output independent of the
//!   count; no frame checksum, the sha256 digest covers the blob).
//! - Memory is bounded: at most 4 chunks queued between threads, at most
//!   `2 * threads + 1` gzip blocks or a few zstd jobs in flight, whatever the
//!   layer size (tested: encoding a 2 GiB layer with gzip and with zstd,
//!   applying a 512 MiB gzip one and a 256 MiB plain one from its file,
//!   mapped a window at a time, peak at 45-50 MiB RSS, `tests/memory.rs`).
//!
//! # Reading and applying a layer
//!
//! [`DecodedLayer`] detects the compression from magic bytes (never from a
//! media type) and measures the blob digest, size and diff_id as it streams;
//! [`DecodedLayer::finish`] compares them with the [`Expected`] values.
//! [`apply_layer`] extracts onto a rootfs directory with OCI whiteout and
//! opaque-directory semantics (applied to lower layers only), hardlinks,
//! owners, modes, mtimes and xattrs; [`apply_entries`] does the same for a
//! change set, through the same machinery. [`apply_layer_file`] applies a
//! blob stored in a file: a plain one is read through memory mappings
//! (`mapped`), hashed in place on one thread while the applier writes file
//! contents straight from the mapping, with no copy out of the page cache.
//!
//! **Architecture invariant: applying never writes outside the root.** Entry
//! names with `..` are refused, absolute names are taken relative to the
//! root, and every parent directory is resolved one component at a time
//! from a descriptor of the root with `O_NOFOLLOW`, symlinks being followed
//! *as if the root were `/`* (an absolute target restarts at the root, `..`
//! stops there). The entry itself is created with `*at` calls relative to
//! its parent's descriptor and never through a symlink. The tar crate is
//! used only to parse headers, never to unpack.
//!
//! No tokio, no printing: errors are [`Error`] values naming the blob, the
//! entry or the file and what was being done; progress goes to `tracing`.
//!
//! # Example: encode a layer, then apply it
//!
//! ```
//! use kiln_layer::{
//!     ApplyOptions, EncodeOptions, Entry, Expected, LayerPath, Metadata, apply_layer,
//!     encode_layer,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A change set: a directory, a file held in memory (`Entry::file` reads one
//! // from disk when the layer is written) and a symlink.
//! let entries = vec![
//!     Entry::dir(LayerPath::new("etc")?, Metadata::with_mode(0o755)),
//!     Entry::bytes(LayerPath::new("etc/motd")?, b"hello\n".to_vec(), Metadata::with_mode(0o644)),
//!     Entry::symlink(LayerPath::new("etc/issue")?, "motd", Metadata::with_mode(0o777)),
//! ];
//!
//! // Encode (gzip level 6 by default) into any `Write`: a file, a socket, a Vec.
//! let (layer, blob) = encode_layer(entries, &EncodeOptions::default(), Vec::new())?;
//! assert_eq!(layer.size, blob.len() as u64);
//! println!("{} {} diff_id {}", layer.media_type, layer.digest, layer.diff_id);
//!
//! // Apply it onto a root filesystem; digests, size and diff_id are checked.
//! # let temp = tempfile::tempdir()?;
//! # let rootfs = temp.path();
//! let expected = Expected {
//!     digest: Some(layer.digest.clone()),
//!     size: Some(layer.size),
//!     diff_id: Some(layer.diff_id.clone()),
//! };
//! // Owners are set from the layer (here root): that needs root or CAP_CHOWN,
//! // else use `ApplyOptions { preserve_owners: false, .. }`.
//! let applied = apply_layer(blob.as_slice(), "example", expected, rootfs, &ApplyOptions::default())?;
//! assert_eq!(applied.stats.entries, 3);
//! assert_eq!(std::fs::read(rootfs.join("etc/issue"))?, b"hello\n");
//! # Ok(()) }
//! ```

#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod apply;
mod chunk_queue;
pub mod encode;
pub mod entry;
pub mod error;
mod mapped;
pub mod order;
pub mod pgzip;
mod placement;
mod prefetch;
pub mod read;
mod readahead;
mod rootfs;
mod sparse;
mod sys;
mod tar_header;
pub mod tar_writer;
mod tee;
mod threads;

pub use apply::{
    Applied, ApplyOptions, ApplyStats, apply_entries, apply_layer, apply_layer_file, apply_tar,
};
pub use encode::{Compression, EncodeOptions, EncodedLayer, encode_layer, encode_layer_to_path};
pub use entry::{
    Entry, EntryKind, FileSource, InvalidPath, LayerPath, Metadata, OPAQUE_MARKER, Timestamp,
    WHITEOUT_PREFIX,
};
pub use error::{Error, Result};
pub use order::{compare_entries, sort_entries};
pub use placement::spread_new_dirs;
pub use read::{DecodedLayer, Expected, Measured, detect_compression};
pub use tar_writer::{TarOptions, write_tar};
pub use tee::encode_layer_applying;
