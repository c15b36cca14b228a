//! Mounting and unmounting the overlay a step runs in, and finding out whether this
//! process may do it at all.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::error::{Error, IoContext, Result};

/// The xattr namespace overlayfs uses for its own markers: `trusted.overlay.` as real
/// root, `user.overlay.` (mount option `userxattr`) inside a user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XattrNamespace {
    Trusted,
    User,
}

impl XattrNamespace {
    /// Trusted xattrs need CAP_SYS_ADMIN in the initial user namespace.
    pub fn detect() -> XattrNamespace {
        match std::fs::read_to_string("/proc/self/uid_map") {
            Ok(map) if is_initial_user_namespace(&map) => XattrNamespace::Trusted,
            _ => XattrNamespace::User,
        }
    }

    /// Name of the opaque-directory marker.
    pub fn opaque_name(self) -> &'static str {
        match self {
            XattrNamespace::Trusted => "trusted.overlay.opaque",
            XattrNamespace::User => "user.overlay.opaque",
        }
    }
}

/// The initial user namespace maps the whole uid range onto itself.
fn is_initial_user_namespace(uid_map: &str) -> bool {
    let fields: Vec<&str> = uid_map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

/// Whether unmounting the overlay syncs its upper filesystem (see
/// [`Layout::options`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sync {
    /// `volatile`: no sync (the kernel supports it).
    Volatile,
    /// The kernel's default: sync on unmount (kernels before 5.10).
    Synced,
}

/// The directories of one overlay.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub lower: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
}

impl Layout {
    /// Mount options. Redirects and metacopy stay off so the upper dir holds whole files
    /// and renamed directories are copied, never referenced; index and xino off to keep
    /// the upper dir free of overlay bookkeeping beyond whiteouts and opaque markers.
    /// With `userxattr` the kernel only accepts `redirect_dir=nofollow` (which creates no
    /// redirects either).
    ///
    /// `volatile` (Linux 5.10 and later) stops the overlay from syncing its upper
    /// filesystem: without it every unmount writes back *all* dirty data of the disk the
    /// build dir is on (the base layers just unpacked, a RUN's 500 MB, other processes'
    /// files), 0.2-0.65 s per step measured in `cargo xtask bench ci`. A build dir is
    /// thrown away after a crash anyway, and nothing else kiln writes is synced either.
    fn options(&self, ns: XattrNamespace, sync: Sync) -> Result<String> {
        let (redirect, userxattr) = match ns {
            XattrNamespace::Trusted => ("off", ""),
            XattrNamespace::User => ("nofollow", ",userxattr"),
        };
        let volatile = match sync {
            Sync::Volatile => ",volatile",
            Sync::Synced => "",
        };
        Ok(format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir={redirect},metacopy=off,index=off,xino=off{userxattr}{volatile}",
            option_path(&self.lower)?,
            option_path(&self.upper)?,
            option_path(&self.work)?
        ))
    }

    /// Mounts the overlay on `merged`.
    pub fn mount(&self, ns: XattrNamespace, sync: Sync) -> Result<()> {
        let opts = self.options(ns, sync)?;
        nix::mount::mount(
            Some("overlay"),
            &self.merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(opts.as_str()),
        )
        .map_err(|e| Error::OverlayUnavailable {
            path: self.lower.clone(),
            reason: format!("mount -t overlay on {} failed: {e}", self.merged.display()),
        })
    }

    /// Unmounts `merged`; if something still holds it, detaches it lazily and says so.
    pub fn unmount(&self) -> Result<()> {
        match nix::mount::umount2(&self.merged, MntFlags::empty()) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::EBUSY) => {
                tracing::warn!(
                    merged = %self.merged.display(),
                    "overlay still busy after the step (a process or mount left behind); detaching it lazily"
                );
                nix::mount::umount2(&self.merged, MntFlags::MNT_DETACH)
                    .map_err(std::io::Error::from)
                    .at("detaching overlay", &self.merged)
            }
            Err(e) => Err(std::io::Error::from(e)).at("unmounting overlay", &self.merged),
        }
    }

    /// The scratch dirs: `upper`, `work` and `merged` unless the overlay is
    /// mounted over its lower dir.
    fn scratch_dirs(&self) -> Vec<&PathBuf> {
        let mut dirs = vec![&self.upper, &self.work];
        if self.merged != self.lower {
            dirs.push(&self.merged);
        }
        dirs
    }

    /// Creates the scratch dirs afresh (removing leftovers of an aborted step).
    pub fn create_dirs(&self) -> Result<()> {
        for d in self.scratch_dirs() {
            remove_if_exists(d)?;
            std::fs::create_dir_all(d).at("creating overlay directory", d)?;
        }
        Ok(())
    }

    /// Removes the scratch dirs (never the lower dir).
    pub fn remove_dirs(&self) -> Result<()> {
        for d in self.scratch_dirs() {
            remove_if_exists(d)?;
        }
        Ok(())
    }
}

fn remove_if_exists(d: &Path) -> Result<()> {
    match std::fs::remove_dir_all(d) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at("removing overlay directory", d),
    }
}

/// Paths go into a comma- and colon-separated option string; refuse what would be
/// misread rather than escape it.
fn option_path(p: &Path) -> Result<String> {
    let s = p.to_str().ok_or_else(|| Error::OverlayUnavailable {
        path: p.to_path_buf(),
        reason: "path is not UTF-8".into(),
    })?;
    if s.contains([',', ':', '\\']) {
        return Err(Error::OverlayUnavailable {
            path: p.to_path_buf(),
            reason: "path contains ',', ':' or '\\', which overlay mount options cannot carry"
                .into(),
        });
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_user_namespace_is_recognised() {
        assert!(is_initial_user_namespace(
            "         0          0 4294967295\n"
        ));
        assert!(!is_initial_user_namespace(
            "         0       1000          1\n"
        ));
    }
}
