//! Filesystem snapshots: baseline + diff into a change set; walk and overlay backends.
//!
//! (Design notes to come as the crate is built.)

#![warn(clippy::print_stdout, clippy::print_stderr)]
