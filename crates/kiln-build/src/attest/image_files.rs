//! The few files of the final image an SBOM reads (package databases and
//! os-release), taken from the image's layers as they would stack, without
//! unpacking anything ([`read_layers`]), or from the build's own root
//! filesystem of the final stage when it has one ([`read_rootfs`]: no
//! decompression at all; what the image's layers hold by construction).
//!
//! A root filesystem is untrusted too: no symlink is followed (each parent
//! must be a real directory, the file itself is opened with `O_NOFOLLOW`;
//! nothing runs in that root any more), the same limits apply.
//!
//! Layers are untrusted: nothing is written to disk; entry names are
//! normalised lexically and a name with a `..` component is ignored; only
//! regular files at the exact wanted paths are read, each up to
//! [`FILE_LIMIT`] bytes (more is an error naming the layer and path), at
//! most [`MAX_FILES`] of them and [`TOTAL_LIMIT`] bytes in all. Whiteouts
//! (`.wh.NAME`) and opaque markers (`.wh..wh..opq`) of a layer hide what
//! lower layers hold, as the OCI image spec says; a later regular file
//! replaces an earlier one, any other entry at a wanted path removes it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use kiln_oci::LayerCompression;

/// Largest wanted file read (a large Debian image's status file is a few MiB).
pub const FILE_LIMIT: u64 = 64 << 20;
/// Most wanted files kept (distroless `status.d` has one per package).
pub const MAX_FILES: usize = 100_000;
/// Most bytes kept over all wanted files.
pub const TOTAL_LIMIT: usize = 256 << 20;

/// Wanted files by path (relative, no leading `/`), with their contents.
pub type Files = BTreeMap<String, Vec<u8>>;

/// Whether an SBOM reads the file at `path` (relative, clean).
pub fn wanted(path: &str) -> bool {
    matches!(
        path,
        "var/lib/dpkg/status" | "lib/apk/db/installed" | "etc/os-release" | "usr/lib/os-release"
    ) || path
        .strip_prefix("var/lib/dpkg/status.d/")
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// The wanted files of the image whose root filesystem is `root`.
pub fn read_rootfs(root: &Path) -> Result<Files, String> {
    let mut files = Files::new();
    for path in [
        "var/lib/dpkg/status",
        "lib/apk/db/installed",
        "etc/os-release",
        "usr/lib/os-release",
    ] {
        read_one(root, path, &mut files)?;
    }
    let status_d = "var/lib/dpkg/status.d";
    if parents_are_dirs(root, &format!("{status_d}/x"))
        && let Ok(entries) = std::fs::read_dir(root.join(status_d))
    {
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        if names.len() > MAX_FILES {
            return Err(format!("/{status_d} has more than {MAX_FILES} entries"));
        }
        for name in names {
            read_one(root, &format!("{status_d}/{name}"), &mut files)?;
        }
    }
    let total: usize = files.values().map(Vec::len).sum();
    if total > TOTAL_LIMIT {
        return Err(format!(
            "package databases of {total} bytes, more than the {TOTAL_LIMIT} an SBOM reads"
        ));
    }
    Ok(files)
}

/// Whether every parent of `path` under `root` is a directory, not a symlink.
fn parents_are_dirs(root: &Path, path: &str) -> bool {
    let mut dir = root.to_path_buf();
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts[..parts.len() - 1] {
        dir.push(part);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_dir() => {}
            _ => return false,
        }
    }
    true
}

/// Reads the regular file `path` (relative) under `root` into `files` when it
/// is one, following no symlink.
fn read_one(root: &Path, path: &str, files: &mut Files) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    if !wanted(path) || !parents_are_dirs(root, path) {
        return Ok(());
    }
    let full = root.join(path);
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&full)
    else {
        return Ok(()); // absent, a symlink (ELOOP), or not openable: not in the image
    };
    let meta = file.metadata().map_err(|e| format!("/{path}: {e}"))?;
    if !meta.file_type().is_file() {
        return Ok(());
    }
    if meta.len() > FILE_LIMIT {
        return Err(format!(
            "/{path} is {} bytes, more than the {FILE_LIMIT} an SBOM reads",
            meta.len()
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(FILE_LIMIT)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("/{path}: {e}"))?;
    files.insert(path.to_string(), bytes);
    Ok(())
}

/// Reads the wanted files of an image whose layer blobs are `layers`, base first.
pub fn read_layers(layers: &[&Path]) -> Result<Files, String> {
    let mut files = Files::new();
    for path in layers {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("opening layer {}: {e}", path.display()))?;
        apply_layer(&mut files, BufReader::with_capacity(256 << 10, file))
            .map_err(|e| format!("reading layer {}: {e}", path.display()))?;
    }
    Ok(files)
}

/// Stacks one layer blob (gzip, zstd or plain tar, detected by magic bytes)
/// onto `files`.
pub fn apply_layer(files: &mut Files, mut blob: impl BufRead) -> Result<(), String> {
    let head = blob.fill_buf().map_err(|e| e.to_string())?;
    let tar: Box<dyn Read> = match kiln_layer::detect_compression(head) {
        LayerCompression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(blob)),
        LayerCompression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(blob).map_err(|e| e.to_string())?)
        }
        _ => Box::new(blob),
    };
    let mut archive = tar::Archive::new(tar);
    let mut hidden: Vec<String> = Vec::new(); // whiteouts: a path and what is under it
    let mut opaque: Vec<String> = Vec::new(); // opaque dirs: what is under them
    let mut added = Files::new();
    let mut removed: Vec<String> = Vec::new(); // non-files at wanted paths
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let raw = entry.path_bytes().into_owned();
        let Some(path) = clean(&raw) else { continue };
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (d.to_string(), n),
            None => (String::new(), path.as_str()),
        };
        if name == ".wh..wh..opq" {
            opaque.push(dir);
            continue;
        }
        if let Some(hidden_name) = name.strip_prefix(".wh.") {
            hidden.push(join(&dir, hidden_name));
            continue;
        }
        if !wanted(&path) {
            continue;
        }
        if !entry.header().entry_type().is_file() {
            removed.push(path);
            continue;
        }
        let size = entry.size();
        if size > FILE_LIMIT {
            return Err(format!(
                "{path} is {size} bytes, more than the {FILE_LIMIT} an SBOM reads"
            ));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        (&mut entry)
            .take(FILE_LIMIT)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{path}: {e}"))?;
        removed.retain(|p| *p != path);
        added.insert(path, bytes);
    }
    files.retain(|path, _| {
        !hidden
            .iter()
            .any(|h| path == h || path.starts_with(&format!("{h}/")))
            && !opaque.iter().any(|d| under(path, d))
            && !removed.contains(path)
    });
    files.extend(added);
    if files.len() > MAX_FILES {
        return Err(format!(
            "more than {MAX_FILES} package database files; refusing to read more"
        ));
    }
    let total: usize = files.values().map(Vec::len).sum();
    if total > TOTAL_LIMIT {
        return Err(format!(
            "package databases of {total} bytes, more than the {TOTAL_LIMIT} an SBOM reads"
        ));
    }
    Ok(())
}

/// A tar entry name made relative and clean; `None` for names that cannot
/// name anything in the image (`..`, not UTF-8, empty).
fn clean(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn under(path: &str, dir: &str) -> bool {
    dir.is_empty() || path.starts_with(&format!("{dir}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar with names written raw (the tar crate refuses `..` and `/`).
    fn layer(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut header = tar::Header::new_gnu();
            header.as_mut_bytes()[..path.len()].copy_from_slice(path.as_bytes());
            let data: &[u8] = match content {
                Some(bytes) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(0o644);
                    bytes
                }
                None => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_link_name("../../../etc/shadow").unwrap();
                    header.set_mode(0o777);
                    b""
                }
            };
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn stack(layers: &[Vec<u8>]) -> Files {
        let mut files = Files::new();
        for l in layers {
            apply_layer(&mut files, &l[..]).unwrap();
        }
        files
    }

    #[test]
    fn later_layers_replace_and_whiteouts_hide() {
        let base = layer(&[
            ("./var/lib/dpkg/status", Some(b"old")),
            ("var/lib/dpkg/status.d/a", Some(b"a")),
            ("var/lib/dpkg/status.d/b", Some(b"b")),
            ("etc/passwd", Some(b"root")),
        ]);
        let top = layer(&[
            ("/var/lib/dpkg/status", Some(b"new")),
            ("var/lib/dpkg/status.d/.wh.a", Some(b"")),
        ]);
        let files = stack(&[base.clone(), top]);
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            ["var/lib/dpkg/status", "var/lib/dpkg/status.d/b"]
        );
        assert_eq!(files["var/lib/dpkg/status"], b"new");

        let opaque = layer(&[("var/lib/dpkg/status.d/.wh..wh..opq", Some(b""))]);
        let files = stack(&[base.clone(), opaque]);
        assert_eq!(files.keys().collect::<Vec<_>>(), ["var/lib/dpkg/status"]);

        let whole_dir = layer(&[("var/lib/.wh.dpkg", Some(b""))]);
        assert!(stack(&[base, whole_dir]).is_empty());
    }

    #[test]
    fn hostile_names_and_links_are_not_read() {
        let files = stack(&[layer(&[
            ("../var/lib/dpkg/status", Some(b"escape")),
            ("a/../var/lib/dpkg/status", Some(b"dotdot")),
            ("lib/apk/db/installed", None),
        ])]);
        assert!(files.is_empty(), "{files:?}");
    }

    #[test]
    fn compressed_layers_are_read_and_big_files_refused() {
        let tar = layer(&[("lib/apk/db/installed", Some(b"P:musl\n"))]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&tar[..], 1).unwrap();
        for blob in [gz, zst] {
            let files = stack(&[blob]);
            assert_eq!(files["lib/apk/db/installed"], b"P:musl\n");
        }
        // A header announcing more than the limit is refused before reading.
        let mut header = tar::Header::new_gnu();
        header.set_path("var/lib/dpkg/status").unwrap();
        header.set_size(FILE_LIMIT + 1);
        header.set_cksum();
        let mut huge = header.as_bytes().to_vec();
        huge.extend(std::iter::repeat_n(0u8, 1024));
        let err = apply_layer(&mut Files::new(), &huge[..]).unwrap_err();
        assert!(err.contains("var/lib/dpkg/status"), "{err}");
    }

    #[test]
    fn a_root_filesystem_is_read_without_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("var/lib/dpkg/status.d")).unwrap();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(outside.join("apk/db")).unwrap();
        std::fs::write(root.join("var/lib/dpkg/status"), b"Package: a").unwrap();
        std::fs::write(root.join("var/lib/dpkg/status.d/b"), b"Package: b").unwrap();
        std::fs::write(root.join("usr/lib/os-release"), b"ID=debian").unwrap();
        std::fs::write(outside.join("apk/db/installed"), b"P:escaped").unwrap();
        std::os::unix::fs::symlink("../usr/lib/os-release", root.join("etc/os-release")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("lib")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("var/lib/dpkg/status.d/c")).unwrap();
        let files = read_rootfs(&root).unwrap();
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            [
                "usr/lib/os-release",
                "var/lib/dpkg/status",
                "var/lib/dpkg/status.d/b"
            ]
        );
    }
}
