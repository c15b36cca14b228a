//! An S3-compatible server on 127.0.0.1: PyPI's `moto[server]` (`moto_server`),
//! a child killed by PID on drop. Objects are put with curl (plain PUTs: moto
//! accepts unsigned requests unless started with authentication on).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `moto_server`.
#[derive(Debug)]
pub struct MotoS3 {
    child: Child,
    port: u16,
}

impl MotoS3 {
    /// Starts moto; with `authenticate`, every request must be signed by a
    /// known key (moto's `INITIAL_NO_AUTH_ACTION_COUNT=0`), so any key is wrong.
    pub fn start(authenticate: bool) -> MotoS3 {
        let moto = crate::tools::on_path("moto_server", "pip install 'moto[server]'");
        let port = crate::ports::free_port();
        let mut cmd = Command::new(moto);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if authenticate {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
        }
        let child = cmd.spawn().expect("starting moto_server");
        let server = MotoS3 { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `http://127.0.0.1:PORT` (`S3_ENDPOINT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, bucket: &str) {
        curl(&["-X", "PUT", &format!("{}/{bucket}", self.endpoint())]);
    }

    /// Uploads `file` as `bucket/key`.
    pub fn put(&self, bucket: &str, key: &str, file: &Path) {
        curl(&[
            "-T",
            &file.display().to_string(),
            &format!("{}/{bucket}/{key}", self.endpoint()),
        ]);
    }
}

fn curl(args: &[&str]) {
    let out = Command::new(crate::tools::require("/usr/bin/curl"))
        .args(["-sS", "--fail"])
        .args(args)
        .output()
        .expect("running curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for MotoS3 {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on our own child's PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
