//! Network setup of the supervisor in a new network namespace.

use super::{close, errno};

#[repr(C)]
struct IfreqFlags {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

pub(super) fn loopback_up() -> Result<(), i32> {
    // SAFETY: plain socket for interface ioctls.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(errno());
    }
    let mut req = IfreqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[0] = b'l' as libc::c_char;
    req.name[1] = b'o' as libc::c_char;
    // SAFETY: ifreq-shaped buffer for SIOCGIFFLAGS/SIOCSIFFLAGS.
    let mut rc = unsafe { libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req as *mut IfreqFlags) };
    if rc == 0 {
        req.flags |= libc::IFF_UP as libc::c_short;
        // SAFETY: as above.
        rc = unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &mut req as *mut IfreqFlags) };
    }
    let e = errno();
    close(sock);
    if rc < 0 { Err(e) } else { Ok(()) }
}
