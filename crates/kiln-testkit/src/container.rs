//! An emulated default container, as a Docker or Kubernetes runner makes one
//! without privileges: the calling process (pid 1 of new mount and pid
//! namespaces, e.g. started with `unshare --mount --pid --fork`) binds the
//! image's rootfs, mounts `/proc` and a minimal `/dev`, pivots into the rootfs,
//! then installs a seccomp filter that, like Docker's default profile, refuses
//! to create namespaces, and keeps only Docker's default capabilities (no
//! CAP_SYS_ADMIN). A privileged container skips the last two steps.
//!
//! One implementation for every test that needs "kiln inside a container":
//! the GitLab scenario, and the in-place tests of kiln-sandbox and kiln-build.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

/// What the container is made of.
#[derive(Debug, Clone, Default)]
pub struct ContainerSetup {
    /// The unpacked image; becomes `/`.
    pub rootfs: PathBuf,
    /// `(host path, path inside)` bind mounts, read-write.
    pub binds: Vec<(PathBuf, String)>,
    /// Bind the host's /etc/hosts and /etc/resolv.conf, as runners do (creates
    /// the mount targets in the rootfs when missing).
    pub runner_files: bool,
    /// All capabilities and no seccomp filter: namespaces work inside.
    pub privileged: bool,
}

/// Turns the calling process into the container described by `setup`.
/// Call it as pid 1 of fresh mount and pid namespaces, as root.
pub fn enter(setup: &ContainerSetup) -> io::Result<()> {
    mount_filesystems(&setup.rootfs, &setup.binds, setup.runner_files)?;
    pivot_into(&setup.rootfs)?;
    if !setup.privileged {
        install_seccomp_filter()?;
        drop_to_docker_default_caps()?;
    }
    Ok(())
}

/// Docker's default capability set as a bit mask.
pub fn docker_default_cap_mask() -> u64 {
    DOCKER_DEFAULT_CAPS.iter().map(|c| 1u64 << c).sum()
}

fn mount(
    src: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let c = |s: &str| CString::new(s).expect("no NUL");
    let target_c = c(&target.to_string_lossy());
    let (src_c, fstype_c, data_c) = (c(src), c(fstype), c(data));
    // SAFETY: all pointers are valid NUL-terminated strings for the call's duration.
    let rc = unsafe {
        libc::mount(
            src_c.as_ptr(),
            target_c.as_ptr(),
            if fstype.is_empty() {
                std::ptr::null()
            } else {
                fstype_c.as_ptr()
            },
            flags,
            if data.is_empty() {
                std::ptr::null()
            } else {
                data_c.as_ptr().cast()
            },
        )
    };
    if rc != 0 {
        return Err(io::Error::other(format!(
            "mount {src} on {} ({fstype}): {}",
            target.display(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

fn mount_filesystems(
    rootfs: &Path,
    binds: &[(PathBuf, String)],
    runner_files: bool,
) -> io::Result<()> {
    let root = rootfs.to_string_lossy().into_owned();
    mount(&root, rootfs, "", libc::MS_BIND | libc::MS_REC, "")?;
    for (host, inside) in binds {
        let target = rootfs.join(inside.trim_start_matches('/'));
        std::fs::create_dir_all(&target)
            .map_err(|e| io::Error::other(format!("mkdir {}: {e}", target.display())))?;
        mount(
            &host.to_string_lossy(),
            &target,
            "",
            libc::MS_BIND | libc::MS_REC,
            "",
        )?;
    }
    let proc_dir = rootfs.join("proc");
    std::fs::create_dir_all(&proc_dir)?;
    mount("proc", &proc_dir, "proc", 0, "")?;
    let dev = rootfs.join("dev");
    std::fs::create_dir_all(&dev)?;
    mount("tmpfs", &dev, "tmpfs", libc::MS_NOSUID, "mode=755")?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = dev.join(node);
        std::fs::write(&target, b"")?;
        mount(&format!("/dev/{node}"), &target, "", libc::MS_BIND, "")?;
    }
    for dir in ["pts", "shm"] {
        std::fs::create_dir_all(dev.join(dir))?;
    }
    mount(
        "tmpfs",
        &dev.join("shm"),
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV,
        "mode=1777",
    )?;
    // /etc/hosts and resolv.conf come from the runner, as Docker bind-mounts them.
    let runner_files: &[&str] = if runner_files {
        &["etc/hosts", "etc/resolv.conf"]
    } else {
        &[]
    };
    for file in runner_files {
        let target = rootfs.join(file);
        if Path::new("/").join(file).exists() {
            std::fs::create_dir_all(target.parent().expect("has parent"))?;
            if !target.exists() {
                std::fs::write(&target, b"")?;
            }
            mount(&format!("/{file}"), &target, "", libc::MS_BIND, "")?;
        }
    }
    Ok(())
}

fn pivot_into(rootfs: &Path) -> io::Result<()> {
    std::env::set_current_dir(rootfs)?;
    let dot = CString::new(".").expect("no NUL");
    // SAFETY: pivot_root(".", ".") stacks the old root under the new one; both
    // arguments are valid strings.
    let rc = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::other(format!(
            "pivot_root into {}: {}",
            rootfs.display(),
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: detaches the old root now stacked on "."; the argument is valid.
    let rc = unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) };
    if rc != 0 {
        return Err(io::Error::other(format!(
            "detaching the old root: {}",
            std::io::Error::last_os_error()
        )));
    }
    std::env::set_current_dir("/")?;
    Ok(())
}

/// Docker's default capabilities (moby's `oci/caps/defaults.go`).
const DOCKER_DEFAULT_CAPS: &[u32] = &[
    0,  // CHOWN
    1,  // DAC_OVERRIDE
    3,  // FOWNER
    4,  // FSETID
    5,  // KILL
    6,  // SETGID
    7,  // SETUID
    8,  // SETPCAP
    10, // NET_BIND_SERVICE
    13, // NET_RAW
    18, // SYS_CHROOT
    27, // MKNOD
    29, // AUDIT_WRITE
    31, // SETFCAP
];

fn drop_to_docker_default_caps() -> io::Result<()> {
    for cap in 0..64u32 {
        if DOCKER_DEFAULT_CAPS.contains(&cap) {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if rc != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return Err(io::Error::other(format!(
                "dropping capability {cap}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    let mask = docker_default_cap_mask();
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let low = Data {
        effective: mask as u32,
        permitted: mask as u32,
        inheritable: 0,
    };
    let high = Data {
        effective: (mask >> 32) as u32,
        permitted: (mask >> 32) as u32,
        inheritable: 0,
    };
    let data = [low, high];
    // SAFETY: header and data are valid for capset's v3 layout (two Data words).
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::other(format!(
            "capset: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// A classic-BPF seccomp filter: `unshare` and `setns` fail with EPERM,
/// `clone` with any namespace flag fails with EPERM, `clone3` with ENOSYS
/// (so libc falls back to `clone`), everything else is allowed. That is what
/// Docker's default profile amounts to for a process without CAP_SYS_ADMIN.
fn install_seccomp_filter() -> io::Result<()> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const ALLOW: u32 = 0x7fff_0000;
    const ERRNO: u32 = 0x0005_0000;
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const NS_FLAGS: u32 = 0x0002_0000 // CLONE_NEWNS
        | 0x0200_0000 // CLONE_NEWCGROUP
        | 0x0400_0000 // CLONE_NEWUTS
        | 0x0800_0000 // CLONE_NEWIPC
        | 0x1000_0000 // CLONE_NEWUSER
        | 0x2000_0000 // CLONE_NEWPID
        | 0x4000_0000; // CLONE_NEWNET
    let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let program = [
        /* 0 */ ins(LD_W_ABS, 0, 0, 4), // arch
        /* 1 */ ins(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        /* 2 */ ins(RET_K, 0, 0, ALLOW),
        /* 3 */ ins(LD_W_ABS, 0, 0, 0), // syscall number
        /* 4 */ ins(JEQ_K, 6, 0, libc::SYS_unshare as u32), // -> 11
        /* 5 */ ins(JEQ_K, 5, 0, libc::SYS_setns as u32), // -> 11
        /* 6 */ ins(JEQ_K, 6, 0, libc::SYS_clone3 as u32), // -> 13
        /* 7 */ ins(JEQ_K, 1, 0, libc::SYS_clone as u32), // -> 9
        /* 8 */ ins(RET_K, 0, 0, ALLOW),
        /* 9 */ ins(LD_W_ABS, 0, 0, 16), // clone flags (args[0], low word)
        /* 10 */ ins(JSET_K, 0, 1, NS_FLAGS),
        /* 11 */ ins(RET_K, 0, 0, ERRNO | libc::EPERM as u32),
        /* 12 */ ins(RET_K, 0, 0, ALLOW),
        /* 13 */ ins(RET_K, 0, 0, ERRNO | libc::ENOSYS as u32),
    ];
    // Jump offsets are relative to the next instruction; the comments give
    // the absolute targets.
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: prog points at a valid filter for the duration of the call.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &prog as *const libc::sock_fprog as libc::c_ulong,
            0,
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::other(format!(
            "installing the seccomp filter: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}
