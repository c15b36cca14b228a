//! RUN isolation: chroot (namespaces) and in-place modes, user resolution, process cleanup.
//!
//! (Design notes to come as the crate is built.)

#![warn(clippy::print_stdout, clippy::print_stderr)]
