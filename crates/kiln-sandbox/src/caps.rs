//! Capabilities: the set a default Docker container gets, and dropping everything else
//! (bounding set, ambient set, effective/permitted/inheritable) without allocating, so it
//! can run between fork and exec.

/// Capability numbers Docker grants a container by default (moby's default capability list).
pub const DEFAULT_CONTAINER_CAPS: [u32; 14] = [
    0,  // CAP_CHOWN
    1,  // CAP_DAC_OVERRIDE
    3,  // CAP_FOWNER
    4,  // CAP_FSETID
    5,  // CAP_KILL
    6,  // CAP_SETGID
    7,  // CAP_SETUID
    8,  // CAP_SETPCAP
    10, // CAP_NET_BIND_SERVICE
    13, // CAP_NET_RAW
    18, // CAP_SYS_CHROOT
    27, // CAP_MKNOD
    29, // CAP_AUDIT_WRITE
    31, // CAP_SETFCAP
];

/// `CAP_SYS_ADMIN`, what chroot mode needs and a default container lacks.
pub const CAP_SYS_ADMIN: u32 = 21;

/// `CAP_NET_RAW`, dropped when a root command shares the host's network namespace (it
/// would let it sniff the host's traffic through packet sockets).
pub const CAP_NET_RAW: u32 = 13;

/// [`DEFAULT_CONTAINER_CAPS`] as a bit mask.
pub fn default_mask() -> u64 {
    DEFAULT_CONTAINER_CAPS
        .iter()
        .fold(0u64, |m, c| m | (1u64 << c))
}

/// The highest capability number the kernel knows, from /proc/sys/kernel/cap_last_cap.
pub(crate) fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `CAP_SYS_CHROOT`, dropped too when the sandbox had to fall back from pivot_root to chroot
/// (a chroot can be escaped with it).
pub const CAP_SYS_CHROOT: u32 = 18;

/// Reduces the calling thread's capabilities to [`DEFAULT_CONTAINER_CAPS`]: bounding set,
/// ambient set, then effective/permitted/inheritable. Returns the errno of a failure.
pub fn drop_to_default(last_cap: u32) -> Result<(), i32> {
    drop_to(last_cap, default_mask())
}

/// Reduces the calling thread's capabilities to those in `mask` (bit n = capability n),
/// without allocating. Returns the errno of a failure.
pub(crate) fn drop_to(last_cap: u32, mask: u64) -> Result<(), i32> {
    for cap in 0..=last_cap.min(63) {
        if mask & (1u64 << cap) == 0 {
            // SAFETY: prctl with integer arguments.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if rc < 0 {
                let e = std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EPERM);
                if e != libc::EINVAL {
                    return Err(e);
                }
            }
        }
    }
    // SAFETY: prctl with integer arguments; failure (old kernels) leaves no ambient caps anyway.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capget with a v3 header and two data slots.
    if unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    } < 0
    {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EPERM));
    }
    for (i, d) in data.iter_mut().enumerate() {
        let m = (mask >> (32 * i)) as u32;
        d.effective &= m;
        d.permitted &= m;
        d.inheritable &= m;
    }
    // SAFETY: capset with a v3 header and two data slots.
    if unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    } < 0
    {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EPERM));
    }
    Ok(())
}
