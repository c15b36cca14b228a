//! The docker-credential-helpers protocol: run `docker-credential-NAME get`, write the
//! server URL on stdin, read `{"ServerURL","Username","Secret"}` from stdout.
//! A `Username` of `<token>` means the secret is an identity (refresh) token.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::credential::Credential;
use crate::error::AuthError;
use crate::registry_key::helper_server_url;
use crate::secret::Secret;

/// What helpers print when they have nothing for the server.
const NOT_FOUND: &str = "credentials not found";

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: Secret,
}

/// Finds `docker-credential-{helper}` in the directories of `path_var`.
pub fn find_helper(helper: &str, path_var: Option<&str>) -> Option<PathBuf> {
    let name = format!("docker-credential-{helper}");
    path_var?
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(&name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Asks `helper` for `registry`'s credentials. "credentials not found" is anonymous.
pub fn get(
    helper: &str,
    registry: &str,
    origin: &str,
    path_var: Option<&str>,
    timeout: Duration,
) -> Result<Credential, AuthError> {
    let program = find_helper(helper, path_var).ok_or_else(|| AuthError::HelperMissing {
        helper: helper.to_owned(),
        registry: registry.to_owned(),
        origin: origin.to_owned(),
    })?;
    tracing::debug!(helper, registry, program = %program.display(), "asking credential helper");
    let spawn_err = |source| AuthError::HelperSpawn {
        program: program.clone(),
        registry: registry.to_owned(),
        source,
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let server_url = helper_server_url(registry);
    // A helper that exits without reading its stdin gives EPIPE; its status tells more.
    let _ = stdin.write_all(server_url.as_bytes());
    drop(stdin);
    let stdout = read_in_background(child.stdout.take().expect("piped stdout"));
    let stderr = read_in_background(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(spawn_err)? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(AuthError::HelperTimeout {
                helper: helper.to_owned(),
                registry: registry.to_owned(),
                seconds: timeout.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        let out = String::from_utf8_lossy(&stdout);
        let err = String::from_utf8_lossy(&stderr);
        if out.contains(NOT_FOUND) || err.contains(NOT_FOUND) {
            return Ok(Credential::Anonymous);
        }
        let message = if err.trim().is_empty() {
            out.trim()
        } else {
            err.trim()
        };
        return Err(AuthError::HelperFailed {
            helper: helper.to_owned(),
            registry: registry.to_owned(),
            status: status.to_string(),
            message: message.chars().take(300).collect(),
        });
    }
    let answer: HelperAnswer =
        serde_json::from_slice(&stdout).map_err(|_| AuthError::HelperOutput {
            helper: helper.to_owned(),
            registry: registry.to_owned(),
        })?;
    Ok(match (answer.username.as_str(), answer.secret.is_empty()) {
        (_, true) => Credential::Anonymous,
        ("<token>", false) => Credential::IdentityToken(answer.secret),
        (_, false) => Credential::Basic {
            username: answer.username,
            password: answer.secret,
        },
    })
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}
