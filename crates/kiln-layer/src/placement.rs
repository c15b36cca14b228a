//! Where the kernel puts the inodes of a tree the applier is about to create.
//!
//! On ext4 without a journal (this project's build disks), allocating an inode skips
//! every free inode of the block group that was deleted in the last 30-35 s, with a
//! buffer-cache lookup for each (`find_inode_bit` / `recently_deleted` in
//! `fs/ext4/ialloc.c`), and starts again at the group's first inode for every new one.
//! A tree created in the block groups a large tree was just deleted from (the
//! previous build's dir under the same parent) therefore costs hundreds of
//! microseconds of kernel time per entry: perf shows 70% of the applier's samples in
//! `recently_deleted` under `ext4_create`, and a 151,000-entry base took 36 s
//! instead of 7 s.
//!
//! A directory's children are placed near it (Orlov's policy) unless it carries
//! `FS_TOPDIR_FL`: then each new child directory goes to the emptiest flex group
//! found from a start derived from its name, and its whole subtree follows. A parent
//! of uniquely named build dirs marked this way puts each build in a group of its
//! own, away from what the previous one left to delete. Only a placement hint: no
//! file's content, mode or owner changes, and other file systems ignore it.
//!
//! It lowers the odds, it does not exclude the case: Orlov picks the flex group with
//! the fewest directories, and a group a whole tree was just deleted from can be that
//! group (one of five on-disk runs of `benches/apply_disk.rs` after a deletion still
//! took 37 s, as long as Docker's that round).

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// `FS_TOPDIR_FL` from `linux/fs.h`: "top of directory hierarchies".
const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;

/// Marks `dir` so that directories created directly in it are spread over the
/// file system's emptiest block groups (see the module doc). `Ok(true)` if the flag
/// is set now, `Ok(false)` where the file system has no such flag (tmpfs, overlay,
/// xfs): nothing to do there.
pub fn spread_new_dirs(dir: &Path) -> io::Result<bool> {
    let file = fs_err::File::open(dir)?;
    let fd = file.as_raw_fd();
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int through the pointer.
    if unsafe { libc::ioctl(fd, libc::FS_IOC_GETFLAGS, &mut flags) } != 0 {
        return unsupported(io::Error::last_os_error());
    }
    if flags & FS_TOPDIR_FL != 0 {
        return Ok(true);
    }
    flags |= FS_TOPDIR_FL;
    // SAFETY: FS_IOC_SETFLAGS reads one int through the pointer.
    if unsafe { libc::ioctl(fd, libc::FS_IOC_SETFLAGS, &flags) } != 0 {
        return unsupported(io::Error::last_os_error());
    }
    Ok(true)
}

fn unsupported(e: io::Error) -> io::Result<bool> {
    match e.raw_os_error() {
        Some(libc::ENOTTY | libc::EOPNOTSUPP | libc::EINVAL) => Ok(false),
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(dir: &Path) -> libc::c_int {
        let file = std::fs::File::open(dir).unwrap();
        let mut flags: libc::c_int = 0;
        // SAFETY: FS_IOC_GETFLAGS writes one int through the pointer.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        flags
    }

    #[test]
    fn the_flag_is_set_on_ext4_and_is_idempotent() {
        // The target dir is on the build disk; this test is about ext4 and says so.
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
        let dir = tempfile::tempdir_in(&base).unwrap();
        let fs_type = {
            // SAFETY: statfs fills the struct it is given.
            let mut st: libc::statfs = unsafe { std::mem::zeroed() };
            let c = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
            assert_eq!(unsafe { libc::statfs(c.as_ptr(), &mut st) }, 0);
            st.f_type
        };
        assert_eq!(
            fs_type,
            libc::EXT4_SUPER_MAGIC,
            "this test needs the target dir on ext4"
        );
        assert_eq!(flags(dir.path()) & FS_TOPDIR_FL, 0);
        assert!(spread_new_dirs(dir.path()).unwrap());
        assert_ne!(flags(dir.path()) & FS_TOPDIR_FL, 0);
        assert!(spread_new_dirs(dir.path()).unwrap());
        // A placement hint only: the directory is otherwise what it was.
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"x");
    }

    #[test]
    fn tmpfs_has_no_such_flag_and_that_is_fine() {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        assert!(!spread_new_dirs(dir.path()).unwrap());
    }

    #[test]
    fn a_missing_dir_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = spread_new_dirs(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
