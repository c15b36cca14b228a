//! The in-memory snapshot of a tree: per directory, its entries sorted by name, each
//! with a compact [`Record`]. Built by a parallel walk (rayon) that opens directories
//! relative to their parent's fd and stats entries relative to it, as `find` does, and
//! that reuses the previous snapshot's digests for every untouched inode.

use std::ffi::{CString, OsStr};
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
pub(crate) struct Snapshot {
    pub(crate) tree: DirNode,
    pub(crate) mode: SnapshotMode,
    /// Wall-clock time when the walk started.
    pub(crate) taken_at: Timespec,
}

/// How long before a walk a ctime is too recent to prove an inode untouched: kernels
/// without fine-grained timestamps stamp with a clock that advances in ticks (at most
/// 10 ms), so a write in the same tick as the walk's stat can keep ctime unchanged.
/// Such "racy" files get their content hashed again at the next diff (`Full` mode).
const RACY_WINDOW: Duration = Duration::from_millis(100);

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
    let stat_one = |name: &CString| stat_entry(ctx, fd, abs, old, name);
    // Entries of one directory are stat'ed in order; only huge directories are split.
    let stated: Vec<Option<Node>> = if names.len() > BIG_DIR {
        names
            .par_iter()
            .with_min_len(BIG_DIR / 4)
            .map(stat_one)
            .collect::<Result<_>>()?
    } else {
        names.iter().map(stat_one).collect::<Result<_>>()?
    };
    let mut nodes: Vec<Node> = stated.into_iter().flatten().collect();
    // Subdirectories are walked in parallel (rayon work stealing spreads the tree).
    nodes
        .par_iter_mut()
        .filter(|n| n.rec.stat.file_type() == FileType::Dir)
        .try_for_each(|n| {
            let os_name = OsStr::from_bytes(&n.name);
            let path = abs.join(os_name);
            let sub = Dir::openat(Some(fd), os_name, DIR_FLAGS, Mode::empty())
                .map_err(|e| Error::io("opening directory", &path, e.into()))?;
            let old_sub = old
                .and_then(|o| o.find(&n.name))
                .filter(|o| o.rec.stat.same_inode(&n.rec.stat))
                .and_then(|o| o.dir.as_ref());
            n.dir = Some(scan_dir(ctx, sub, &path, &rel.join(os_name), old_sub)?);
            Ok::<(), Error>(())
        })?;
    drop(dir);
    Ok(DirNode { entries: nodes })
}

/// Directories with more entries than this are stat'ed by several threads.
const BIG_DIR: usize = 4096;

/// Stats one entry and builds its record. `None` when it vanished meanwhile.
fn stat_entry(
    ctx: &ScanCtx<'_>,
    fd: RawFd,
    abs: &Path,
    old: Option<&DirNode>,
    name: &CString,
) -> Result<Option<Node>> {
    let os_name = OsStr::from_bytes(name.to_bytes());
    let st = match stat::stat_at(fd, name) {
        Ok(st) => st,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(Error::io("stat of", abs.join(os_name), e)),
    };
    let old_rec = old.and_then(|o| o.find(name.to_bytes())).map(|n| &n.rec);
    let rec = Record::refresh(|| abs.join(os_name), st, old_rec, ctx.mode, ctx.racy_since)?;
    Ok(Some(Node {
        name: name.to_bytes().into(),
        rec,
        dir: None,
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
    let total = i128::from(t.sec) * 1_000_000_000 + i128::from(t.nsec) - d.as_nanos() as i128;
    Timespec {
        sec: i64::try_from(total.div_euclid(1_000_000_000)).unwrap_or(i64::MIN),
        nsec: u32::try_from(total.rem_euclid(1_000_000_000)).unwrap_or(0),
    }
}
