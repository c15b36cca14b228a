//! The supervisor's private binfmt_misc instance (Linux 6.7 and later): a binfmt_misc
//! superblock made in the supervisor's own user namespace belongs to that namespace, and
//! the kernel looks handlers up from the exec'ing process's user namespace upwards, so the
//! command (and everything it starts) finds the registration and the host sees nothing.
//!
//! The instance is made with the new mount API as a detached mount that is never attached
//! anywhere, so nothing appears in the rootfs or the host's tree; the supervisor keeps its
//! descriptor open until it exits, which keeps the instance (and its registration) alive
//! while the command runs. The F flag makes the kernel open the emulator now, from the
//! host's tree, so it works in the rootfs after pivot_root.

use std::ffi::CStr;

use super::{close, errno};

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;

/// Registers `line` (`:name:M::magic:mask:interpreter:F`) in a new binfmt_misc instance.
/// The instance's mount descriptor is deliberately left open (close-on-exec): the instance
/// lives as long as the supervisor.
pub(super) fn register(line: &CStr) -> Result<(), i32> {
    // SAFETY: raw system calls on a constant name and descriptors this process owns.
    unsafe {
        let fs = libc::syscall(libc::SYS_fsopen, c"binfmt_misc".as_ptr(), FSOPEN_CLOEXEC) as i32;
        if fs < 0 {
            return Err(errno());
        }
        let created = libc::syscall(
            libc::SYS_fsconfig,
            fs,
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        );
        if created < 0 {
            let e = errno();
            close(fs);
            return Err(e);
        }
        let mnt = libc::syscall(libc::SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0) as i32;
        let e = errno();
        close(fs);
        if mnt < 0 {
            return Err(e);
        }
        let reg = libc::openat(mnt, c"register".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if reg < 0 {
            return Err(errno());
        }
        let bytes = line.to_bytes();
        let n = libc::write(reg, bytes.as_ptr().cast(), bytes.len());
        let e = errno();
        close(reg);
        if n < 0 {
            return Err(e);
        }
        Ok(())
    }
}
