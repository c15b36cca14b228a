//! The in-memory snapshot of a tree: per directory, its entries sorted by name, each
//! with a compact [`Record`]. Built by a parallel walk (rayon) that opens directories
//! relative to their parent's fd and stats entries relative to it, as `find` does, and
//! that reuses the previous snapshot's digests for every untouched inode.
//!
//! After a step, a [`Journal`] (inotify) narrows the walk: a directory is read again
//! only when it or one of its subdirectories saw an event (a subdirectory's own record
//! — mtime, mode — lives in its parent's listing), or when it holds a file with other
//! hard links (a write through another name is reported in that name's directory
//! only). Every other directory is shared, unread, with the previous snapshot, so a
//! step costs what it touched plus an in-memory pass over the directory nodes.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use nix::dir::Dir;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ignore::IgnoreList;
use crate::journal::{Dirty, Journal, Wd};
use crate::mode::SnapshotMode;
use crate::record::Record;
use crate::stat::{self, FileType, Stat, Timespec};

/// One path of the tree.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub name: Box<[u8]>,
    pub rec: Record,
    /// The directory's contents, for directories. Shared between consecutive snapshots
    /// when nothing below it changed, so a diff skips it by pointer equality.
    pub dir: Option<Arc<DirNode>>,
}

/// The entries of one directory, sorted by name bytes.
#[derive(Debug, Default)]
pub(crate) struct DirNode {
    pub entries: Vec<Node>,
    /// The journal's watch on this directory (`None`: not watched, read at every walk).
    pub watch: Option<Wd>,
    /// Some non-directory entry has several hard links: a write through another name,
    /// in a directory without events, changes it too, so the directory is read at every
    /// walk.
    pub has_links: bool,
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
            .map(|n| 1 + n.dir.as_ref().map_or(0, |d| d.count()))
            .sum()
    }
}

/// A snapshot of a directory tree: what a walk saw, without file contents.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) tree: Arc<DirNode>,
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
    /// Watches every directory read, when there is a journal.
    journal: Option<&'a Journal>,
    /// When refreshing after a step: the directories that saw events. Directories
    /// without events (and whose subdirectories saw none) are not read at all.
    dirty: Option<&'a Dirty>,
    /// The rootfs, open.
    root: &'a Path,
    root_fd: RawFd,
    /// A refresh met an inode with several links that it did not know as such: its
    /// other names may be in directories it did not read, so a full walk is needed.
    links_changed: AtomicBool,
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

impl Snapshot {
    /// Walks `root`, skipping `ignore`d paths, watching every directory with `journal`.
    /// With `previous`, digests of inodes that did not change since then are reused
    /// instead of read again.
    pub(crate) fn take(
        root: &Path,
        ignore: &IgnoreList,
        mode: SnapshotMode,
        previous: Option<&Snapshot>,
        journal: Option<&Journal>,
    ) -> Result<Snapshot> {
        walk(root, ignore, mode, previous, journal, None).map(|(s, _)| s)
    }

    /// The current state of `root`, which `previous` described before the events
    /// `journal` holds: only directories with events (and their parents, whose record
    /// of them changed) are read again; everything else is shared with `previous`.
    /// Walks the whole tree when the journal lost events or an inode gained or lost
    /// hard links.
    pub(crate) fn refresh(
        root: &Path,
        ignore: &IgnoreList,
        previous: &Snapshot,
        journal: &Journal,
    ) -> Result<Snapshot> {
        let mode = previous.mode;
        let dirty = journal.drain();
        if let Dirty::All = dirty {
            return Snapshot::take(root, ignore, mode, Some(previous), Some(journal));
        }
        let (snap, links_changed) = walk(
            root,
            ignore,
            mode,
            Some(previous),
            Some(journal),
            Some(&dirty),
        )?;
        if links_changed {
            tracing::debug!(root = %root.display(), "hard links changed: walking the whole tree");
            return Snapshot::take(root, ignore, mode, Some(previous), Some(journal));
        }
        Ok(snap)
    }
}

/// A full walk (`dirty` is `None`) or a refresh; also says whether hard links changed.
fn walk(
    root: &Path,
    ignore: &IgnoreList,
    mode: SnapshotMode,
    previous: Option<&Snapshot>,
    journal: Option<&Journal>,
    dirty: Option<&Dirty>,
) -> Result<(Snapshot, bool)> {
    let taken_at = to_timespec(SystemTime::now());
    let previous = previous.filter(|p| p.mode == mode);
    let root_dir = Dir::open(root, DIR_FLAGS, Mode::empty())
        .map_err(|e| Error::io("opening directory", root, e.into()))?;
    let ctx = ScanCtx {
        ignore,
        mode,
        racy_since: previous.map(|p| sub(p.taken_at, RACY_WINDOW)),
        journal,
        dirty,
        root,
        root_fd: root_dir.as_raw_fd(),
        links_changed: AtomicBool::new(false),
    };
    let here = Path::new("");
    let tree = match (dirty, previous) {
        (Some(dirty), Some(old)) => refresh_dir(&ctx, dirty, &old.tree, root, here, &|| {
            open_beneath(&ctx, here)
        })?,
        _ => Arc::new(scan_dir(
            &ctx,
            open_beneath(&ctx, here)?,
            root,
            here,
            previous.map(|p| &*p.tree),
        )?),
    };
    drop(root_dir);
    tracing::debug!(root = %root.display(), entries = tree.count(), %mode, refresh = dirty.is_some(), "walked tree");
    let links_changed = ctx.links_changed.load(Ordering::Relaxed);
    Ok((
        Snapshot {
            tree,
            mode,
            taken_at,
        },
        links_changed,
    ))
}

/// Opens directory `rel` of the rootfs one component at a time, never following a
/// symlink.
fn open_beneath(ctx: &ScanCtx<'_>, rel: &Path) -> Result<Dir> {
    let err = |e: nix::Error| Error::io("opening directory", ctx.root.join(rel), e.into());
    let mut dir = Dir::openat(Some(ctx.root_fd), ".", DIR_FLAGS, Mode::empty()).map_err(err)?;
    for part in rel.components() {
        dir = Dir::openat(
            Some(dir.as_raw_fd()),
            part.as_os_str(),
            DIR_FLAGS,
            Mode::empty(),
        )
        .map_err(err)?;
    }
    Ok(dir)
}

/// The directory `old` describes, as it is now: read again when the journal says it
/// (or one of its subdirectories, whose record it holds) changed, else shared with
/// `old` unless something below changed.
fn refresh_dir(
    ctx: &ScanCtx<'_>,
    dirty: &Dirty,
    old: &Arc<DirNode>,
    abs: &Path,
    rel: &Path,
    open: &dyn Fn() -> Result<Dir>,
) -> Result<Arc<DirNode>> {
    let must_read = old.has_links
        || dirty.contains(old.watch)
        || old
            .entries
            .iter()
            .any(|n| n.dir.as_ref().is_some_and(|d| dirty.contains(d.watch)));
    if must_read {
        return Ok(Arc::new(scan_dir(ctx, open()?, abs, rel, Some(old))?));
    }
    let subdirs: Vec<(usize, &Arc<DirNode>)> = old
        .entries
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.dir.as_ref().map(|d| (i, d)))
        .collect();
    let changed: Vec<(usize, Arc<DirNode>)> = subdirs
        .into_par_iter()
        .map(|(i, sub)| {
            let name = OsStr::from_bytes(&old.entries[i].name);
            let sub_rel = rel.join(name);
            let new = refresh_dir(ctx, dirty, sub, &abs.join(name), &sub_rel, &|| {
                open_beneath(ctx, &sub_rel)
            })?;
            Ok((!Arc::ptr_eq(&new, sub)).then_some((i, new)))
        })
        .filter_map(Result::transpose)
        .collect::<Result<_>>()?;
    if changed.is_empty() {
        return Ok(Arc::clone(old));
    }
    let mut entries = old.entries.clone();
    for (i, new) in changed {
        entries[i].dir = Some(new);
    }
    Ok(Arc::new(DirNode {
        entries,
        watch: old.watch,
        has_links: old.has_links,
    }))
}

fn scan_dir(
    ctx: &ScanCtx<'_>,
    mut dir: Dir,
    abs: &Path,
    rel: &Path,
    old: Option<&DirNode>,
) -> Result<DirNode> {
    // Watched before it is read: whatever changes after the read is reported.
    let watch = ctx.journal.and_then(|j| j.watch(dir.as_raw_fd(), abs));
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
            let sub_rel = rel.join(os_name);
            let open = || {
                Dir::openat(Some(fd), os_name, DIR_FLAGS, Mode::empty())
                    .map_err(|e| Error::io("opening directory", &path, e.into()))
            };
            let old_sub = old
                .and_then(|o| o.find(&n.name))
                .filter(|o| o.rec.stat.same_inode(&n.rec.stat))
                .and_then(|o| o.dir.as_ref());
            n.dir = Some(match (ctx.dirty, old_sub) {
                (Some(dirty), Some(old_sub)) => {
                    refresh_dir(ctx, dirty, old_sub, &path, &sub_rel, &open)?
                }
                (_, old_sub) => Arc::new(scan_dir(
                    ctx,
                    open()?,
                    &path,
                    &sub_rel,
                    old_sub.map(|d| &**d),
                )?),
            });
            Ok::<(), Error>(())
        })?;
    drop(dir);
    let has_links = nodes
        .iter()
        .any(|n| n.rec.stat.file_type() != FileType::Dir && n.rec.stat.nlink > 1);
    Ok(DirNode {
        entries: nodes,
        watch,
        has_links,
    })
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
    if ctx.dirty.is_some() && links_changed(old_rec, &st) {
        ctx.links_changed.store(true, Ordering::Relaxed);
    }
    let rec = Record::refresh(|| abs.join(os_name), st, old_rec, ctx.mode, ctx.racy_since)?;
    Ok(Some(Node {
        name: name.to_bytes().into(),
        rec,
        dir: None,
    }))
}

/// True when the non-directory now stat'ed as `new` has several links and was not known
/// with the same links before, or had several links and no longer has the same ones.
fn links_changed(old: Option<&Record>, new: &Stat) -> bool {
    if new.file_type() == FileType::Dir {
        return false;
    }
    let old = old
        .map(|r| &r.stat)
        .filter(|o| o.file_type() != FileType::Dir);
    let multi = new.nlink > 1 || old.is_some_and(|o| o.nlink > 1);
    let same = old.is_some_and(|o| o.same_inode(new) && o.nlink == new.nlink);
    multi && !same
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path with its record, depth first.
    fn flatten(dir: &DirNode, prefix: &str, out: &mut Vec<(String, Record)>) {
        for n in &dir.entries {
            let path = format!("{prefix}/{}", String::from_utf8_lossy(&n.name));
            out.push((path.clone(), n.rec));
            if let Some(d) = &n.dir {
                flatten(d, &path, out);
            }
        }
    }

    fn records(s: &Snapshot) -> Vec<(String, Record)> {
        let mut out = Vec::new();
        flatten(&s.tree, "", &mut out);
        out
    }

    fn subdir<'a>(d: &'a DirNode, name: &str) -> &'a Arc<DirNode> {
        d.find(name.as_bytes())
            .and_then(|n| n.dir.as_ref())
            .unwrap()
    }

    #[test]
    fn a_refresh_reads_only_touched_directories_and_equals_a_full_walk() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for d in ["one/a", "one/b", "two/c"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
            for f in 0..3 {
                std::fs::write(root.join(d).join(format!("f{f}")), d).unwrap();
            }
        }
        let ignore = IgnoreList::new();
        let journal = Journal::new().expect("inotify available");
        let mode = SnapshotMode::Redo;
        let before = Snapshot::take(root, &ignore, mode, None, Some(&journal)).unwrap();
        std::fs::write(root.join("one/a/f1"), "changed").unwrap();
        let after = Snapshot::refresh(root, &ignore, &before, &journal).unwrap();
        let full = Snapshot::take(root, &ignore, mode, None, None).unwrap();
        assert_eq!(records(&after), records(&full));
        assert_ne!(records(&after), records(&before));
        let (b_one, a_one) = (subdir(&before.tree, "one"), subdir(&after.tree, "one"));
        assert!(Arc::ptr_eq(
            subdir(&before.tree, "two"),
            subdir(&after.tree, "two")
        ));
        assert!(Arc::ptr_eq(subdir(b_one, "b"), subdir(a_one, "b")));
        assert!(!Arc::ptr_eq(subdir(b_one, "a"), subdir(a_one, "a")));
        // Nothing happened since: everything is shared.
        let again = Snapshot::refresh(root, &ignore, &after, &journal).unwrap();
        assert!(Arc::ptr_eq(&after.tree, &again.tree));
    }
}
