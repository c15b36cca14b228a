//! Registry credentials and TLS material: docker config.json, credential helpers, CA bundles, client certs.
//!
//! (Design notes to come as the crate is built.)

#![warn(clippy::print_stdout, clippy::print_stderr)]
