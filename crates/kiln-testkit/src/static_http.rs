//! Files over HTTP from a directory: Python's `http.server` (python3 is on every
//! machine the tests run on), a real server that streams files from disk, on a
//! free 127.0.0.1 port, killed by PID on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `python3 -m http.server` serving one directory.
#[derive(Debug)]
pub struct StaticHttp {
    child: Child,
    port: u16,
}

impl StaticHttp {
    /// Serves `dir` and waits until the server accepts connections.
    pub fn start(dir: &Path) -> StaticHttp {
        let python = crate::tools::require("/usr/bin/python3");
        let port = crate::ports::free_port();
        let child = Command::new(python)
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting python3 -m http.server");
        let server = StaticHttp { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "python3 -m http.server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// `http://127.0.0.1:PORT/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for StaticHttp {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on our own child's PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
