//! Layer codec: tar writer from a change set, gzip/zstd, one-pass digests, safe layer applier.
//!
//! (Design notes to come as the crate is built.)

#![warn(clippy::print_stdout, clippy::print_stderr)]
