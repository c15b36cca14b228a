//! Filesystem snapshots: what a build step changed in a rootfs, as the entries of a layer.
//!
//! The engine drives one [`Snapshotter`] per stage rootfs:
//!
//! ```no_run
//! # fn run_command_in(_: &std::path::Path) {}
//! # fn main() -> kiln_snapshot::Result<()> {
//! use kiln_snapshot::{IgnoreList, SnapshotOptions, Snapshotter};
//! let mut ignore = IgnoreList::kaniko_defaults("/kaniko".as_ref(), true)?;
//! ignore.add("/etc/resolv.conf")?; // bind-mounted by the sandbox: never captured
//! let mut snap = Snapshotter::new("/work/stage0/rootfs", SnapshotOptions { ignore, ..Default::default() })?;
//! let step = snap.begin()?;            // overlay: mounts; walk: nothing (baseline already taken)
//! run_command_in(step.root());         // the RUN, chrooted into step.root()
//! let changes = step.finish()?;        // the change set; the rootfs now holds the result
//! // kiln_layer::write_tar(changes.into_entries(), ..) writes the layer, no second walk.
//! # Ok(()) }
//! ```
//!
//! # Two backends, one decision
//!
//! * **Walk** ([`WalkSnapshotter`]) works everywhere. A baseline is a tree of compact
//!   per-path records (stat fields, a 128-bit digest of xattrs and of a symlink target, a
//!   SHA-256 of file contents in `full` mode) — never contents. Walks are parallel (rayon
//!   across subdirectories), open directories relative to their parent's fd and `statx`
//!   entries relative to it. An inode whose identity (dev, ino, birth time) and ctime are
//!   unchanged reuses its record without reading anything; only touched inodes get their
//!   xattrs, link target and (in `full` mode) contents read. The walk that computes a diff
//!   becomes the next step's baseline, so a step costs one walk — and after the first, not
//!   even that: an inotify journal (no privilege needed) watches every directory walked,
//!   and the walk after a step reads again only the directories that saw an event, their
//!   parents (which hold their records) and directories holding files with several hard
//!   links. Untouched subtrees are shared with the previous snapshot and skipped by the
//!   diff, so a step costs what it touched. A thread moves events out of the kernel
//!   queue as they come, so large steps do not overflow it. Without inotify, after an
//!   overflow anyway, or when an inode gained or lost links, the walk is whole again.
//! * **Overlay** ([`OverlaySnapshotter`]) mounts the rootfs as the lower dir of an
//!   overlay (redirect_dir and metacopy off, so upper holds whole files) and runs the step
//!   in the merged view. The upper dir is the change: char 0:0 devices become whiteouts,
//!   `trusted.overlay.opaque` (`user.overlay.opaque` in a user namespace) an opaque dir.
//!   A copy-up does not mean a change, so every upper file is compared with its lower
//!   counterpart. The upper dir is then moved into the rootfs by rename. Cost follows the
//!   change, not the rootfs.
//!
//! Both decide "changed" with the same function over the same attributes (type,
//! permissions, owner, mtime, size, rdev, xattrs, link target, and contents in `full`
//! mode; see [`SnapshotMode`]), and both report a directory as opaque exactly when it
//! replaces something that was at its path (deleted and recreated, or a directory where
//! a file was): that is why they produce identical layers. Hard link counts and ctime
//! only say "look closer", never "changed".
//!
//! # Change sets
//!
//! A [`ChangeSet`] is a list of [`kiln_layer::Entry`] in layer order: every changed path
//! described from disk once, the parent directories of every change (as Docker writes
//! them; never the root), whiteouts for the topmost deleted path only, an opaque marker
//! plus the full contents for replaced directories, and hard link groups among the
//! captured files (the first path in layer order carries the content, the others link to
//! it). A group is never cut by the step's boundary: when a captured file has more links
//! than captured names (a step linked a new name to a file from an earlier layer), its
//! other names are captured too, unchanged, as overlayfs copies the old name up for
//! Docker and buildah; the walk finds them in its snapshot, the overlay backend among
//! the upper dir's names and else by reading the rootfs's directories. Files are
//! referenced by their path in the rootfs, read when the layer is written.
//!
//! # Ignored paths
//!
//! [`IgnoreList`] holds kaniko's defaults (`/proc`, `/sys`, `/dev`, kiln's own dir,
//! `/etc/mtab`, `/var/run`), `--ignore-path`, mount points from `/proc/self/mountinfo`
//! when running in place, and whatever the sandbox bind-mounts. Ignored subtrees are
//! neither walked nor captured (the overlay backend still moves them into the rootfs, so
//! the rootfs is the same with either backend).
//!
//! The crate is synchronous, never prints (tracing events only) and every error names the
//! path and what was being done to it.

#![warn(clippy::print_stdout, clippy::print_stderr)]

mod attrs;
mod changeset;
mod diff;
mod error;
mod ignore;
mod journal;
mod links;
mod mode;
pub mod mountinfo;
mod overlay;
mod record;
mod snapshotter;
mod stat;
mod tree;
mod walk;

pub use changeset::ChangeSet;
pub use error::{Error, Result};
pub use ignore::{DEFAULT_KANIKO_DIR, IgnoreList};
pub use mode::{SnapshotMode, UnknownSnapshotMode};
pub use overlay::{OverlaySnapshotter, OverlayStep};
pub use snapshotter::{Backend, BackendChoice, SnapshotOptions, Snapshotter, Step};
pub use walk::WalkSnapshotter;
