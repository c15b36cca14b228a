//! The change-set entry model: what a layer to be written contains.
//!
//! A layer is described as a list of [`Entry`] values, in any order; the tar
//! writer sorts them (see [`crate::order`]). Each entry names a path inside the
//! image ([`LayerPath`], relative, raw bytes), what is at that path
//! ([`EntryKind`]) and its metadata ([`Metadata`]).
//!
//! Deletions are entries too: [`EntryKind::Whiteout`] says "the path was
//! removed" and [`EntryKind::OpaqueDir`] says "everything the lower layers had
//! inside this directory is hidden". The writer turns them into the OCI
//! `.wh.NAME` and `.wh..wh..opq` marker files.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::sync::Arc;

/// Prefix of whiteout marker file names (OCI image spec, "Whiteouts").
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Name of the opaque-directory marker file (OCI image spec, "Opaque Whiteout").
pub const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// A normalised path inside an image, relative to the image root.
///
/// Raw bytes, so non-UTF-8 names survive. Invariants, checked by
/// [`LayerPath::new`]: not empty, no leading or trailing `/`, no empty, `.`
/// or `..` components, no NUL byte. A leading `/` or `./` given to `new` is
/// stripped (`/etc/passwd` and `./etc/passwd` both become `etc/passwd`).
///
/// Ordering is the plain byte order of the path; the writer's entry order is
/// component-wise (see [`crate::order`]), not this one.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LayerPath(Vec<u8>);

/// A path given to [`LayerPath::new`] that cannot name an entry of a layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path in layer {path:?}: {reason}")]
pub struct InvalidPath {
    /// The rejected path, lossily decoded for display.
    pub path: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

impl LayerPath {
    /// Validates and normalises `path` (see the type's invariants).
    pub fn new(path: impl AsRef<[u8]>) -> Result<Self, InvalidPath> {
        let raw = path.as_ref();
        let invalid = |reason| InvalidPath {
            path: String::from_utf8_lossy(raw).into_owned(),
            reason,
        };
        if raw.contains(&0) {
            return Err(invalid("contains a NUL byte"));
        }
        let mut out: Vec<u8> = Vec::with_capacity(raw.len());
        for component in raw.split(|&b| b == b'/') {
            match component {
                b"" | b"." => continue,
                b".." => return Err(invalid("contains a `..` component")),
                _ => {
                    if !out.is_empty() {
                        out.push(b'/');
                    }
                    out.extend_from_slice(component);
                }
            }
        }
        if out.is_empty() {
            return Err(invalid("names the image root, not an entry"));
        }
        Ok(LayerPath(out))
    }

    /// Convenience for paths held as `OsStr`/`Path`.
    pub fn from_os(path: impl AsRef<OsStr>) -> Result<Self, InvalidPath> {
        Self::new(path.as_ref().as_bytes())
    }

    /// The path as raw bytes, e.g. `b"usr/bin/env"`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The path as an `OsStr` (relative, suitable for `root.join(..)` only
    /// after the caller has made sure no symlink is followed).
    pub fn as_os_str(&self) -> &OsStr {
        OsStr::from_bytes(&self.0)
    }

    /// Path components, outermost first.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/')
    }

    /// The last component.
    pub fn file_name(&self) -> &[u8] {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// The parent directory, `None` for a top-level entry.
    pub fn parent(&self) -> Option<LayerPath> {
        self.0
            .iter()
            .rposition(|&b| b == b'/')
            .map(|i| LayerPath(self.0[..i].to_vec()))
    }

    /// `self/name`; `name` must be a single valid component.
    pub fn join(&self, name: &[u8]) -> Result<LayerPath, InvalidPath> {
        if name.contains(&b'/') {
            return Err(InvalidPath {
                path: String::from_utf8_lossy(name).into_owned(),
                reason: "a single path component was expected",
            });
        }
        let mut joined = self.0.clone();
        joined.push(b'/');
        joined.extend_from_slice(name);
        LayerPath::new(joined)
    }

    /// Number of components.
    pub fn depth(&self) -> usize {
        self.components().count()
    }

    /// Consumes the path, giving its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for LayerPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Display for LayerPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl TryFrom<&str> for LayerPath {
    type Error = InvalidPath;
    fn try_from(s: &str) -> Result<Self, InvalidPath> {
        LayerPath::new(s)
    }
}

/// A modification time: seconds since the Unix epoch and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z (may be negative).
    pub sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub nsec: u32,
}

impl Timestamp {
    /// A timestamp with whole seconds only.
    pub const fn from_secs(sec: i64) -> Self {
        Timestamp { sec, nsec: 0 }
    }
}

/// Where the bytes of a regular file come from.
#[derive(Clone, PartialEq, Eq)]
pub enum FileSource {
    /// A file on disk, read when the layer is written. The size written in
    /// the tar header is the size of the opened file (`fstat`); if the file
    /// shrinks while it is read, writing fails rather than emitting a
    /// corrupt archive.
    Path(PathBuf),
    /// Small generated content held in memory (e.g. `/etc/hostname`).
    Bytes(Arc<[u8]>),
}

impl fmt::Debug for FileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileSource::Path(p) => f.debug_tuple("Path").field(p).finish(),
            FileSource::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
        }
    }
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file and where to read its content.
    File(FileSource),
    /// A directory. Its children are separate entries.
    Dir,
    /// A symbolic link; the target is stored verbatim (may be absolute,
    /// relative, dangling, non-UTF-8).
    Symlink {
        /// The link's target as raw bytes.
        target: OsString,
    },
    /// A hard link to another entry of the same change set, which must be a
    /// [`EntryKind::File`] (or another hardlink to the same file). The writer
    /// makes whichever member of a link group comes first in entry order carry
    /// the content, as tar requires.
    Hardlink {
        /// The path of the file this links to.
        target: LayerPath,
    },
    /// A character device.
    CharDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// The path existed in a lower layer and was removed. Written as an empty
    /// regular file `PARENT/.wh.NAME`. Must not be combined with another entry
    /// for the same path in one change set (a path removed then recreated is
    /// just the new entry; a directory replaced wholesale is an
    /// [`EntryKind::OpaqueDir`] plus its new content).
    Whiteout,
    /// Everything lower layers had inside this directory is hidden. Written as
    /// an empty regular file `PATH/.wh..wh..opq`, first inside the directory.
    /// The directory itself should also be present as an [`EntryKind::Dir`]
    /// entry (the writer does not invent it).
    OpaqueDir,
}

impl EntryKind {
    /// Short lowercase name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            EntryKind::File(_) => "file",
            EntryKind::Dir => "directory",
            EntryKind::Symlink { .. } => "symlink",
            EntryKind::Hardlink { .. } => "hardlink",
            EntryKind::CharDevice { .. } => "char device",
            EntryKind::BlockDevice { .. } => "block device",
            EntryKind::Fifo => "fifo",
            EntryKind::Whiteout => "whiteout",
            EntryKind::OpaqueDir => "opaque-dir marker",
        }
    }
}

/// Owner, permissions, time and extended attributes of an entry.
///
/// For whiteouts and opaque markers the metadata is that of the marker file;
/// [`Metadata::marker`] gives the conventional one (root, mode 0, epoch).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// Permission bits including setuid (0o4000), setgid (0o2000) and sticky
    /// (0o1000): `mode & 0o7777`. File-type bits, if present, are ignored.
    pub mode: u32,
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Owner name written to the tar header (`uname`), if known.
    pub user_name: Option<String>,
    /// Group name written to the tar header (`gname`), if known.
    pub group_name: Option<String>,
    /// Modification time.
    pub mtime: Timestamp,
    /// Extended attributes, e.g. `security.capability`, `user.foo`. Keys are
    /// full names with namespace; written as PAX `SCHILY.xattr.KEY` records.
    pub xattrs: BTreeMap<OsString, Vec<u8>>,
}

impl Metadata {
    /// Metadata with just a mode, owned by root, mtime at the epoch.
    pub fn with_mode(mode: u32) -> Self {
        Metadata {
            mode,
            ..Metadata::default()
        }
    }

    /// The metadata conventionally used for whiteout and opaque marker files.
    pub fn marker() -> Self {
        Metadata::default()
    }
}

/// One entry of a change set: a path, what it is, and its metadata.
///
/// A file name starting with `.wh.` cannot be written to a layer (readers
/// would take it for a whiteout marker): the writer rejects such entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where the entry lives inside the image.
    pub path: LayerPath,
    /// What it is.
    pub kind: EntryKind,
    /// Owner, mode, mtime, xattrs.
    pub meta: Metadata,
}

impl Entry {
    /// A regular file whose content is read from `source` on disk.
    pub fn file(path: LayerPath, source: impl Into<PathBuf>, meta: Metadata) -> Self {
        Entry {
            path,
            kind: EntryKind::File(FileSource::Path(source.into())),
            meta,
        }
    }

    /// A regular file with in-memory content.
    pub fn bytes(path: LayerPath, content: impl Into<Arc<[u8]>>, meta: Metadata) -> Self {
        Entry {
            path,
            kind: EntryKind::File(FileSource::Bytes(content.into())),
            meta,
        }
    }

    /// A directory.
    pub fn dir(path: LayerPath, meta: Metadata) -> Self {
        Entry {
            path,
            kind: EntryKind::Dir,
            meta,
        }
    }

    /// A symlink to `target`.
    pub fn symlink(path: LayerPath, target: impl Into<OsString>, meta: Metadata) -> Self {
        Entry {
            path,
            kind: EntryKind::Symlink {
                target: target.into(),
            },
            meta,
        }
    }

    /// A hard link to the entry at `target`.
    pub fn hardlink(path: LayerPath, target: LayerPath, meta: Metadata) -> Self {
        Entry {
            path,
            kind: EntryKind::Hardlink { target },
            meta,
        }
    }

    /// A whiteout: `path` was deleted. Marker metadata.
    pub fn whiteout(path: LayerPath) -> Self {
        Entry {
            path,
            kind: EntryKind::Whiteout,
            meta: Metadata::marker(),
        }
    }

    /// An opaque marker for directory `path`. Marker metadata.
    pub fn opaque_dir(path: LayerPath) -> Self {
        Entry {
            path,
            kind: EntryKind::OpaqueDir,
            meta: Metadata::marker(),
        }
    }

    /// The path of the tar member this entry becomes: the entry's own path,
    /// or `PARENT/.wh.NAME` for a whiteout, or `PATH/.wh..wh..opq` for an
    /// opaque marker.
    pub fn tar_path(&self) -> Vec<u8> {
        match self.kind {
            EntryKind::Whiteout => {
                let mut out = Vec::with_capacity(self.path.as_bytes().len() + 4);
                if let Some(parent) = self.path.parent() {
                    out.extend_from_slice(parent.as_bytes());
                    out.push(b'/');
                }
                out.extend_from_slice(WHITEOUT_PREFIX);
                out.extend_from_slice(self.path.file_name());
                out
            }
            EntryKind::OpaqueDir => {
                let mut out = self.path.as_bytes().to_vec();
                out.push(b'/');
                out.extend_from_slice(OPAQUE_MARKER);
                out
            }
            _ => self.path.as_bytes().to_vec(),
        }
    }
}

/// Helper for building symlink targets from raw bytes.
pub fn os_string_from_bytes(bytes: impl Into<Vec<u8>>) -> OsString {
    OsString::from_vec(bytes.into())
}
