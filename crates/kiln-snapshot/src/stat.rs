//! `statx(2)` without following symlinks, relative to a directory fd (the hot path of a walk)
//! or to a path, reduced to the fields a snapshot compares.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A timestamp with nanoseconds, as the kernel keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Timespec {
    /// Seconds since the epoch.
    pub sec: i64,
    /// Nanoseconds within the second.
    pub nsec: u32,
}

/// File type as given by the mode bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
    /// Named pipe.
    Fifo,
    /// Unix socket (never written into a layer).
    Socket,
}

impl FileType {
    /// The type encoded in `st_mode`.
    pub fn from_mode(mode: u32) -> FileType {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => FileType::Dir,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFCHR => FileType::CharDevice,
            libc::S_IFBLK => FileType::BlockDevice,
            libc::S_IFIFO => FileType::Fifo,
            libc::S_IFSOCK => FileType::Socket,
            _ => FileType::File,
        }
    }
}

/// The stat fields a snapshot keeps: identity (dev, ino, birth time), change detection
/// (ctime) and the attributes that end up in a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Device of the filesystem holding the inode.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Birth time when the filesystem reports it, else zero.
    pub btime: Timespec,
    /// Full `st_mode` (type and permission bits).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard link count.
    pub nlink: u32,
    /// Size in bytes.
    pub size: u64,
    /// Device number for character/block devices.
    pub rdev: u64,
    /// Modification time.
    pub mtime: Timespec,
    /// Inode change time: changes whenever anything about the inode changes.
    pub ctime: Timespec,
}

impl Stat {
    /// The file type.
    pub fn file_type(&self) -> FileType {
        FileType::from_mode(self.mode)
    }

    /// Permission bits including setuid/setgid/sticky.
    pub fn perms(&self) -> u32 {
        self.mode & 0o7777
    }

    /// True when this is the same inode as `other` (same device, inode and birth time),
    /// so a recreated file or directory that reuses an inode number is not mistaken for it.
    pub fn same_inode(&self, other: &Stat) -> bool {
        self.ino == other.ino && self.dev == other.dev && self.btime == other.btime
    }
}

fn ts(t: libc::statx_timestamp) -> Timespec {
    Timespec {
        sec: t.tv_sec,
        nsec: t.tv_nsec,
    }
}

fn statx_raw(dirfd: libc::c_int, name: &CStr) -> io::Result<Stat> {
    let mut buf = MaybeUninit::<libc::statx>::zeroed();
    let mask = libc::STATX_BASIC_STATS | libc::STATX_BTIME;
    // SAFETY: `name` is a valid NUL-terminated string, `buf` points to writable memory of
    // the right size, and the kernel only writes within it.
    let rc = unsafe {
        libc::statx(
            dirfd,
            name.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT,
            mask,
            buf.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statx succeeded, so the buffer is initialised (it was zeroed before anyway).
    let b = unsafe { buf.assume_init() };
    let btime = if b.stx_mask & libc::STATX_BTIME != 0 {
        ts(b.stx_btime)
    } else {
        Timespec::default()
    };
    Ok(Stat {
        dev: libc::makedev(b.stx_dev_major, b.stx_dev_minor),
        ino: b.stx_ino,
        btime,
        mode: u32::from(b.stx_mode),
        uid: b.stx_uid,
        gid: b.stx_gid,
        nlink: b.stx_nlink,
        size: b.stx_size,
        rdev: libc::makedev(b.stx_rdev_major, b.stx_rdev_minor),
        mtime: ts(b.stx_mtime),
        ctime: ts(b.stx_ctime),
    })
}

/// `statx` of `name` inside the directory `dir`, not following a final symlink.
pub(crate) fn stat_at(dir: RawFd, name: &CStr) -> io::Result<Stat> {
    statx_raw(dir, name)
}

/// `statx` of `path`, not following a final symlink.
pub fn lstat(path: &Path) -> io::Result<Stat> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    statx_raw(libc::AT_FDCWD, &c)
}
