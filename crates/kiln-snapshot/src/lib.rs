//! Filesystem snapshots: what a build step changed in a rootfs, as the entries of a layer.
//!
//! The engine drives one [`Snapshotter`] per stage rootfs:
//!
//! ```
//! use kiln_snapshot::{SnapshotOptions, Snapshotter};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let temp = tempfile::tempdir()?;
//! # let rootfs = temp.path().join("rootfs");
//! # std::fs::create_dir_all(rootfs.join("etc"))?;
//! # std::fs::write(rootfs.join("etc/hostname"), "base\n")?;
//! let mut options = SnapshotOptions::default(); // overlay where it mounts, else walk
//! options.ignore.add("/etc/resolv.conf")?; // bind-mounted by the sandbox: never captured
//! let mut snap = Snapshotter::new(&rootfs, options)?; // walk: takes the baseline
//!
//! let step = snap.begin()?; // overlay: mounts; walk: nothing
//! // The RUN runs chrooted into `step.root()`; here the step edits files itself.
//! std::fs::write(step.root().join("etc/motd"), "hello\n")?;
//! std::fs::remove_file(step.root().join("etc/hostname"))?;
//! let changes = step.finish()?; // the change set; the rootfs now holds the result
//!
//! let names: Vec<String> =
//!     changes.entries().iter().map(|e| String::from_utf8_lossy(&e.tar_path()).into()).collect();
//! assert_eq!(names, ["etc", "etc/.wh.hostname", "etc/motd"]); // the parent, a whiteout, the file
//!
//! // kiln-layer writes the layer from the change set, no second walk.
//! let options = kiln_layer::EncodeOptions::default();
//! let (layer, _blob) = kiln_layer::encode_layer(changes.into_entries(), &options, Vec::new())?;
//! println!("{:?} backend: layer {}", snap.backend(), layer.digest);
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
