//! OCI distribution client: challenge auth, pull with platform selection, streaming push, mounts, retries, mirrors.
//!
//! (Design notes to come as the crate is built.)

#![warn(clippy::print_stdout, clippy::print_stderr)]
