//! Free ports on 127.0.0.1.

use std::net::TcpListener;

/// Asks the kernel for a free port on 127.0.0.1 (bind port 0, read it, release it).
///
/// Another process may grab the port before our child binds it; callers that hand the
/// port to a child process retry on collision.
pub fn free_port() -> u16 {
    let listener =
        TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0 to find a free port");
    listener
        .local_addr()
        .expect("local_addr of a bound listener")
        .port()
}
