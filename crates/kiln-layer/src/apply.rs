//! Applying a layer onto a rootfs directory, never writing outside it.
//!
//! Entry names are normalised first: leading `/` and `.` components are
//! dropped (the layer is rooted at the rootfs), a `..` component anywhere is
//! refused. The parent directory of every entry is then resolved inside the
//! root by `rootfs::Root::resolve_dir` (symlinks followed *as if the
//! rootfs were `/`*), and the entry itself is created with `*at` calls
//! relative to that parent's descriptor, never following a symlink in its
//! own name. Hardlink targets are resolved the same way and linked with
//! `linkat(.., 0)`, which does not follow a symlink either.
//!
//! OCI semantics:
//! - An existing non-directory, or an existing directory replaced by a
//!   non-directory, is removed before the new entry is created; a directory
//!   over a directory is merged (its metadata updated).
//! - `.wh.NAME` removes `NAME` from lower layers; `.wh..wh..opq` removes
//!   everything lower layers had in its directory. Both apply to lower layers
//!   only: what this layer itself created is kept whatever the entry order.
//! - Owners (when [`ApplyOptions::preserve_owners`]), modes including
//!   setuid/setgid/sticky (set after the owner, which would clear them),
//!   xattrs from `SCHILY.xattr.*` (except `trusted.overlay.*`, which would
//!   change what an overlay mount shows), mtimes (directories last, since
//!   creating children changes them).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use kiln_oci::LayerCompression;

use crate::entry::{Entry, OPAQUE_MARKER, WHITEOUT_PREFIX};
use crate::error::{Error, Result};
use crate::mapped::MappedBlob;
use crate::read::{DecodedLayer, Expected, Measured, check_size, detect_compression};
use crate::readahead::{spawn_decoder, spawn_mapped_hasher, spawn_plain};
use crate::rootfs::{ResolvedDir, Root, remove_all_at};
use crate::sparse::{PaxSparse, write_segments};
use crate::sys;
use crate::tar_writer::{TarOptions, write_tar};
use crate::threads;

/// Options of the applier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Set owners from the tar headers (needs root or CAP_CHOWN). When off,
    /// everything belongs to the calling user.
    pub preserve_owners: bool,
    /// Set extended attributes from `SCHILY.xattr.*` records.
    pub xattrs: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            preserve_owners: true,
            xattrs: true,
        }
    }
}

/// Counters of one application.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Tar members applied (whiteouts included).
    pub entries: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
    /// Whiteouts and opaque markers processed.
    pub whiteouts: u64,
}

/// The result of [`apply_layer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Digests and sizes measured (and verified against the expectations).
    pub measured: Measured,
    /// Counters.
    pub stats: ApplyStats,
}

/// Decodes a layer blob (any compression), applies it onto `root` and
/// verifies its digests. The verification completes when the whole blob has
/// been read, i.e. after the rootfs was written: callers that must not touch
/// the rootfs with unverified data verify the stored blob first (registry
/// pulls do so while downloading).
///
/// Reading, decompressing and hashing run on a second thread
/// (`readahead`) while this one makes the file-system calls; a
/// plain blob is read on one thread and hashed on another.
pub fn apply_layer<R: Read + Send>(
    blob: R,
    name: &str,
    expected: Expected,
    root: &Path,
    options: &ApplyOptions,
) -> Result<Applied> {
    // the magic decides, as in `DecodedLayer`; a plain blob needs no decoder
    let mut blob = blob;
    let mut head = Vec::with_capacity(4);
    (&mut blob)
        .take(4)
        .read_to_end(&mut head)
        .map_err(Error::reading(name))?;
    let plain = detect_compression(&head) == LayerCompression::None;
    let blob = io::Cursor::new(head).chain(blob);
    enum Source<B: Read> {
        Plain(B, Expected),
        Compressed(Box<DecodedLayer<B>>),
    }
    let source = if plain {
        Source::Plain(blob, expected)
    } else {
        Source::Compressed(Box::new(DecodedLayer::new(blob, name, expected)?))
    };
    std::thread::scope(|scope| {
        let (mut tar, decoder) = match source {
            Source::Plain(blob, expected) => spawn_plain(scope, blob, name, expected),
            Source::Compressed(decoded) => spawn_decoder(scope, *decoded),
        };
        let applied = apply_stream(&mut tar, name, root, options);
        // lets the decoder stop if the applier gave up early
        drop(tar);
        verified(name, applied, threads::join(decoder))
    })
}

/// [`apply_layer`] for a blob stored in a file, read from its start (a
/// pipe or other stream from where it stands).
///
/// A plain (uncompressed) blob in a regular file is read through memory
/// mappings (`mapped`): one thread hashes it while this one applies
/// it, neither copying it out of the page cache first. The file must not be
/// truncated meanwhile (the process would receive `SIGBUS`, as with any
/// mapped file); kiln's blob store never truncates a stored blob. A
/// compressed blob, or a file that cannot be mapped, is read as
/// [`apply_layer`] reads any stream. A regular file whose size is not the
/// expected one is refused before anything is written.
pub fn apply_layer_file(
    file: &File,
    name: &str,
    expected: Expected,
    root: &Path,
    options: &ApplyOptions,
) -> Result<Applied> {
    let read_err = Error::reading(name);
    let metadata = file.metadata().map_err(read_err)?;
    let len = metadata.len();
    if metadata.is_file() {
        // refused before anything is written
        check_size(name, &expected, len)?;
    }
    let mut head = [0u8; 4];
    let plain_file = metadata.is_file()
        && file
            .read_at(&mut head, 0)
            .is_ok_and(|n| detect_compression(&head[..n]) == LayerCompression::None);
    let blob = MappedBlob::new(file, len);
    let mappable = plain_file && len > 0 && blob.probe().is_ok();
    if !mappable {
        let mut reader = file;
        if metadata.is_file() {
            reader.seek(io::SeekFrom::Start(0)).map_err(read_err)?;
        }
        return apply_layer(
            io::BufReader::with_capacity(1 << 20, reader),
            name,
            expected,
            root,
            options,
        );
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let hasher = spawn_mapped_hasher(scope, file, len, name, expected, &stop);
        // the hasher reads every byte, including any after the archive's end
        let applied = Applier::open(root, name, options, Some(&blob)).and_then(|applier| {
            let mut archive = tar::Archive::new(&blob);
            let members = archive.entries_with_seek().map_err(Error::reading(name))?;
            applier.apply_members(members)
        });
        if applied.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        verified(name, applied, threads::join(hasher))
    })
}

/// Applies the tar stream `tar` and reads it to its end: what follows the
/// end-of-archive blocks still belongs to the blob (and to its digest).
fn apply_stream(
    tar: &mut impl Read,
    name: &str,
    root: &Path,
    options: &ApplyOptions,
) -> Result<ApplyStats> {
    let stats = apply_tar(&mut *tar, name, root, options)?;
    io::copy(tar, &mut io::sink()).map_err(Error::reading(name))?;
    Ok(stats)
}

/// The result of applying a blob whose reader (`verified`: the blob checked
/// against what was expected) ran on another thread. The applier's error
/// comes first: the reader only stops early when the applier failed.
fn verified(
    name: &str,
    applied: Result<ApplyStats>,
    verified: Option<Result<Measured>>,
) -> Result<Applied> {
    let stats = applied?;
    match verified {
        Some(measured) => Ok(Applied {
            measured: measured?,
            stats,
        }),
        // the reader only stops early when the applier failed, so not reached
        None => Err(Error::reading(name)(io::Error::other(
            "layer decoding stopped before the end of the blob",
        ))),
    }
}

/// Applies an uncompressed tar stream onto `root`. `name` names the blob in
/// errors.
pub fn apply_tar<R: Read>(
    tar: R,
    name: &str,
    root: &Path,
    options: &ApplyOptions,
) -> Result<ApplyStats> {
    let applier = Applier::open(root, name, options, None)?;
    let mut archive = tar::Archive::new(tar);
    let members = archive.entries().map_err(Error::reading(name))?;
    applier.apply_members(members)
}

/// Applies a change set directly onto `root` with the same root-confined
/// machinery and semantics as [`apply_tar`] (whiteouts remove, opaque
/// markers clear lower content, hardlinks link, nothing escapes the root).
///
/// The entries are written as a tar stream (see [`crate::write_tar`]) on a
/// helper thread and applied from a pipe as they come, so memory stays
/// bounded. Mtimes are applied in whole seconds, as in a layer.
pub fn apply_entries(
    entries: Vec<Entry>,
    root: &Path,
    options: &ApplyOptions,
) -> Result<ApplyStats> {
    let (reader, mut writer) = io::pipe().map_err(|source| Error::Io {
        action: "creating a pipe to apply a change set onto",
        path: root.to_owned(),
        source,
    })?;
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let written = write_tar(entries, &TarOptions::default(), &mut writer);
            drop(writer);
            written
        });
        let applied = apply_tar(reader, "change set", root, options);
        let written = producer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        match (written, applied) {
            // a source file could not be read: that is the cause, not the
            // truncated stream the applier then saw
            (Err(e), _) if !matches!(e, Error::Sink(_)) => Err(e),
            (_, Err(e)) => Err(e),
            (Err(e), Ok(_)) => Err(e),
            (Ok(()), Ok(stats)) => Ok(stats),
        }
    })
}

/// Splits a tar name into components: leading `/` and `.` are dropped,
/// `..` is refused.
fn normalize(raw: &[u8]) -> std::result::Result<Vec<Vec<u8>>, &'static str> {
    let mut out = Vec::new();
    for component in raw.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err("a `..` component would leave the root"),
            _ => out.push(component.to_vec()),
        }
    }
    Ok(out)
}

fn join(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.join(&b'/')
}

/// Metadata read from a member's header and PAX records.
struct MemberMeta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime_sec: i64,
    mtime_nsec: u32,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    sparse: PaxSparse,
}

struct Applier<'a> {
    root: Root,
    blob: &'a str,
    options: &'a ApplyOptions,
    /// The blob, when it is mapped: file contents are written from it in
    /// place rather than copied out through the tar parser.
    mapped: Option<&'a MappedBlob<'a>>,
    /// Real paths (below the root) created by this layer.
    created: BTreeSet<Vec<u8>>,
    /// Directories whose mtime is set at the end.
    dir_times: Vec<(Vec<Vec<u8>>, i64, u32)>,
    /// The last resolved parent directory, by its name in the tar.
    cache: Option<(Vec<u8>, ResolvedDir)>,
    stats: ApplyStats,
    buf: Vec<u8>,
}

impl<'a> Applier<'a> {
    fn open(
        root: &Path,
        blob: &'a str,
        options: &'a ApplyOptions,
        mapped: Option<&'a MappedBlob<'a>>,
    ) -> Result<Applier<'a>> {
        let root = Root::open(root).map_err(|source| Error::Io {
            action: "opening rootfs",
            path: root.to_owned(),
            source,
        })?;
        Ok(Applier {
            root,
            blob,
            options,
            mapped,
            created: BTreeSet::new(),
            dir_times: Vec::new(),
            cache: None,
            stats: ApplyStats::default(),
            buf: vec![0u8; 256 * 1024],
        })
    }

    /// Applies every member of an archive, then the directories' mtimes.
    fn apply_members<R: Read>(mut self, members: tar::Entries<'_, R>) -> Result<ApplyStats> {
        for member in members {
            let mut member = member.map_err(Error::reading(self.blob))?;
            self.apply_member(&mut member)?;
        }
        self.finish_dir_times();
        tracing::debug!(blob = self.blob, root = %self.root.path().display(), ?self.stats, "layer applied");
        Ok(self.stats)
    }

    fn unsafe_entry(&self, entry: &[u8], reason: impl Into<String>) -> Error {
        Error::UnsafeEntry {
            blob: self.blob.to_owned(),
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.into(),
        }
    }

    fn apply_err(&self, entry: &[u8], action: &'static str, source: io::Error) -> Error {
        Error::Apply {
            blob: self.blob.to_owned(),
            entry: String::from_utf8_lossy(entry).into_owned(),
            action,
            source,
        }
    }

    fn read_meta<R: Read>(&self, member: &mut tar::Entry<'_, R>, raw: &[u8]) -> Result<MemberMeta> {
        let header = member.header();
        let bad =
            |what: &str, e: io::Error| self.unsafe_entry(raw, format!("bad {what} field: {e}"));
        let mut meta = MemberMeta {
            mode: header.mode().map_err(|e| bad("mode", e))? & 0o7777,
            uid: u32::try_from(header.uid().map_err(|e| bad("uid", e))?).unwrap_or(u32::MAX),
            gid: u32::try_from(header.gid().map_err(|e| bad("gid", e))?).unwrap_or(u32::MAX),
            mtime_sec: i64::try_from(header.mtime().map_err(|e| bad("mtime", e))?).unwrap_or(0),
            mtime_nsec: 0,
            xattrs: Vec::new(),
            sparse: PaxSparse::default(),
        };
        let extensions = member
            .pax_extensions()
            .map_err(|e| self.unsafe_entry(raw, format!("bad PAX header: {e}")))?;
        if let Some(extensions) = extensions {
            for ext in extensions {
                let ext =
                    ext.map_err(|e| self.unsafe_entry(raw, format!("bad PAX record: {e}")))?;
                let key = ext.key_bytes();
                let value = ext.value_bytes();
                let text = std::str::from_utf8(value).unwrap_or("");
                match key {
                    b"uid" => meta.uid = text.parse().unwrap_or(meta.uid),
                    b"gid" => meta.gid = text.parse().unwrap_or(meta.gid),
                    b"mtime" => {
                        let (sec, frac) = text.split_once('.').unwrap_or((text, ""));
                        if let Ok(sec) = sec.parse() {
                            meta.mtime_sec = sec;
                            let digits: String = frac.chars().take(9).collect();
                            meta.mtime_nsec = format!("{digits:0<9}").parse().unwrap_or(0);
                        }
                    }
                    _ if meta.sparse.record(key, value) => {}
                    _ => {
                        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                            meta.xattrs.push((name.to_vec(), value.to_vec()));
                        }
                    }
                }
            }
        }
        Ok(meta)
    }

    /// Resolves (creating) the parent directory `parent` of an entry.
    fn parent(&mut self, raw: &[u8], parent: &[Vec<u8>]) -> Result<&ResolvedDir> {
        let key = join(parent);
        let hit = matches!(&self.cache, Some((k, _)) if *k == key);
        if !hit {
            let components: Vec<&[u8]> = parent.iter().map(|c| &c[..]).collect();
            let resolved = match self.root.resolve_dir(&components, true) {
                Ok(Some(dir)) => dir,
                Ok(None) => unreachable_missing(),
                Err(e) => {
                    return Err(self.apply_err(
                        raw,
                        "resolving parent directory inside the root",
                        e,
                    ));
                }
            };
            self.cache = Some((key, resolved));
        }
        Ok(self
            .cache
            .as_ref()
            .map(|(_, dir)| dir)
            .expect("cache just filled"))
    }

    fn apply_member<R: Read>(&mut self, member: &mut tar::Entry<'_, R>) -> Result<()> {
        use tar::EntryType as T;
        let entry_type = member.header().entry_type();
        if matches!(
            entry_type,
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink
        ) {
            return Ok(());
        }
        let stored = member.path_bytes().into_owned();
        let meta = self.read_meta(member, &stored)?;
        let raw = meta.sparse.name.clone().unwrap_or(stored);
        let components = normalize(&raw).map_err(|reason| self.unsafe_entry(&raw, reason))?;
        let Some((name, parent)) = components.split_last() else {
            tracing::debug!(blob = self.blob, "skipping the root directory entry");
            return Ok(());
        };
        self.stats.entries += 1;

        if let Some(rest) = name.strip_prefix(WHITEOUT_PREFIX) {
            self.stats.whiteouts += 1;
            if name == OPAQUE_MARKER {
                return self.opaque(&raw, parent);
            }
            if rest.starts_with(WHITEOUT_PREFIX) {
                tracing::debug!(blob = self.blob, entry = %String::from_utf8_lossy(&raw), "skipping whiteout metadata entry");
                return Ok(());
            }
            if rest.is_empty() || rest == b"." || rest == b".." {
                return Err(self.unsafe_entry(&raw, "whiteout of an invalid name"));
            }
            return self.whiteout(&raw, parent, rest);
        }

        // Files, directories and symlinks are created optimistically and
        // replace what is there only when creation says it exists (see
        // `create_replacing`, `make_dir`); the rarer kinds look first.
        let looks_first = !matches!(
            entry_type,
            T::Regular | T::Continuous | T::GNUSparse | T::Directory | T::Symlink
        );
        let parent_real;
        {
            let dir = self.parent(&raw, parent)?;
            parent_real = dir.real.clone();
            if looks_first {
                let existing = sys::lstat_at(dir.fd.as_fd(), name)
                    .map_err(|e| self.apply_err(&raw, "inspecting existing entry", e))?;
                if existing.is_some() {
                    let dir = &self.cache.as_ref().expect("parent cached").1;
                    remove_all_at(dir.fd.as_fd(), name)
                        .map_err(|e| self.apply_err(&raw, "removing the entry it replaces", e))?;
                }
            }
        }
        let mut real = parent_real.clone();
        real.push(name.clone());
        self.created.insert(join(&real));

        match entry_type {
            T::Regular | T::Continuous | T::GNUSparse if meta.sparse.is_sparse() => {
                self.write_pax_sparse(member, &raw, name, &meta)
            }
            T::Regular | T::Continuous | T::GNUSparse => self.write_file(member, &raw, name, &meta),
            T::Directory => self.make_dir(&raw, name, &meta, real),
            T::Symlink => {
                let target = member
                    .link_name_bytes()
                    .ok_or_else(|| self.unsafe_entry(&raw, "symlink without a target"))?
                    .into_owned();
                self.make_symlink(&raw, name, &target, &meta)
            }
            T::Link => {
                let target = member
                    .link_name_bytes()
                    .ok_or_else(|| self.unsafe_entry(&raw, "hardlink without a target"))?
                    .into_owned();
                self.make_hardlink(&raw, name, &target)
            }
            T::Char | T::Block | T::Fifo => {
                let header = member.header();
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let kind = match entry_type {
                    T::Char => libc::S_IFCHR,
                    T::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                self.make_node(&raw, name, kind, sys::makedev(major, minor), &meta)
            }
            other => {
                tracing::warn!(blob = self.blob, entry = %String::from_utf8_lossy(&raw), ?other, "skipping tar member of unsupported type");
                Ok(())
            }
        }
    }

    fn dir_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.cache.as_ref().expect("parent resolved").1.fd.as_fd()
    }

    /// Runs `create` (which must fail with `EEXIST` rather than follow or
    /// reuse anything already at `name`) in the parent directory; if `name`
    /// exists, removes it (never following a symlink) and runs it once more.
    fn create_replacing<T>(
        &self,
        raw: &[u8],
        name: &[u8],
        action: &'static str,
        create: impl Fn(std::os::fd::BorrowedFd<'_>) -> io::Result<T>,
    ) -> Result<T> {
        match create(self.dir_fd()) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                remove_all_at(self.dir_fd(), name)
                    .map_err(|e| self.apply_err(raw, "removing the entry it replaces", e))?;
                create(self.dir_fd()).map_err(|e| self.apply_err(raw, action, e))
            }
            other => other.map_err(|e| self.apply_err(raw, action, e)),
        }
    }

    fn write_file<R: Read>(
        &mut self,
        member: &mut tar::Entry<'_, R>,
        raw: &[u8],
        name: &[u8],
        meta: &MemberMeta,
    ) -> Result<()> {
        let mut file = self.create_replacing(raw, name, "creating file", |dir| {
            sys::create_file_at(dir, name)
        })?;
        // an old GNU sparse member's content is not the file's bytes in order
        let whole = member.header().entry_type() != tar::EntryType::GNUSparse;
        if let Some(blob) = self.mapped.filter(|_| whole) {
            self.write_in_place(blob, member, raw, &mut file)?;
            self.finish_fd(raw, file.as_fd(), meta)?;
            return sys::set_times_fd(file.as_fd(), meta.mtime_sec, meta.mtime_nsec)
                .map_err(|e| self.apply_err(raw, "setting mtime", e));
        }
        loop {
            let n = match member.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::reading(self.blob)(e)),
            };
            file.write_all(&self.buf[..n])
                .map_err(|e| self.apply_err(raw, "writing file content", e))?;
            self.stats.bytes += n as u64;
        }
        self.finish_fd(raw, file.as_fd(), meta)?;
        sys::set_times_fd(file.as_fd(), meta.mtime_sec, meta.mtime_nsec)
            .map_err(|e| self.apply_err(raw, "setting mtime", e))
    }

    /// Writes a member's content from the mapped blob, where it lies
    /// whole (the parser then seeks past it).
    fn write_in_place<R: Read>(
        &mut self,
        blob: &MappedBlob<'_>,
        member: &tar::Entry<'_, R>,
        raw: &[u8],
        file: &mut File,
    ) -> Result<()> {
        let start = member.raw_file_position();
        let size = member.size();
        if start.saturating_add(size) > blob.len() {
            return Err(Error::reading(self.blob)(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the blob ends inside a file's content",
            )));
        }
        blob.for_each_slice(start, start + size, |bytes| file.write_all(bytes))
            .map_err(|e| self.apply_err(raw, "writing file content", e))?;
        self.stats.bytes += size;
        Ok(())
    }

    fn write_pax_sparse<R: Read>(
        &mut self,
        member: &mut tar::Entry<'_, R>,
        raw: &[u8],
        name: &[u8],
        meta: &MemberMeta,
    ) -> Result<()> {
        let segments = meta
            .sparse
            .segments(member)
            .map_err(|e| self.unsafe_entry(raw, format!("sparse file: {e}")))?;
        let real_size = meta
            .sparse
            .real_size
            .ok_or_else(|| self.unsafe_entry(raw, "sparse file without a real size"))?;
        let mut file = self.create_replacing(raw, name, "creating file", |dir| {
            sys::create_file_at(dir, name)
        })?;
        let written = write_segments(member, &mut file, &segments, real_size, &mut self.buf)
            .map_err(|e| self.apply_err(raw, "writing sparse file content", e))?;
        self.stats.bytes += written;
        self.finish_fd(raw, file.as_fd(), meta)?;
        sys::set_times_fd(file.as_fd(), meta.mtime_sec, meta.mtime_nsec)
            .map_err(|e| self.apply_err(raw, "setting mtime", e))
    }

    /// Owner, mode and xattrs through an open descriptor.
    fn finish_fd(
        &self,
        raw: &[u8],
        fd: std::os::fd::BorrowedFd<'_>,
        meta: &MemberMeta,
    ) -> Result<()> {
        if self.options.preserve_owners {
            sys::fchown(fd, meta.uid, meta.gid)
                .map_err(|e| self.apply_err(raw, "setting owner", e))?;
        }
        sys::fchmod(fd, meta.mode).map_err(|e| self.apply_err(raw, "setting mode", e))?;
        if self.options.xattrs {
            for (key, value) in &meta.xattrs {
                if key.starts_with(b"trusted.overlay.") {
                    tracing::warn!(blob = self.blob, entry = %String::from_utf8_lossy(raw), "ignoring overlayfs xattr from layer");
                    continue;
                }
                if let Err(e) = sys::set_xattr_fd(fd, key, value) {
                    tracing::warn!(blob = self.blob, entry = %String::from_utf8_lossy(raw), key = %String::from_utf8_lossy(key), error = %e, "could not set xattr");
                }
            }
        }
        Ok(())
    }

    fn make_dir(
        &mut self,
        raw: &[u8],
        name: &[u8],
        meta: &MemberMeta,
        real: Vec<Vec<u8>>,
    ) -> Result<()> {
        match sys::mkdir_at(self.dir_fd(), name, 0o700) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let existing = sys::lstat_at(self.dir_fd(), name)
                    .map_err(|e| self.apply_err(raw, "inspecting existing entry", e))?;
                // a directory over a directory merges; anything else is replaced
                if !matches!(existing, Some(st) if sys::file_type(&st) == libc::S_IFDIR) {
                    self.create_replacing(raw, name, "creating directory", |dir| {
                        sys::mkdir_at(dir, name, 0o700)
                    })?;
                }
            }
            Err(e) => return Err(self.apply_err(raw, "creating directory", e)),
        }
        let fd = sys::open_dir_at(self.dir_fd(), name)
            .map_err(|e| self.apply_err(raw, "opening directory", e))?;
        self.finish_fd(raw, fd.as_fd(), meta)?;
        self.dir_times.push((real, meta.mtime_sec, meta.mtime_nsec));
        Ok(())
    }

    fn make_symlink(
        &mut self,
        raw: &[u8],
        name: &[u8],
        target: &[u8],
        meta: &MemberMeta,
    ) -> Result<()> {
        self.create_replacing(raw, name, "creating symlink", |dir| {
            sys::symlink_at(target, dir, name)
        })?;
        if self.options.preserve_owners {
            sys::lchown_at(self.dir_fd(), name, meta.uid, meta.gid)
                .map_err(|e| self.apply_err(raw, "setting owner", e))?;
        }
        sys::set_times_at(self.dir_fd(), name, meta.mtime_sec, meta.mtime_nsec)
            .map_err(|e| self.apply_err(raw, "setting mtime", e))
    }

    fn make_hardlink(&mut self, raw: &[u8], name: &[u8], target: &[u8]) -> Result<()> {
        let components = normalize(target)
            .map_err(|reason| self.unsafe_entry(raw, format!("hardlink target: {reason}")))?;
        let Some((target_name, target_parent)) = components.split_last() else {
            return Err(self.unsafe_entry(raw, "hardlink to the root directory"));
        };
        let parts: Vec<&[u8]> = target_parent.iter().map(|c| &c[..]).collect();
        let resolved = self
            .root
            .resolve_dir(&parts, false)
            .map_err(|e| self.apply_err(raw, "resolving hardlink target inside the root", e))?
            .ok_or_else(|| self.unsafe_entry(raw, "hardlink target does not exist"))?;
        match sys::lstat_at(resolved.fd.as_fd(), target_name) {
            Ok(Some(st)) if sys::file_type(&st) != libc::S_IFDIR => {}
            Ok(Some(_)) => return Err(self.unsafe_entry(raw, "hardlink to a directory")),
            Ok(None) => return Err(self.unsafe_entry(raw, "hardlink target does not exist")),
            Err(e) => return Err(self.apply_err(raw, "inspecting hardlink target", e)),
        }
        sys::link_at(resolved.fd.as_fd(), target_name, self.dir_fd(), name)
            .map_err(|e| self.apply_err(raw, "creating hardlink", e))
    }

    fn make_node(
        &mut self,
        raw: &[u8],
        name: &[u8],
        kind: libc::mode_t,
        dev: libc::dev_t,
        meta: &MemberMeta,
    ) -> Result<()> {
        sys::mknod_at(self.dir_fd(), name, kind | 0o600, dev)
            .map_err(|e| self.apply_err(raw, "creating device or fifo", e))?;
        if self.options.preserve_owners {
            sys::lchown_at(self.dir_fd(), name, meta.uid, meta.gid)
                .map_err(|e| self.apply_err(raw, "setting owner", e))?;
        }
        // Just created by mknodat in a directory only we write to: not a symlink.
        sys::chmod_at(self.dir_fd(), name, meta.mode)
            .map_err(|e| self.apply_err(raw, "setting mode", e))?;
        sys::set_times_at(self.dir_fd(), name, meta.mtime_sec, meta.mtime_nsec)
            .map_err(|e| self.apply_err(raw, "setting mtime", e))
    }

    fn whiteout(&mut self, raw: &[u8], parent: &[Vec<u8>], name: &[u8]) -> Result<()> {
        let parts: Vec<&[u8]> = parent.iter().map(|c| &c[..]).collect();
        let dir = match self.root.resolve_dir(&parts, false) {
            Ok(Some(dir)) => dir,
            Ok(None) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(()),
            Err(e) => {
                return Err(self.apply_err(raw, "resolving whiteout directory inside the root", e));
            }
        };
        let mut real = dir.real.clone();
        real.push(name.to_vec());
        if self.created.contains(&join(&real)) {
            tracing::debug!(blob = self.blob, entry = %String::from_utf8_lossy(raw), "whiteout of an entry of the same layer ignored");
            return Ok(());
        }
        self.cache = None;
        remove_all_at(dir.fd.as_fd(), name)
            .map_err(|e| self.apply_err(raw, "removing whited-out entry", e))
    }

    fn opaque(&mut self, raw: &[u8], dir_path: &[Vec<u8>]) -> Result<()> {
        let parts: Vec<&[u8]> = dir_path.iter().map(|c| &c[..]).collect();
        let dir = self
            .root
            .resolve_dir(&parts, true)
            .map_err(|e| self.apply_err(raw, "resolving opaque directory inside the root", e))?
            .unwrap_or_else(|| unreachable_missing());
        self.cache = None;
        self.clear_lower(raw, dir.fd.as_fd(), &dir.real)
    }

    /// Removes what lower layers put in `dir`, keeping this layer's entries.
    fn clear_lower(
        &self,
        raw: &[u8],
        dir: std::os::fd::BorrowedFd<'_>,
        real: &[Vec<u8>],
    ) -> Result<()> {
        let names =
            sys::list_dir(dir).map_err(|e| self.apply_err(raw, "listing opaque directory", e))?;
        for name in names {
            let mut child = real.to_vec();
            child.push(name.clone());
            if !self.created.contains(&join(&child)) {
                remove_all_at(dir, &name)
                    .map_err(|e| self.apply_err(raw, "clearing opaque directory", e))?;
                continue;
            }
            let is_dir = matches!(sys::lstat_at(dir, &name), Ok(Some(st)) if sys::file_type(&st) == libc::S_IFDIR);
            if is_dir {
                let fd = sys::open_dir_at(dir, &name)
                    .map_err(|e| self.apply_err(raw, "opening directory", e))?;
                self.clear_lower(raw, fd.as_fd(), &child)?;
            }
        }
        Ok(())
    }

    fn finish_dir_times(&self) {
        for (real, sec, nsec) in self.dir_times.iter().rev() {
            let Some((name, parent)) = real.split_last() else {
                continue;
            };
            let parts: Vec<&[u8]> = parent.iter().map(|c| &c[..]).collect();
            let Ok(Some(dir)) = self.root.resolve_dir(&parts, false) else {
                continue;
            };
            let is_dir = matches!(sys::lstat_at(dir.fd.as_fd(), name), Ok(Some(st)) if sys::file_type(&st) == libc::S_IFDIR);
            if is_dir && let Err(e) = sys::set_times_at(dir.fd.as_fd(), name, *sec, *nsec) {
                tracing::warn!(blob = self.blob, dir = %String::from_utf8_lossy(&join(real)), error = %e, "could not set directory mtime");
            }
        }
    }
}

/// `resolve_dir(.., create = true)` never reports a missing directory.
fn unreachable_missing() -> ! {
    unreachable!("resolve_dir with create=true returned no directory")
}
