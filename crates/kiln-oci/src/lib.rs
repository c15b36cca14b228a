//! Image data model: digests, media types, descriptors, manifests, indexes, image config, references, platforms, canonical JSON, OCI layout and docker-archive.
//!
//! (Design notes to come as the crate is built.)

#![warn(clippy::print_stdout, clippy::print_stderr)]
