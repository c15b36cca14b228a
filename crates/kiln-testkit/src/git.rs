//! git servers on 127.0.0.1 for remote-context tests, both real git:
//!
//! - [`GitDaemon`] runs Debian's `git daemon` (the `git://` protocol) over a
//!   directory of bare repositories, as a child killed by PID on drop.
//! - [`GitHttp`] hosts `git http-backend` (git's own smart-HTTP CGI program)
//!   behind a small hyper CGI host of our own, optionally with Basic auth and
//!   TLS, like a private repository on a forge.
//!
//! [`git`] runs the git command line with a fixed identity and dates and no
//! user or system configuration, so repositories made by tests are the same
//! on every machine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;

use crate::server::{BackgroundServer, Body, bind_free, serve_http, tls_acceptor};
use crate::tls::CertFiles;

/// `/usr/bin/git` (Debian's git).
pub fn git_binary() -> PathBuf {
    crate::tools::require("/usr/bin/git")
}

/// Runs `git ARGS` in `dir` with a fixed author, committer and date and no
/// global or system configuration; panics with git's stderr on failure and
/// returns its stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(git_binary())
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "kiln")
        .env("GIT_AUTHOR_EMAIL", "kiln@example.invalid")
        .env("GIT_COMMITTER_NAME", "kiln")
        .env("GIT_COMMITTER_EMAIL", "kiln@example.invalid")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        // Submodules from local paths, as the fixtures add them.
        .env("GIT_ALLOW_PROTOCOL", "file:git:http:https")
        .output()
        .unwrap_or_else(|e| panic!("running git {args:?} in {}: {e}", dir.display()));
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `git daemon` serving every repository under a directory on a free port.
#[derive(Debug)]
pub struct GitDaemon {
    child: Child,
    port: u16,
}

impl GitDaemon {
    /// Starts `git daemon --export-all --base-path=ROOT` on 127.0.0.1 and waits
    /// until it accepts connections.
    pub fn start(root: &Path) -> GitDaemon {
        let port = crate::ports::free_port();
        let child = Command::new(git_binary())
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", root.display()),
                &root.display().to_string(),
            ])
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting git daemon (needs git: run .ci/install-deps)");
        let daemon = GitDaemon { child, port };
        wait_for_port(port, "git daemon");
        daemon
    }

    /// `git://127.0.0.1:PORT/NAME` for the repository `ROOT/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on our own child's PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on 127.0.0.1:{port} within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `git http-backend` behind a hyper CGI host: smart HTTP for every
/// repository under a directory, optionally behind Basic auth and TLS.
#[derive(Debug)]
pub struct GitHttp {
    _server: BackgroundServer,
    port: u16,
    tls: bool,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// How a [`GitHttp`] is set up.
#[derive(Debug, Clone, Default)]
pub struct GitHttpOptions {
    /// Basic credentials every request must carry (`401` otherwise).
    pub basic_auth: Option<(String, String)>,
    /// Serve HTTPS with this certificate.
    pub tls: Option<CertFiles>,
}

impl GitHttp {
    /// Serves the repositories under `root`.
    pub fn start(root: &Path, options: GitHttpOptions) -> GitHttp {
        let git = git_binary();
        let (listener, port) = bind_free();
        let acceptor = options.tls.as_ref().map(tls_acceptor);
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let root = root.to_path_buf();
        let expected = options.basic_auth.as_ref().map(|(u, p)| {
            use base64::Engine;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let handler_log = log.clone();
        let server = BackgroundServer::spawn("git-http", async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            serve_http(listener, acceptor, move |req| {
                let git = git.clone();
                let root = root.clone();
                let expected = expected.clone();
                let log = handler_log.clone();
                async move { cgi(req, &git, &root, expected.as_deref(), &log).await }
            })
            .await;
        });
        wait_for_port(port, "the git HTTP server");
        GitHttp {
            _server: server,
            port,
            tls: options.tls.is_some(),
            log,
        }
    }

    /// `http(s)://127.0.0.1:PORT/NAME`.
    pub fn url(&self, name: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/{name}", self.port)
    }

    /// `METHOD PATH?QUERY STATUS` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }
}

async fn cgi(
    req: hyper::Request<hyper::body::Incoming>,
    git: &Path,
    root: &Path,
    expected_auth: Option<&str>,
    log: &std::sync::Mutex<Vec<String>>,
) -> hyper::Response<Body> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let given_auth = header("authorization");
    let content_type = header("content-type");
    let content_encoding = header("content-encoding");
    let git_protocol = header("git-protocol");
    let record = |status: u16| {
        log.lock()
            .expect("log lock")
            .push(format!("{method} {path}?{query} {status}"));
    };
    if let Some(expected) = expected_auth
        && given_auth != expected
    {
        record(401);
        return hyper::Response::builder()
            .status(401)
            .header("WWW-Authenticate", "Basic realm=\"git\"")
            .body(Body::new(Bytes::from_static(b"authentication required\n")))
            .expect("401 response");
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return plain(400, "reading the request body failed"),
    };
    let mut command = tokio::process::Command::new(git);
    command
        .arg("http-backend")
        .env_clear()
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", &path)
        .env("QUERY_STRING", &query)
        .env("CONTENT_TYPE", &content_type)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_USER", "kiln")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if !content_encoding.is_empty() {
        command.env("HTTP_CONTENT_ENCODING", &content_encoding);
    }
    if !git_protocol.is_empty() {
        command.env("GIT_PROTOCOL", &git_protocol);
    }
    let Ok(mut child) = command.spawn() else {
        return plain(500, "starting git http-backend failed");
    };
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(&body).await;
    });
    let Ok(out) = child.wait_with_output().await else {
        return plain(500, "git http-backend failed");
    };
    let _ = writer.await;
    let response = parse_cgi(&out.stdout);
    record(response.status().as_u16());
    response
}

fn parse_cgi(output: &[u8]) -> hyper::Response<Body> {
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, p + 4))
        .or_else(|| {
            output
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|p| (p, p + 2))
        });
    let Some((head_end, body_start)) = split else {
        return plain(502, "git http-backend wrote no CGI header");
    };
    let head = String::from_utf8_lossy(&output[..head_end]);
    let mut builder = hyper::Response::builder().status(200);
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse::<u16>().ok())
                .unwrap_or(500);
            builder = builder.status(code);
        } else {
            builder = builder.header(name.trim(), value);
        }
    }
    builder
        .body(Body::new(Bytes::copy_from_slice(&output[body_start..])))
        .unwrap_or_else(|_| plain(502, "git http-backend wrote a bad CGI header"))
}

fn plain(status: u16, text: &'static str) -> hyper::Response<Body> {
    hyper::Response::builder()
        .status(status)
        .body(Body::new(Bytes::from_static(text.as_bytes())))
        .expect("plain response")
}
