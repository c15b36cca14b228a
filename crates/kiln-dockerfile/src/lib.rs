//! Dockerfile front end: parser, typed instructions, shell-word expansion, stages and ARG scoping. No I/O.
//!
//! (Design notes to come as the crate is built.)

#![warn(clippy::print_stdout, clippy::print_stderr)]
