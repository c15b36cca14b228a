//! Test support: real registries on 127.0.0.1 (plain, TLS, htpasswd, token), a token
//! issuer, a fault-injecting proxy, fixture images.
//!
//! (Design notes to come as the crate is built.)

#![warn(clippy::print_stdout, clippy::print_stderr)]
pub mod busybox;
pub mod htpasswd;
pub mod image;
pub mod ports;
pub mod proxy;
pub mod registry;
mod server;
pub mod tls;
pub mod token;
pub mod tools;

pub use image::{FixtureImage, FixtureLayer};
pub use proxy::{FailRule, FaultProxy, Faults, TruncateRule};
pub use registry::{Registry, RegistryBuilder};
pub use tls::{CertFiles, RegistryTls, TestCa};
pub use token::{TokenIssuer, TokenIssuerBuilder, TokenUser};
