//! A rootfs as a sorted map of entries: what the comparison looks at.

use anyhow::Result;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// File type, with the device numbers of device nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink(PathBuf),
    CharDevice(u64),
    BlockDevice(u64),
    Fifo,
    Socket,
}

/// One entry of a rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits with setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size of regular files (0 otherwise).
    pub size: u64,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Other paths of the same inode (regular files with several links).
    pub hardlinks: Vec<String>,
}

/// Every entry under `root`, keyed by `/absolute/path` inside the image.
pub fn walk(root: &Path) -> Result<BTreeMap<String, Node>> {
    let mut nodes = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs_err::read_dir(&dir)? {
            let path = entry?.path();
            let meta = fs_err::symlink_metadata(&path)?;
            let name = format!("/{}", path.strip_prefix(root)?.display());
            let file_type = meta.file_type();
            let kind = if file_type.is_dir() {
                stack.push(path.clone());
                Kind::Dir
            } else if file_type.is_symlink() {
                Kind::Symlink(fs_err::read_link(&path)?)
            } else if file_type.is_char_device() {
                Kind::CharDevice(meta.rdev())
            } else if file_type.is_block_device() {
                Kind::BlockDevice(meta.rdev())
            } else if file_type.is_fifo() {
                Kind::Fifo
            } else if file_type.is_socket() {
                Kind::Socket
            } else {
                Kind::File
            };
            if kind == Kind::File && meta.nlink() > 1 {
                inodes
                    .entry((meta.dev(), meta.ino()))
                    .or_default()
                    .push(name.clone());
            }
            nodes.insert(
                name,
                Node {
                    size: if kind == Kind::File { meta.size() } else { 0 },
                    kind,
                    mode: meta.mode() & 0o7777,
                    uid: meta.uid(),
                    gid: meta.gid(),
                    xattrs: xattrs(&path),
                    hardlinks: Vec::new(),
                },
            );
        }
    }
    for group in inodes.values().filter(|g| g.len() > 1) {
        for path in group {
            let mut others: Vec<String> = group.iter().filter(|p| *p != path).cloned().collect();
            others.sort();
            if let Some(node) = nodes.get_mut(path) {
                node.hardlinks = others;
            }
        }
    }
    Ok(nodes)
}

/// Extended attributes of `path` itself (not following symlinks).
fn xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return out;
    };
    let mut names = vec![0u8; 4096];
    // SAFETY: c_path is NUL-terminated and names is a writable buffer of the given length.
    let len = unsafe { libc::llistxattr(c_path.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if len <= 0 {
        return out;
    }
    for name in names[..len as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let Ok(c_name) = CString::new(name) else {
            continue;
        };
        let mut value = vec![0u8; 65536];
        // SAFETY: both strings are NUL-terminated and value is a writable buffer of its length.
        let got = unsafe {
            libc::lgetxattr(
                c_path.as_ptr(),
                c_name.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if got >= 0 {
            value.truncate(got as usize);
            out.insert(String::from_utf8_lossy(name).into_owned(), value);
        }
    }
    out
}
