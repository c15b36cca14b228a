//! A Debian bookworm minbase root filesystem as one tar, made offline with
//! `debootstrap --variant=minbase` through the Debian package registry (the
//! only archive these machines reach), trimmed of what a published Debian
//! image does not carry, with fixed mtimes so that the tar — and every image
//! made from it — is the same on every run. Made once per cache directory.

use std::io::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Fixed mtime for the tar entries (2024-01-01T00:00:00Z).
const MTIME: &str = "@1704067200";

/// The workspace's one copy, shared by the conformance harness, tests and benches:
/// `<target>/conformance/debian-rootfs.tar` (`<target>` is `CARGO_TARGET_DIR`, else the
/// workspace's `target`), made with debootstrap when missing.
pub fn workspace_rootfs_tar() -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    rootfs_tar(&target.join("conformance"))
}

/// `<cache_dir>/debian-rootfs.tar`, made with debootstrap when missing.
pub fn rootfs_tar(cache_dir: &Path) -> Result<PathBuf> {
    let tar = cache_dir.join("debian-rootfs.tar");
    if tar.exists() {
        return Ok(tar);
    }
    if !Path::new("/usr/sbin/debootstrap").exists() {
        return Err(Error::other(
            "needs debootstrap to make the Debian base image: install with .ci/install-deps",
        ));
    }
    fs_err::create_dir_all(cache_dir)?;
    let root = tempfile::Builder::new()
        .prefix("debian-rootfs-")
        .tempdir_in(cache_dir)?;
    let status = Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(root.path())
        .arg("http://deb.debian.org/debian")
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(Error::other(format!("debootstrap failed with {status}")));
    }
    trim(root.path())?;
    let partial = cache_dir.join("debian-rootfs.tar.partial");
    let mut entries: Vec<String> = fs_err::read_dir(root.path())?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    entries.sort();
    let status = Command::new("tar")
        .args([
            "--sort=name",
            "--numeric-owner",
            "--xattrs",
            "--format=posix",
        ])
        .args(["--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime"])
        .arg(format!("--mtime={MTIME}"))
        .arg("-C")
        .arg(root.path())
        .arg("-cf")
        .arg(&partial)
        .args(&entries)
        .status()?;
    if !status.success() {
        return Err(Error::other(format!(
            "tar of the Debian rootfs failed with {status}"
        )));
    }
    fs_err::rename(&partial, &tar)?;
    Ok(tar)
}

/// Removes apt lists and caches, device nodes (builders provide /dev) and
/// debootstrap's log.
fn trim(root: &Path) -> Result<()> {
    for dir in ["var/lib/apt/lists", "var/cache/apt", "dev"] {
        for entry in fs_err::read_dir(root.join(dir))? {
            let path = entry?.path();
            if path.is_dir() && !path.is_symlink() {
                fs_err::remove_dir_all(&path)?;
            } else {
                fs_err::remove_file(&path)?;
            }
        }
    }
    let log = root.join("debootstrap");
    if log.exists() {
        fs_err::remove_dir_all(log)?;
    }
    Ok(())
}
