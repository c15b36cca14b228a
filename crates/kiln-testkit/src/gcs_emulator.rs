//! Google Cloud Storage on 127.0.0.1: PyPI's `gcp-storage-emulator`, on disk
//! in a temporary directory, a child killed by PID on drop. It checks no
//! credentials (as Google's clients, given `STORAGE_EMULATOR_HOST`, send
//! none) and answers a missing bucket and a missing object alike (an empty
//! 404). Buckets are created through its JSON API, objects put with curl.
//!
//! Its downloads lack what GCS clients require (`ETag`, `Last-Modified`), it
//! has no `HEAD` and it does not decode escaped bucket names: a download
//! test goes through [`crate::GcsFront`], which fills those gaps from the
//! emulator's own metadata.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `gcp-storage-emulator`.
#[derive(Debug)]
pub struct GcsEmulator {
    child: Child,
    port: u16,
    _data: tempfile::TempDir,
}

impl GcsEmulator {
    /// Starts the emulator.
    pub fn start() -> GcsEmulator {
        let binary =
            crate::tools::on_path("gcp-storage-emulator", "pip install gcp-storage-emulator");
        let data = tempfile::tempdir().expect("a data dir for the GCS emulator");
        let port = crate::ports::free_port();
        let child = Command::new(binary)
            .arg("--data-dir")
            .arg(data.path())
            .args([
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "-q",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting gcp-storage-emulator");
        let server = GcsEmulator {
            child,
            port,
            _data: data,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "gcp-storage-emulator did not listen on {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `127.0.0.1:PORT`, the form `STORAGE_EMULATOR_HOST` takes.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, bucket: &str) {
        curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            &format!("{{\"name\":\"{bucket}\"}}"),
            &format!("http://{}/storage/v1/b?project=kiln-test", self.host()),
        ]);
    }

    /// Uploads `file` as `bucket/key`.
    pub fn put(&self, bucket: &str, key: &str, file: &Path) {
        curl(&[
            "-H",
            "Content-Type: application/octet-stream",
            "-T",
            &file.display().to_string(),
            &format!("http://{}/{bucket}/{key}", self.host()),
        ]);
    }
}

fn curl(args: &[&str]) {
    let out = Command::new(crate::tools::require("/usr/bin/curl"))
        .args(["-sS", "--fail-with-body"])
        .args(args)
        .output()
        .expect("running curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

impl Drop for GcsEmulator {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on our own child's PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
