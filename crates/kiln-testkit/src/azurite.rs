//! Azure Blob Storage on 127.0.0.1: npm's Azurite (`azurite-blob`), with one
//! storage account of the caller's choosing (`AZURITE_ACCOUNTS`), so Shared
//! Key signatures are checked and a wrong key is refused; a child killed by
//! PID on drop, telemetry off. Containers and blobs are created with curl,
//! signed here with Shared Key (Microsoft's string-to-sign, independent of
//! the client under test); blobs stream from their file.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The storage REST API version the helpers sign for.
const API_VERSION: &str = "2021-08-06";

/// A running Azurite blob service.
#[derive(Debug)]
pub struct Azurite {
    child: Child,
    port: u16,
    account: String,
    key: Vec<u8>,
    _data: tempfile::TempDir,
}

impl Azurite {
    /// Starts Azurite with the one account `account` whose key is `key`
    /// (base64, as Azure shows account keys).
    pub fn start(account: &str, key: &str) -> Azurite {
        let binary = crate::tools::on_path("azurite-blob", "npm install -g azurite");
        let data = tempfile::tempdir().expect("a data dir for azurite");
        let port = crate::ports::free_port();
        let child = Command::new(binary)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(data.path())
            .args(["--silent", "--disableTelemetry", "--skipApiVersionCheck"])
            .env("AZURITE_ACCOUNTS", format!("{account}:{key}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting azurite-blob");
        let server = Azurite {
            child,
            port,
            account: account.to_string(),
            key: STANDARD.decode(key).expect("the account key is base64"),
            _data: data,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "azurite-blob did not listen on {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// The account's blob endpoint, `http://127.0.0.1:PORT/ACCOUNT` (path
    /// style, as Azurite serves accounts).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, self.account)
    }

    /// Creates a container.
    pub fn create_container(&self, container: &str) {
        self.request("PUT", container, &[("restype", "container")], None);
    }

    /// Uploads `file` as the block blob `container/blob`.
    pub fn put(&self, container: &str, blob: &str, file: &Path) {
        self.request("PUT", &format!("{container}/{blob}"), &[], Some(file));
    }

    fn request(&self, verb: &str, path: &str, query: &[(&str, &str)], body: Option<&Path>) {
        let date = Command::new("date")
            .args(["-u", "+%a, %d %b %Y %H:%M:%S GMT"])
            .env("LC_ALL", "C")
            .output()
            .expect("running date");
        let date = String::from_utf8_lossy(&date.stdout).trim().to_string();
        let length = match body {
            Some(f) => std::fs::metadata(f).expect("the blob's file").len(),
            None => 0,
        };
        let content_type = if body.is_some() {
            "application/octet-stream"
        } else {
            ""
        };
        let mut headers = vec![
            ("x-ms-date".to_string(), date),
            ("x-ms-version".to_string(), API_VERSION.to_string()),
        ];
        if body.is_some() {
            headers.push(("x-ms-blob-type".into(), "BlockBlob".into()));
        }
        headers.sort();
        // Shared Key: verb, eleven standard headers (Content-Length empty
        // when 0), the x-ms- headers, then /ACCOUNT + the URL path (which
        // for Azurite's path style starts with the account again) and the
        // query parameters.
        let mut to_sign = format!(
            "{verb}\n\n\n{}\n\n{content_type}\n\n\n\n\n\n\n",
            if length == 0 {
                String::new()
            } else {
                length.to_string()
            }
        );
        for (name, value) in &headers {
            to_sign.push_str(&format!("{name}:{value}\n"));
        }
        to_sign.push_str(&format!("/{0}/{0}/{path}", self.account));
        let mut sorted = query.to_vec();
        sorted.sort();
        for (k, v) in &sorted {
            to_sign.push_str(&format!("\n{k}:{v}"));
        }
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.key);
        let signature = STANDARD.encode(ring::hmac::sign(&key, to_sign.as_bytes()).as_ref());

        let mut url = format!("{}/{path}", self.endpoint());
        if !query.is_empty() {
            let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            url = format!("{url}?{}", q.join("&"));
        }
        let mut cmd = Command::new(crate::tools::require("/usr/bin/curl"));
        cmd.args(["-sS", "--fail-with-body", "-X", verb]);
        for (name, value) in &headers {
            cmd.args(["-H", &format!("{name}: {value}")]);
        }
        cmd.args([
            "-H",
            &format!("Authorization: SharedKey {}:{signature}", self.account),
        ]);
        match body {
            Some(file) => {
                cmd.args(["-H", &format!("Content-Type: {content_type}")])
                    .arg("-T")
                    .arg(file);
            }
            None => {
                cmd.args(["-H", "Content-Length: 0"]);
            }
        }
        let out = cmd.arg(&url).output().expect("running curl");
        assert!(
            out.status.success(),
            "{verb} {url}: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on our own child's PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
