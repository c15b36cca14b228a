//! Layer codec: tar writer from a change set, gzip/zstd, one-pass digests, safe layer applier.
//!
//! (Design notes to come as the crate is built.)

#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod apply;
pub mod encode;
pub mod entry;
pub mod error;
pub mod order;
pub mod pgzip;
pub mod read;
mod rootfs;
mod sys;
mod tar_header;
pub mod tar_writer;

pub use apply::{Applied, ApplyOptions, ApplyStats, apply_layer, apply_tar};
pub use encode::{Compression, EncodeOptions, EncodedLayer, encode_layer, encode_layer_to_path};
pub use entry::{
    Entry, EntryKind, FileSource, InvalidPath, LayerPath, Metadata, OPAQUE_MARKER, Timestamp,
    WHITEOUT_PREFIX,
};
pub use error::{Error, Result};
pub use order::{compare_entries, sort_entries};
pub use read::{DecodedLayer, Expected, Measured, detect_compression};
pub use tar_writer::{TarOptions, write_tar};
