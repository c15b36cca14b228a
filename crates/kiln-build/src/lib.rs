//! The build engine: context, stage graph, steps, RUN, snapshots to layers, outputs.
//!
//! (Design notes to come as the crate is built.)

#![warn(clippy::print_stdout, clippy::print_stderr)]
