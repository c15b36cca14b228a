//! Filesystem snapshots: baseline + diff into a change set; walk and overlay backends.
//!
//! (Design notes to come as the crate is built.)

#![warn(clippy::print_stdout, clippy::print_stderr)]

mod attrs;
mod changeset;
mod diff;
mod error;
mod ignore;
mod mode;
pub mod mountinfo;
mod overlay;
mod record;
mod snapshotter;
pub mod stat;
mod tree;
mod walk;

pub use changeset::ChangeSet;
pub use error::{Error, Result};
pub use ignore::{DEFAULT_KANIKO_DIR, IgnoreList};
pub use mode::{SnapshotMode, UnknownSnapshotMode};
pub use overlay::{OverlaySnapshotter, OverlayStep};
pub use snapshotter::{Backend, BackendChoice, SnapshotOptions, Snapshotter, Step};
pub use tree::Snapshot;
pub use walk::WalkSnapshotter;
