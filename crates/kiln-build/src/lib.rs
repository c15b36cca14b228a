//! The build engine: build context, stage graph, one step per instruction, RUN
//! isolation, snapshots to layers, and outputs (push, OCI layout, docker-archive,
//! digest files).
//!
//! Entry point: [`build`] with [`BuildOptions`] (one field per kaniko executor flag)
//! and a [`BuildObserver`] receiving [`BuildEvent`]s for log lines and progress.

#![warn(clippy::print_stdout, clippy::print_stderr)]

mod archive;
mod blobs;
mod context;
mod copy;
mod dockerignore;
mod download;
mod engine;
mod error;
mod events;
mod glob;
mod image;
mod inplace;
mod options;
mod outcome;
mod output;
mod owner;
mod pull;
mod registry_glue;
mod rootfs_path;
mod run;
mod stage;
#[cfg(test)]
mod test_support;
mod time;
mod unpack;

pub use engine::build;
pub use error::BuildError;
pub use events::{BuildEvent, BuildObserver, NoopObserver, OutputStream, StepId, Transfer};
pub use options::{
    BuildOptions, CacheOptions, ClientCert, Compression, ContextSource, DockerfileSource,
    Isolation, RegistryOptions, RetryOptions, SecretSource, SnapshotMode,
};
pub use outcome::{BuildOutcome, LayerSummary, PhaseTimings};
