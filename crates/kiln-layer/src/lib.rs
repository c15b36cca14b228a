//! Layer codec: tar writer from a change set, gzip/zstd, one-pass digests, safe layer applier.
//!
//! (Design notes to come as the crate is built.)

#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod entry;
pub mod order;

pub use entry::{
    Entry, EntryKind, FileSource, InvalidPath, LayerPath, Metadata, OPAQUE_MARKER, Timestamp,
    WHITEOUT_PREFIX,
};
pub use order::{compare_entries, sort_entries};
