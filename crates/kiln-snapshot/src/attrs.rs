//! Reading what stat does not give: extended attributes, symlink targets and file
//! contents, and the small digests a baseline keeps of them instead of the data itself.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{IoContext, Result};

/// Extended attributes of one path, sorted by name.
pub type Xattrs = BTreeMap<OsString, Vec<u8>>;

/// A 128-bit digest kept in a baseline record in place of data (xattrs, symlink target).
pub type Digest128 = [u8; 16];

/// A SHA-256 of file contents.
pub type ContentHash = [u8; 32];

/// True for the attributes overlayfs keeps for itself; they never belong in a layer.
pub fn is_overlay_private(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// The extended attributes of `path` (not following symlinks), without overlayfs' own.
/// A filesystem without xattr support gives an empty set.
pub fn read_xattrs(path: &Path) -> Result<Xattrs> {
    let mut out = Xattrs::new();
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(out),
        Err(e) => return Err(e).at("listing extended attributes of", path),
    };
    for name in names {
        if is_overlay_private(name.as_bytes()) {
            continue;
        }
        match xattr::get(path, &name) {
            Ok(Some(value)) => {
                out.insert(name, value);
            }
            // Removed between list and get: it is not there any more.
            Ok(None) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e).at("reading extended attribute of", path),
        }
    }
    Ok(out)
}

/// Digest of a set of xattrs; all zeroes for none, so files without xattrs cost nothing.
pub fn xattr_digest(x: &Xattrs) -> Digest128 {
    if x.is_empty() {
        return [0; 16];
    }
    let mut h = Sha256::new();
    for (k, v) in x {
        h.update((k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_le_bytes());
        h.update(v);
    }
    truncate(h.finalize().into())
}

/// The target of the symlink at `path`.
pub fn read_link(path: &Path) -> Result<OsString> {
    Ok(std::fs::read_link(path)
        .at("reading symlink", path)?
        .into_os_string())
}

/// Digest of a symlink target.
pub fn link_digest(target: &OsString) -> Digest128 {
    truncate(Sha256::digest(target.clone().into_vec()).into())
}

/// SHA-256 of the contents of the regular file at `path` (never following a symlink).
pub fn content_hash(path: &Path) -> Result<ContentHash> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .at("opening for hashing", path)?;
    let mut h = Sha256::new();
    // io::copy's stack buffer: no allocation nor zeroing per file (most files are small).
    std::io::copy(&mut f, &mut h).at("reading for hashing", path)?;
    Ok(h.finalize().into())
}

fn truncate(full: [u8; 32]) -> Digest128 {
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}
