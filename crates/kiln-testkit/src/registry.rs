//! A real registry (Debian's `docker-registry`, CNCF distribution 2.8) on 127.0.0.1.
//!
//! [`Registry::start_plain`] is the common case; [`Registry::builder`] adds TLS,
//! htpasswd or token auth. The child is killed by PID and its temp dirs removed on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;
use crate::tools;

const READY_TIMEOUT: Duration = Duration::from_secs(15);
const PORT_ATTEMPTS: usize = 5;

/// How clients must authenticate to the registry.
#[derive(Debug, Clone, Default)]
pub(crate) enum AuthMode {
    /// Anyone may pull and push.
    #[default]
    None,
    /// `auth.htpasswd` with the given bcrypt file.
    Htpasswd {
        file: PathBuf,
        username: String,
        password: String,
    },
    /// `auth.token`: clients fetch a JWT from `realm`.
    Token {
        realm: String,
        service: String,
        issuer: String,
        rootcertbundle: PathBuf,
    },
}

/// TLS files for `http.tls`.
#[derive(Debug, Clone)]
pub(crate) struct TlsFiles {
    pub(crate) certificate: PathBuf,
    pub(crate) key: PathBuf,
    /// When set, the registry requires client certificates signed by these CAs.
    pub(crate) client_cas: Option<PathBuf>,
}

/// Builds the registry's configuration, then starts it.
#[derive(Debug, Default)]
pub struct RegistryBuilder {
    pub(crate) tls: Option<crate::tls::RegistryTls>,
    pub(crate) auth: AuthMode,
    pub(crate) work: Option<tempfile::TempDir>,
}

/// A running `docker-registry` child process.
///
/// Dropping it kills the child (by PID) and removes its storage and config.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    port: u16,
    scheme: &'static str,
    dir: tempfile::TempDir,
    log_path: PathBuf,
    tls: Option<crate::tls::RegistryTls>,
    auth: AuthMode,
}

impl Registry {
    /// Starts a plain-HTTP registry without authentication.
    ///
    /// Panics (with the registry log) if it cannot start; panics with
    /// "needs docker-registry" if the binary is missing.
    pub fn start_plain() -> Registry {
        Registry::builder().start()
    }

    /// Starts an HTTPS registry with a fresh CA (see [`Registry::tls`] for its files).
    pub fn start_tls() -> Registry {
        Registry::builder()
            .tls(crate::tls::RegistryTls::generate())
            .start()
    }

    /// Starts a plain-HTTP registry requiring `username`/`password` (htpasswd, bcrypt).
    pub fn start_htpasswd(username: &str, password: &str) -> Registry {
        Registry::builder().htpasswd(username, password).start()
    }

    /// A builder for TLS / htpasswd / token combinations.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// `127.0.0.1:PORT`, the host part of image references (`127.0.0.1:PORT/repo:tag`).
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port the registry listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    /// True when the registry serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The registry's stdout+stderr log, kept for debugging failed tests.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The log's current contents (empty if unreadable).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The storage root (`storage.filesystem.rootdirectory`).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The registry's TLS material (CA, cert dir for skopeo/buildah), if TLS is on.
    pub fn tls(&self) -> Option<&crate::tls::RegistryTls> {
        self.tls.as_ref()
    }

    /// The htpasswd user and password, if the registry uses htpasswd auth.
    pub fn htpasswd_credentials(&self) -> Option<(&str, &str)> {
        match &self.auth {
            AuthMode::Htpasswd {
                username, password, ..
            } => Some((username, password)),
            _ => None,
        }
    }

    /// The registry child's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Child::kill signals our own child by its PID; then reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RegistryBuilder {
    /// Writes the config, starts the child on a free port (retrying on a port
    /// collision) and waits until `GET /v2/` answers.
    pub fn start(mut self) -> Registry {
        let binary = tools::docker_registry();
        let dir = match self.work.take() {
            Some(d) => d,
            None => tempfile::Builder::new()
                .prefix("kiln-registry-")
                .tempdir()
                .expect("creating registry temp dir"),
        };
        let storage = dir.path().join("storage");
        fs_err::create_dir_all(&storage).expect("creating registry storage dir");
        let log_path = dir.path().join("registry.log");
        let config_path = dir.path().join("config.yml");
        let tls_files = self.tls.as_ref().map(|t| t.files());
        let mut last_log = String::new();
        for _attempt in 0..PORT_ATTEMPTS {
            let port = free_port();
            let config = render_config(port, &storage, tls_files.as_ref(), &self.auth);
            fs_err::write(&config_path, config).expect("writing registry config");
            let log = fs_err::File::create(&log_path).expect("creating registry log");
            let log_err = log.file().try_clone().expect("cloning registry log handle");
            let mut child = Command::new(&binary)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.into_parts().0))
                .stderr(Stdio::from(log_err))
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "spawning {} serve {}: {e}",
                        binary.display(),
                        config_path.display()
                    )
                });
            match wait_ready(&mut child, port, tls_files.is_some(), &log_path) {
                Ok(()) => {
                    return Registry {
                        child,
                        port,
                        scheme: if tls_files.is_some() { "https" } else { "http" },
                        dir,
                        log_path,
                        tls: self.tls,
                        auth: self.auth,
                    };
                }
                Err(reason) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    if !last_log.contains("address already in use") {
                        panic!(
                            "docker-registry did not start on port {port}: {reason}\nregistry log:\n{last_log}"
                        );
                    }
                }
            }
        }
        panic!(
            "docker-registry: every free port collided after {PORT_ATTEMPTS} attempts\nlast log:\n{last_log}"
        );
    }
}

/// Polls until the registry has logged that it listens on our port (so the port is
/// its, not another process's) and answers (plain: any HTTP response to `GET /v2/`;
/// TLS: the port accepts connections), or the child exits, or the timeout passes.
fn wait_ready(child: &mut Child, port: u16, tls: bool, log_path: &Path) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let listening = format!("listening on 127.0.0.1:{port}");
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("waiting on child: {e}"))?
        {
            return Err(format!("exited early with {status}"));
        }
        let logged = std::fs::read_to_string(log_path).is_ok_and(|log| log.contains(&listening));
        if logged && probe(port, tls) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("not ready after {READY_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn probe(port: u16, tls: bool) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    if tls {
        return true;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 ")
}

/// The registry's YAML configuration (JSON-compatible quoting of every string).
fn render_config(port: u16, storage: &Path, tls: Option<&TlsFiles>, auth: &AuthMode) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("string to JSON");
    let p = |p: &Path| q(&p.to_string_lossy());
    let mut out = String::new();
    out.push_str("version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n");
    out.push_str(&format!(
        "storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n",
        p(storage)
    ));
    out.push_str(&format!(
        "http:\n  addr: {}\n  secret: {}\n  headers:\n    X-Content-Type-Options: [nosniff]\n",
        q(&format!("127.0.0.1:{port}")),
        q("kiln-testkit-http-secret")
    ));
    if let Some(tls) = tls {
        out.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            p(&tls.certificate),
            p(&tls.key)
        ));
        if let Some(cas) = &tls.client_cas {
            out.push_str(&format!("    clientcas:\n      - {}\n", p(cas)));
        }
    }
    match auth {
        AuthMode::None => {}
        AuthMode::Htpasswd { file, .. } => {
            out.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: {}\n    path: {}\n",
                q("kiln-testkit"),
                p(file)
            ));
        }
        AuthMode::Token {
            realm,
            service,
            issuer,
            rootcertbundle,
        } => {
            out.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                q(realm),
                q(service),
                q(issuer),
                p(rootcertbundle)
            ));
        }
    }
    out
}

impl RegistryBuilder {
    /// Serve HTTPS with this TLS material (see [`crate::RegistryTls::generate`]).
    pub fn tls(mut self, tls: crate::tls::RegistryTls) -> RegistryBuilder {
        self.tls = Some(tls);
        self
    }

    /// Require HTTP Basic auth checked against an htpasswd file with one bcrypt entry.
    pub fn htpasswd(mut self, username: &str, password: &str) -> RegistryBuilder {
        let dir = self.work_dir();
        let file = dir.join("htpasswd");
        fs_err::write(&file, crate::htpasswd::line(username, password))
            .expect("writing htpasswd file");
        self.auth = AuthMode::Htpasswd {
            file,
            username: username.to_owned(),
            password: password.to_owned(),
        };
        self
    }

    /// Require bearer tokens from `issuer` (`auth.token` with its realm, service,
    /// issuer name and root certificate bundle).
    pub fn token(mut self, issuer: &crate::token::TokenIssuer) -> RegistryBuilder {
        self.auth = AuthMode::Token {
            realm: issuer.realm().to_owned(),
            service: issuer.service().to_owned(),
            issuer: issuer.issuer().to_owned(),
            rootcertbundle: issuer.root_cert_bundle().to_path_buf(),
        };
        self
    }

    fn work_dir(&mut self) -> PathBuf {
        self.work
            .get_or_insert_with(|| {
                tempfile::Builder::new()
                    .prefix("kiln-registry-")
                    .tempdir()
                    .expect("creating registry temp dir")
            })
            .path()
            .to_path_buf()
    }
}
