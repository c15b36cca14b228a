//! Mount operations of the command process, below the rootfs, before pivot_root. Targets
//! are resolved inside the root (openat2 `RESOLVE_IN_ROOT`) and mounted through
//! `/proc/self/fd/N`, so no symlink in the image can redirect a mount.

use std::os::fd::RawFd;

use super::{close, errno};
use crate::plan::{Op, Source};

/// `/proc/self/fd/N` as a NUL-terminated buffer, built without allocating.
struct FdPath([u8; 32]);

impl FdPath {
    fn new(fd: RawFd) -> FdPath {
        let mut buf = [0u8; 32];
        let prefix = b"/proc/self/fd/";
        buf[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 12];
        let mut n = fd.unsigned_abs();
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for i in 0..len {
            buf[prefix.len() + i] = digits[len - 1 - i];
        }
        FdPath(buf)
    }

    fn as_ptr(&self) -> *const libc::c_char {
        self.0.as_ptr().cast()
    }
}

fn open_in_root(rootfd: RawFd, rel: &std::ffi::CStr, flags: libc::c_int) -> Result<RawFd, i32> {
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: raw syscall with valid pointers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            rootfd,
            rel.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd as RawFd)
    }
}

/// Remounts the bind mount at `fd` adding `extra` flags, keeping the flags it has (the
/// kernel locks nosuid, nodev, noexec, read-only and atime flags in a user namespace).
pub(super) fn remount_bind_fd(fd: RawFd, extra: libc::c_ulong) -> Result<(), i32> {
    let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    if unsafe { libc::fstatvfs(fd, &mut vfs) } < 0 {
        return Err(errno());
    }
    let keep = (libc::MS_RDONLY
        | libc::MS_NOSUID
        | libc::MS_NODEV
        | libc::MS_NOEXEC
        | libc::MS_NOATIME
        | libc::MS_NODIRATIME
        | libc::MS_RELATIME)
        & vfs.f_flag as libc::c_ulong;
    let path = FdPath::new(fd);
    // SAFETY: valid NUL-terminated path; null source/fstype/data are allowed for a remount.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            path.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REMOUNT | extra | keep,
            std::ptr::null(),
        )
    };
    if rc < 0 { Err(errno()) } else { Ok(()) }
}

/// Remounts the mount at `rel` (re-resolved, so the new top mount) read-only.
fn remount_readonly(rootfd: RawFd, rel: &std::ffi::CStr) -> Result<(), i32> {
    let fd = open_in_root(rootfd, rel, libc::O_PATH)?;
    let r = remount_bind_fd(fd, libc::MS_RDONLY);
    close(fd);
    r
}

fn opt_ptr(c: &Option<std::ffi::CString>) -> *const libc::c_char {
    c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
}

pub(super) fn do_op(rootfd: RawFd, op: &Op) -> Result<(), i32> {
    match op {
        Op::Mount {
            source,
            target,
            fstype,
            flags,
            data,
            readonly,
            optional,
        } => {
            let tfd = match open_in_root(rootfd, target, libc::O_PATH) {
                Ok(fd) => fd,
                Err(libc::ENOENT) if *optional => return Ok(()),
                Err(e) => return Err(e),
            };
            let tpath = FdPath::new(tfd);
            let src = match source {
                Source::Name(c) | Source::Host(c) => c.as_ptr(),
                Source::Target => tpath.as_ptr(),
            };
            // SAFETY: valid NUL-terminated strings or null where mount(2) allows it.
            let rc = unsafe {
                libc::mount(
                    src,
                    tpath.as_ptr(),
                    opt_ptr(fstype),
                    *flags,
                    opt_ptr(data).cast(),
                )
            };
            let e = errno();
            close(tfd);
            if rc < 0 {
                return if e == libc::ENOENT && *optional {
                    Ok(())
                } else {
                    Err(e)
                };
            }
            if *readonly {
                remount_readonly(rootfd, target)
            } else {
                Ok(())
            }
        }
        Op::Sysfs { target } => {
            let tfd = open_in_root(rootfd, target, libc::O_PATH)?;
            let tpath = FdPath::new(tfd);
            // SAFETY: valid NUL-terminated strings.
            let rc = unsafe {
                libc::mount(
                    c"sysfs".as_ptr(),
                    tpath.as_ptr(),
                    c"sysfs".as_ptr(),
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    std::ptr::null(),
                )
            };
            if rc == 0 {
                close(tfd);
                return Ok(());
            }
            // A user namespace that does not own the network namespace may not mount
            // sysfs: bind the host's instead, read-only.
            // SAFETY: as above.
            let rc = unsafe {
                libc::mount(
                    c"/sys".as_ptr(),
                    tpath.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                )
            };
            let e = errno();
            close(tfd);
            if rc < 0 {
                return Err(e);
            }
            remount_readonly(rootfd, target)
        }
        Op::Mkdir { parent, name, mode } => {
            let pfd = open_in_root(rootfd, parent, libc::O_PATH)?;
            // SAFETY: valid fd and name.
            let mut rc = unsafe { libc::mkdirat(pfd, name.as_ptr(), *mode) };
            // A new directory gets exactly `mode`, whatever the umask.
            if rc == 0 {
                // SAFETY: valid fd and name; the directory was just created.
                rc = unsafe { libc::fchmodat(pfd, name.as_ptr(), *mode, 0) };
            }
            let e = errno();
            close(pfd);
            if rc < 0 && e != libc::EEXIST {
                Err(e)
            } else {
                Ok(())
            }
        }
        Op::Touch { parent, name, mode } => {
            let pfd = open_in_root(rootfd, parent, libc::O_PATH)?;
            // SAFETY: valid fd and name; never follows a symlink.
            let fd = unsafe {
                libc::openat(
                    pfd,
                    name.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    *mode,
                )
            };
            let e = errno();
            close(pfd);
            if fd < 0 {
                return Err(e);
            }
            close(fd);
            Ok(())
        }
        Op::Symlink {
            parent,
            name,
            target,
        } => {
            let pfd = open_in_root(rootfd, parent, libc::O_PATH)?;
            // SAFETY: valid fd and strings.
            let rc = unsafe { libc::symlinkat(target.as_ptr(), pfd, name.as_ptr()) };
            let e = errno();
            close(pfd);
            if rc < 0 && e != libc::EEXIST {
                Err(e)
            } else {
                Ok(())
            }
        }
        Op::Chown { path, uid, gid } => {
            let fd = open_in_root(rootfd, path, libc::O_PATH | libc::O_NOFOLLOW)?;
            // SAFETY: valid fd; AT_EMPTY_PATH changes the file the descriptor refers to.
            let rc = unsafe { libc::fchownat(fd, c"".as_ptr(), *uid, *gid, libc::AT_EMPTY_PATH) };
            let e = errno();
            close(fd);
            if rc < 0 { Err(e) } else { Ok(()) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_paths_are_formatted_without_allocation() {
        let p = FdPath::new(1234);
        let s = unsafe { std::ffi::CStr::from_ptr(p.as_ptr()) };
        assert_eq!(s.to_str().unwrap(), "/proc/self/fd/1234");
        let p = FdPath::new(0);
        assert_eq!(
            unsafe { std::ffi::CStr::from_ptr(p.as_ptr()) }
                .to_str()
                .unwrap(),
            "/proc/self/fd/0"
        );
    }
}
