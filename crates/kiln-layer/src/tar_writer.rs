//! Writing a change set as a tar stream.
//!
//! [`write_tar`] validates the change set (no duplicate members, whiteouts
//! not mixed with entries for the same path, hardlinks pointing at files of
//! the same change set), sorts it into layer order ([`crate::order`]), makes
//! the first member of each hardlink group carry the content, and writes
//! ustar/PAX headers (module `tar_header`) followed by file contents read
//! in bounded chunks. Output is a pure function of the entries, their source
//! contents and [`TarOptions`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;

use crate::entry::{Entry, EntryKind, FileSource, LayerPath, WHITEOUT_PREFIX};
use crate::error::{Error, Result};
use crate::order::sort_entries;
use crate::tar_header::{BLOCK, HeaderSpec, typeflag, write_member_header, write_padding};

/// Options of the tar writer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TarOptions {
    /// Clamp every mtime to at most this many seconds since the epoch
    /// (`SOURCE_DATE_EPOCH` semantics for reproducible builds).
    pub source_date_epoch: Option<i64>,
}

/// Size of the buffer file contents are copied through.
const COPY_BUF: usize = 256 * 1024;

/// Writes `entries` as a tar stream (without compression) into `out`.
///
/// Mtimes are written with whole seconds (sub-second parts are dropped, as
/// Go's `archive/tar` does by default). The stream ends with the two zero
/// blocks of the tar format, without padding to a 10 KiB record.
pub fn write_tar<W: Write>(entries: Vec<Entry>, options: &TarOptions, out: &mut W) -> Result<()> {
    write_tar_to(
        entries,
        options,
        &mut Buffered {
            out,
            buf: vec![0u8; COPY_BUF],
        },
    )
}

/// [`write_tar`] into a [`TarSink`].
pub(crate) fn write_tar_to<S: TarSink>(
    entries: Vec<Entry>,
    options: &TarOptions,
    out: &mut S,
) -> Result<()> {
    let plan = plan(entries)?;
    for item in &plan {
        write_entry(item, options, out)?;
    }
    out.write_all(&[0u8; 2 * BLOCK]).map_err(Error::Sink)?;
    Ok(())
}

/// Where the tar writer puts the stream: a `Write` that also takes file
/// contents, so that a sink with a buffer of its own can have them read
/// straight into it.
pub(crate) trait TarSink: Write {
    /// Reads at most `max` (> 0) bytes of `file` into the stream; returns
    /// how many, 0 at the end of the file.
    fn read_file(&mut self, file: &mut File, max: usize) -> std::result::Result<usize, CopyError>;
}

/// Any `Write` as a [`TarSink`]: file contents go through a buffer.
struct Buffered<'a, W> {
    out: &'a mut W,
    buf: Vec<u8>,
}

impl<W: Write> Write for Buffered<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.out.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write> TarSink for Buffered<'_, W> {
    fn read_file(&mut self, file: &mut File, max: usize) -> std::result::Result<usize, CopyError> {
        let want = self.buf.len().min(max);
        let n = file.read(&mut self.buf[..want]).map_err(CopyError::Read)?;
        self.out
            .write_all(&self.buf[..n])
            .map_err(CopyError::Write)?;
        Ok(n)
    }
}

/// One member to write, after hardlink groups have been resolved.
struct Planned {
    entry: Entry,
    /// For members turned into hardlinks: the earlier member they point to.
    link_to: Option<LayerPath>,
}

fn invalid(path: &LayerPath, reason: impl Into<String>) -> Error {
    Error::InvalidChangeSet {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// Validates and orders the change set.
fn plan(mut entries: Vec<Entry>) -> Result<Vec<Planned>> {
    sort_entries(&mut entries);
    check_members(&entries)?;
    if !entries
        .iter()
        .any(|e| matches!(e.kind, EntryKind::Hardlink { .. }))
    {
        return Ok(entries
            .into_iter()
            .map(|entry| Planned {
                entry,
                link_to: None,
            })
            .collect());
    }
    plan_hardlinks(&entries)
}

/// Refuses duplicates (the same path for two non-marker entries, or a
/// whiteout next to any other entry of the same path), reserved names and
/// misplaced opaque markers.
fn check_members(entries: &[Entry]) -> Result<()> {
    let mut seen: HashMap<&LayerPath, &EntryKind> = HashMap::with_capacity(entries.len());
    let mut opaque: BTreeSet<&LayerPath> = BTreeSet::new();
    for entry in entries {
        if matches!(entry.kind, EntryKind::OpaqueDir) {
            if !opaque.insert(&entry.path) {
                return Err(invalid(&entry.path, "two opaque markers for one directory"));
            }
            continue;
        }
        if entry.path.file_name().starts_with(WHITEOUT_PREFIX) {
            return Err(invalid(
                &entry.path,
                "names starting with `.wh.` are reserved for whiteout markers in OCI layers",
            ));
        }
        if let Some(previous) = seen.insert(&entry.path, &entry.kind) {
            return Err(invalid(
                &entry.path,
                format!(
                    "two entries for one path ({} and {})",
                    previous.name(),
                    entry.kind.name()
                ),
            ));
        }
    }
    for dir in &opaque {
        if let Some(kind) = seen.get(dir)
            && !matches!(kind, EntryKind::Dir)
        {
            return Err(invalid(dir, format!("opaque marker on a {}", kind.name())));
        }
    }
    Ok(())
}

/// The plan of a change set with hardlinks: each link is resolved to the
/// regular file at the end of its chain, and the first member of each group
/// in layer order carries the content.
fn plan_hardlinks(entries: &[Entry]) -> Result<Vec<Planned>> {
    let kinds: BTreeMap<LayerPath, EntryKind> = entries
        .iter()
        .map(|e| (e.path.clone(), e.kind.clone()))
        .collect();
    let root_of = |start: &LayerPath| -> Result<LayerPath> {
        let mut current = start.clone();
        for _ in 0..=kinds.len() {
            match kinds.get(&current) {
                Some(EntryKind::File(_)) => return Ok(current),
                Some(EntryKind::Hardlink { target }) => current = target.clone(),
                Some(other) => {
                    return Err(invalid(
                        start,
                        format!("hardlink chain ends at a {} ({current})", other.name()),
                    ));
                }
                None => {
                    return Err(invalid(
                        start,
                        format!("hardlink target {current} is not in the change set"),
                    ));
                }
            }
        }
        Err(invalid(start, "hardlink cycle"))
    };
    let mut roots: BTreeMap<LayerPath, LayerPath> = BTreeMap::new(); // member -> root file
    for entry in entries {
        if matches!(entry.kind, EntryKind::Hardlink { .. }) {
            roots.insert(entry.path.clone(), root_of(&entry.path)?);
        }
    }
    let linked_roots: BTreeSet<&LayerPath> = roots.values().collect();

    // The first member of each group in layer order carries the content.
    let mut carrier: BTreeMap<LayerPath, LayerPath> = BTreeMap::new(); // root -> first member
    let mut planned = Vec::with_capacity(entries.len());
    for entry in entries {
        let root = match &entry.kind {
            EntryKind::Hardlink { .. } => roots.get(&entry.path).cloned(),
            EntryKind::File(_) if linked_roots.contains(&entry.path) => Some(entry.path.clone()),
            _ => None,
        };
        let Some(root) = root else {
            planned.push(Planned {
                entry: entry.clone(),
                link_to: None,
            });
            continue;
        };
        match carrier.get(&root) {
            Some(first) => planned.push(Planned {
                entry: entry.clone(),
                link_to: Some(first.clone()),
            }),
            None => {
                carrier.insert(root.clone(), entry.path.clone());
                let mut e = entry.clone();
                if let Some(source_kind) = kinds.get(&root) {
                    e.kind = source_kind.clone();
                }
                planned.push(Planned {
                    entry: e,
                    link_to: None,
                });
            }
        }
    }
    Ok(planned)
}

fn write_entry<S: TarSink>(item: &Planned, options: &TarOptions, out: &mut S) -> Result<()> {
    let entry = &item.entry;
    let meta = &entry.meta;
    let mut mtime = meta.mtime.sec;
    if let Some(epoch) = options.source_date_epoch {
        mtime = mtime.min(epoch);
    }
    let mut name = entry.tar_path();
    let empty = BTreeMap::new();
    let mut spec = HeaderSpec {
        name: &[],
        typeflag: typeflag::REGULAR,
        mode: meta.mode,
        uid: meta.uid,
        gid: meta.gid,
        size: 0,
        mtime,
        linkname: &[],
        uname: meta.user_name.as_deref(),
        gname: meta.group_name.as_deref(),
        devmajor: 0,
        devminor: 0,
        xattrs: &meta.xattrs,
    };
    let link_bytes;
    if let Some(first) = &item.link_to {
        link_bytes = first.as_bytes().to_vec();
        spec.typeflag = typeflag::HARDLINK;
        spec.linkname = &link_bytes;
        spec.name = &name;
        return write_member_header(&spec, out).map_err(Error::Sink);
    }
    match &entry.kind {
        EntryKind::File(FileSource::Bytes(bytes)) => {
            spec.size = bytes.len() as u64;
            spec.name = &name;
            write_member_header(&spec, out).map_err(Error::Sink)?;
            out.write_all(bytes).map_err(Error::Sink)?;
            write_padding(spec.size, out).map_err(Error::Sink)?;
        }
        EntryKind::File(FileSource::Path(source)) => {
            let io_err = |action, source_err| Error::Io {
                action,
                path: source.clone(),
                source: source_err,
            };
            let mut file = File::options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(source)
                .map_err(|e| io_err("opening source file", e))?;
            let size = file
                .metadata()
                .map_err(|e| io_err("reading metadata of source file", e))?
                .len();
            spec.size = size;
            spec.name = &name;
            write_member_header(&spec, out).map_err(Error::Sink)?;
            copy_exact(&mut file, size, out).map_err(|e| match e {
                CopyError::Read(e) => io_err("reading source file", e),
                CopyError::Write(e) => Error::Sink(e),
            })?;
            write_padding(size, out).map_err(Error::Sink)?;
        }
        EntryKind::Dir => {
            name.push(b'/');
            spec.typeflag = typeflag::DIR;
            spec.name = &name;
            write_member_header(&spec, out).map_err(Error::Sink)?;
        }
        EntryKind::Symlink { target } => {
            use std::os::unix::ffi::OsStrExt;
            spec.typeflag = typeflag::SYMLINK;
            spec.linkname = target.as_bytes();
            spec.name = &name;
            write_member_header(&spec, out).map_err(Error::Sink)?;
        }
        EntryKind::Hardlink { .. } => {
            unreachable!("plan() turns every hardlink into a content carrier or a link to one")
        }
        EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => {
            spec.typeflag = if matches!(entry.kind, EntryKind::CharDevice { .. }) {
                typeflag::CHAR
            } else {
                typeflag::BLOCK
            };
            spec.devmajor = *major;
            spec.devminor = *minor;
            spec.name = &name;
            write_member_header(&spec, out).map_err(Error::Sink)?;
        }
        EntryKind::Fifo => {
            spec.typeflag = typeflag::FIFO;
            spec.name = &name;
            write_member_header(&spec, out).map_err(Error::Sink)?;
        }
        EntryKind::Whiteout | EntryKind::OpaqueDir => {
            spec.xattrs = &empty;
            spec.name = &name;
            write_member_header(&spec, out).map_err(Error::Sink)?;
        }
    }
    Ok(())
}

/// A failed copy of file contents: reading the file or writing the stream.
pub(crate) enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies exactly `size` bytes; fails if the source is shorter (it changed
/// since it was measured), ignores anything beyond `size`.
fn copy_exact<S: TarSink>(
    file: &mut File,
    size: u64,
    out: &mut S,
) -> std::result::Result<(), CopyError> {
    let mut left = size;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(usize::MAX);
        let n = match out.read_file(file, want) {
            Ok(0) => {
                return Err(CopyError::Read(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("file shrank while being archived ({left} of {size} bytes missing)"),
                )));
            }
            Ok(n) => n,
            Err(CopyError::Read(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        left -= n as u64;
    }
    Ok(())
}
