//! The build engine: build context, stage graph, one step per instruction, RUN
//! isolation, snapshots to layers, and outputs (push, OCI layout, docker-archive,
//! digest files).
//!
//! Entry point: [`build`] with [`BuildOptions`] (one field per kaniko executor flag)
//! and a [`BuildObserver`] receiving [`BuildEvent`]s for log lines and progress.

#![warn(clippy::print_stdout, clippy::print_stderr)]

#[allow(dead_code)] // used by the engine being wired in
mod archive;
#[allow(dead_code)] // used by the engine being wired in
mod context;
#[allow(dead_code)] // used by the engine being wired in
mod copy;
#[allow(dead_code)] // used by the engine being wired in
mod dockerignore;
mod engine;
mod error;
mod events;
#[allow(dead_code)] // used by the engine being wired in
mod glob;
mod options;
mod outcome;
#[allow(dead_code)] // used by the engine being wired in
mod owner;
#[allow(dead_code)] // used by the engine being wired in
mod rootfs_path;
#[cfg(test)]
mod test_support;

pub use engine::build;
pub use error::BuildError;
pub use events::{BuildEvent, BuildObserver, NoopObserver, OutputStream, StepId, Transfer};
pub use options::{
    BuildOptions, CacheOptions, ClientCert, Compression, ContextSource, DockerfileSource,
    Isolation, RegistryOptions, RetryOptions, SecretSource, SnapshotMode,
};
pub use outcome::{BuildOutcome, LayerSummary, PhaseTimings};
