//! The in-memory snapshot of a tree: per directory, its entries sorted by name, each
//! with a compact [`Record`]. Built by a parallel walk (rayon) that opens directories
//! relative to their parent's fd and stats entries relative to it, as `find` does, and
//! that reuses the previous snapshot's digests for every untouched inode.

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use nix::dir::Dir;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ignore::IgnoreList;
use crate::mode::SnapshotMode;
use crate::record::Record;
use crate::stat::{self, FileType, Timespec};

/// One path of the tree.
#[derive(Debug)]
pub(crate) struct Node {
    pub name: Box<[u8]>,
    pub rec: Record,
    /// The directory's contents, for directories.
    pub dir: Option<DirNode>,
}

/// The entries of one directory, sorted by name bytes.
#[derive(Debug, Default)]
pub(crate) struct DirNode {
    pub entries: Vec<Node>,
}

impl DirNode {
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.entries
            .binary_search_by(|n| (*n.name).cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }

    fn count(&self) -> usize {
        self.entries
            .iter()
            .map(|n| 1 + n.dir.as_ref().map_or(0, DirNode::count))
            .sum()
    }
}

/// A snapshot of a directory tree: what a walk saw, without file contents.
#[derive(Debug)]
pub struct Snapshot {
    pub(crate) tree: DirNode,
    pub(crate) mode: SnapshotMode,
    /// Wall-clock time when the walk started.
    pub(crate) taken_at: Timespec,
}

/// How long before a walk a ctime is too recent to prove an inode untouched: kernels
/// without fine-grained timestamps stamp with a clock that advances in ticks, so a
/// write in the same tick as the walk's stat can keep ctime unchanged.
const RACY_WINDOW: Duration = Duration::from_secs(1);

struct ScanCtx<'a> {
    ignore: &'a IgnoreList,
    mode: SnapshotMode,
    racy_since: Option<Timespec>,
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

impl Snapshot {
    /// Walks `root`, skipping `ignore`d paths. With `previous`, digests of inodes that did
    /// not change since then are reused instead of read again.
    pub(crate) fn take(
        root: &Path,
        ignore: &IgnoreList,
        mode: SnapshotMode,
        previous: Option<&Snapshot>,
    ) -> Result<Snapshot> {
        let now = SystemTime::now();
        let taken_at = to_timespec(now);
        let racy_since = previous
            .filter(|p| p.mode == mode)
            .map(|p| sub(p.taken_at, RACY_WINDOW));
        let ctx = ScanCtx {
            ignore,
            mode,
            racy_since,
        };
        let dir = Dir::open(root, DIR_FLAGS, Mode::empty())
            .map_err(|e| Error::io("opening directory", root, e.into()))?;
        let old = previous.filter(|p| p.mode == mode).map(|p| &p.tree);
        let tree = scan_dir(&ctx, dir, root, Path::new(""), old)?;
        tracing::debug!(root = %root.display(), entries = tree.count(), %mode, "walked tree");
        Ok(Snapshot {
            tree,
            mode,
            taken_at,
        })
    }

    /// Number of paths in the snapshot (the root excluded).
    pub fn len(&self) -> usize {
        self.tree.count()
    }

    /// True when the snapshotted tree was empty.
    pub fn is_empty(&self) -> bool {
        self.tree.entries.is_empty()
    }
}

fn scan_dir(
    ctx: &ScanCtx<'_>,
    mut dir: Dir,
    abs: &Path,
    rel: &Path,
    old: Option<&DirNode>,
) -> Result<DirNode> {
    let mut names: Vec<CString> = Vec::new();
    for entry in dir.iter() {
        let entry = entry.map_err(|e| Error::io("reading directory", abs, e.into()))?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        names.push(name.to_owned());
    }
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    if ctx.ignore.has_ignored_below(rel) {
        names.retain(|n| {
            let p = rel.join(OsStr::from_bytes(n.as_bytes()));
            let ignored = ctx.ignore.is_ignored_exactly(&p);
            if ignored {
                tracing::trace!(path = %p.display(), "ignored");
            }
            !ignored
        });
    }
    let fd = dir.as_raw_fd();
    let nodes: Vec<Option<Node>> = names
        .into_par_iter()
        .with_min_len(16)
        .map(|name| scan_entry(ctx, fd, abs, rel, old, &name))
        .collect::<Result<_>>()?;
    drop(dir);
    Ok(DirNode {
        entries: nodes.into_iter().flatten().collect(),
    })
}

/// Stats one entry (and walks it, for a directory). `None` when it vanished meanwhile.
fn scan_entry(
    ctx: &ScanCtx<'_>,
    fd: RawFd,
    abs: &Path,
    rel: &Path,
    old: Option<&DirNode>,
    name: &CStr,
) -> Result<Option<Node>> {
    let os_name = OsStr::from_bytes(name.to_bytes());
    let st = match stat::stat_at(fd, name) {
        Ok(st) => st,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(Error::io("stat of", abs.join(os_name), e)),
    };
    let old_node = old.and_then(|o| o.find(name.to_bytes()));
    let path = || abs.join(os_name);
    let rec = Record::refresh(path, st, old_node.map(|n| &n.rec), ctx.mode, ctx.racy_since)?;
    let dir = if st.file_type() == FileType::Dir {
        let sub = match Dir::openat(Some(fd), name, DIR_FLAGS, Mode::empty()) {
            Ok(d) => d,
            Err(nix::errno::Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(Error::io("opening directory", path(), e.into())),
        };
        let old_sub = old_node
            .filter(|n| n.rec.stat.same_inode(&st))
            .and_then(|n| n.dir.as_ref());
        Some(scan_dir(ctx, sub, &path(), &rel.join(os_name), old_sub)?)
    } else {
        None
    };
    Ok(Some(Node {
        name: name.to_bytes().into(),
        rec,
        dir,
    }))
}

fn to_timespec(t: SystemTime) -> Timespec {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Timespec {
        sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nsec: d.subsec_nanos(),
    }
}

fn sub(t: Timespec, d: Duration) -> Timespec {
    Timespec {
        sec: t.sec - i64::try_from(d.as_secs()).unwrap_or(0),
        nsec: t.nsec,
    }
}
