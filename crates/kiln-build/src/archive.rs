//! Reading tar archives safely: compression detection by magic number and
//! extraction into a list of items whose file contents are staged as flat,
//! numbered files (so no archive path is ever used to write on disk).
//!
//! Used for ADD's local archive auto-extraction (the items become layer
//! entries); tar build contexts are decompressed here and applied with
//! kiln-layer's root-confined applier.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use kiln_layer::{LayerPath, Timestamp};

/// Compression of a stream, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCompression {
    /// Not compressed.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// bzip2 (`BZh`).
    Bzip2,
    /// xz (`fd 37 7a 58 5a 00`).
    Xz,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

/// Detects the compression from the first bytes of a stream.
pub fn detect_compression(head: &[u8]) -> StreamCompression {
    if head.starts_with(&[0x1f, 0x8b]) {
        StreamCompression::Gzip
    } else if head.starts_with(b"BZh") {
        StreamCompression::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        StreamCompression::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        StreamCompression::Zstd
    } else {
        StreamCompression::None
    }
}

/// Wraps `reader` in the decompressor its magic number calls for.
pub fn decompressed<'a, R: Read + 'a>(reader: R) -> std::io::Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(64 * 1024, reader);
    let kind = detect_compression(buffered.fill_buf()?);
    Ok(match kind {
        StreamCompression::None => Box::new(buffered),
        StreamCompression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        StreamCompression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(buffered)),
        StreamCompression::Xz => Box::new(xz2::bufread::XzDecoder::new_multi_decoder(buffered)),
        StreamCompression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    })
}

/// Whether `block` (the first 512 bytes of a decompressed stream) is a tar header:
/// the header checksum is valid.
pub fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 || block.iter().all(|b| *b == 0) {
        return false;
    }
    let field = &block[148..156];
    let text: String = field
        .iter()
        .take_while(|b| **b != 0 && **b != b' ')
        .map(|b| *b as char)
        .collect();
    let Ok(stored) = u32::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let sum: u32 = block[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    sum == stored
}

/// Whether the file at `path` is a (possibly compressed) tar archive.
pub fn is_tar_archive(path: &Path) -> std::io::Result<bool> {
    let file = std::fs::File::open(path)?;
    let mut reader = decompressed(file)?;
    let mut block = Vec::with_capacity(512);
    // A decompression error means "not an archive we understand": copy as a file.
    match reader.by_ref().take(512).read_to_end(&mut block) {
        Ok(_) => Ok(is_tar_header(&block)),
        Err(_) => Ok(false),
    }
}

/// What an archive member is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemKind {
    /// A regular file whose content was staged at this path.
    File(PathBuf),
    /// A directory.
    Dir,
    /// A symlink with this target.
    Symlink(OsString),
    /// A hard link to another member.
    Hardlink(LayerPath),
}

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveItem {
    /// Normalised relative path.
    pub path: LayerPath,
    /// Kind.
    pub kind: ItemKind,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Modification time.
    pub mtime: Timestamp,
}

/// Reads every member of a (possibly compressed) tar stream. Regular file
/// contents go to `staging/<n>`; members that are not files, directories,
/// symlinks or hardlinks (devices, fifos) and global headers are skipped.
/// A member whose path is empty or contains `..` is an error naming it.
pub fn read_archive(
    reader: impl Read,
    staging: &Path,
    what: &str,
) -> Result<Vec<ArchiveItem>, String> {
    fs_err::create_dir_all(staging).map_err(|e| e.to_string())?;
    let stream = decompressed(reader).map_err(|e| format!("reading {what}: {e}"))?;
    let mut archive = tar::Archive::new(stream);
    let mut items = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| format!("reading {what}: {e}"))?;
    for (index, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| format!("reading {what}: {e}"))?;
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let path = match LayerPath::new(&raw_path) {
            Ok(p) => p,
            // `./` itself names the root: nothing to create.
            Err(_) if raw_path.iter().all(|b| *b == b'.' || *b == b'/') => continue,
            Err(e) => return Err(format!("{what}: member {shown:?}: {e}")),
        };
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let uid = header.uid().unwrap_or(0);
        let gid = header.gid().unwrap_or(0);
        let mtime = Timestamp::from_secs(header.mtime().unwrap_or(0) as i64);
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let staged = staging.join(index.to_string());
                let mut out = fs_err::File::create(&staged).map_err(|e| e.to_string())?;
                std::io::copy(&mut entry, &mut out)
                    .map_err(|e| format!("{what}: member {shown:?}: {e}"))?;
                ItemKind::File(staged)
            }
            tar::EntryType::Directory => ItemKind::Dir,
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| format!("{what}: symlink {shown:?} has no target"))?;
                ItemKind::Symlink(OsString::from_vec(target.into_owned()))
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| format!("{what}: hardlink {shown:?} has no target"))?;
                let target = LayerPath::new(&target)
                    .map_err(|e| format!("{what}: hardlink {shown:?}: {e}"))?;
                ItemKind::Hardlink(target)
            }
            _ => continue,
        };
        items.push(ArchiveItem {
            path,
            kind,
            mode,
            uid,
            gid,
            mtime,
        });
    }
    Ok(items)
}

/// Whether kiln runs with uid 0 (owners can be set).
pub fn running_as_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o640);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, path, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn detects_all_compressions_and_reads_through_them() {
        let tar = tar_with(&[("a/b.txt", b"hello")]);
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, &tar).unwrap();
            e.finish().unwrap()
        };
        let bz = {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            std::io::Write::write_all(&mut e, &tar).unwrap();
            e.finish().unwrap()
        };
        let xz = {
            let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
            std::io::Write::write_all(&mut e, &tar).unwrap();
            e.finish().unwrap()
        };
        let zst = zstd::encode_all(&tar[..], 1).unwrap();
        let cases = [
            (&tar, StreamCompression::None),
            (&gz, StreamCompression::Gzip),
            (&bz, StreamCompression::Bzip2),
            (&xz, StreamCompression::Xz),
            (&zst, StreamCompression::Zstd),
        ];
        for (bytes, kind) in cases {
            assert_eq!(detect_compression(bytes), kind);
            let staging = tempfile::tempdir().unwrap();
            let items = read_archive(&bytes[..], staging.path(), "test").unwrap();
            assert_eq!(items.len(), 1, "{kind:?}");
            assert_eq!(items[0].path.to_string(), "a/b.txt");
            assert_eq!(items[0].mode, 0o640);
            let ItemKind::File(staged) = &items[0].kind else {
                panic!()
            };
            assert_eq!(fs_err::read(staged).unwrap(), b"hello");
        }
    }

    #[test]
    fn kaniko_corpus_archives_are_recognised() {
        let dir = crate::test_support::kaniko_integration_dir().join("context/tars");
        let mut archives = 0;
        for entry in fs_err::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let is_tar = is_tar_archive(&path).unwrap();
            if name.ends_with(".tar") || name.ends_with(".tar.gz") || name.ends_with(".tgz") {
                assert!(is_tar, "{name} should be a tar archive");
                archives += 1;
            }
        }
        assert!(archives >= 2, "the corpus has at least two tar archives");
        assert!(
            !is_tar_archive(&dir.join("../foo")).unwrap(),
            "a text file is not a tar"
        );
    }

    #[test]
    fn dotdot_members_are_rejected() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_entry_type(tar::EntryType::Regular);
        // tar::Builder refuses `..`, so write the name field by hand.
        header.as_gnu_mut().unwrap().name[..8].copy_from_slice(b"../evil\0");
        header.set_cksum();
        builder.append(&header, &b"x"[..]).unwrap();
        let bytes = builder.into_inner().unwrap();
        let staging = tempfile::tempdir().unwrap();
        let err = read_archive(&bytes[..], staging.path(), "ctx.tar").unwrap_err();
        assert!(err.contains("../evil"), "{err}");
    }
}
