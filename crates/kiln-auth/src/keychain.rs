//! Where credentials come from, in order, and how one registry's are resolved.

use std::path::PathBuf;
use std::time::Duration;

use crate::ci_env::{self, CiCredential};
use crate::credential::Credential;
use crate::docker_config::{ConfigAnswer, DockerConfig};
use crate::env::Environment;
use crate::error::AuthError;
use crate::helper;

/// Options for [`Keychain::load`].
#[derive(Debug, Clone)]
pub struct KeychainOptions {
    /// How long a credential helper may take (default 30 s).
    pub helper_timeout: Duration,
}

impl Default for KeychainOptions {
    fn default() -> Self {
        KeychainOptions {
            helper_timeout: Duration::from_secs(30),
        }
    }
}

/// The credential sources found at load time, consulted in order.
///
/// Sources, each used when present: `$DOCKER_CONFIG/config.json` (or
/// `~/.docker/config.json` when `DOCKER_CONFIG` is unset: Docker's rule),
/// `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`, then
/// `$DOCKER_AUTH_CONFIG` (a config's JSON, GitLab's variable), and last GitLab CI's
/// predefined variables (`CI_REGISTRY*`, `CI_JOB_TOKEN`, `CI_DEPENDENCY_PROXY_*`, see
/// [`crate::ci_env`]). For a registry the first source with an answer wins; within a
/// config, `credHelpers` beats `auths` beats `credsStore`.
#[derive(Debug, Clone)]
pub struct Keychain {
    configs: Vec<DockerConfig>,
    ci: Vec<CiCredential>,
    path_var: Option<String>,
    options: KeychainOptions,
}

impl Keychain {
    /// Reads every source that exists. Missing files are skipped; unreadable or invalid
    /// ones are errors naming the file.
    pub fn load(env: &dyn Environment, options: KeychainOptions) -> Result<Keychain, AuthError> {
        let mut configs = Vec::new();
        for path in candidate_files(env) {
            match fs_err::read_to_string(&path) {
                Ok(text) => {
                    tracing::debug!(path = %path.display(), "reading registry credentials");
                    configs.push(DockerConfig::parse(&path.display().to_string(), &text)?);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(AuthError::ReadConfig { path, source }),
            }
        }
        if let Some(json) = env.non_empty("DOCKER_AUTH_CONFIG") {
            configs.push(DockerConfig::parse("$DOCKER_AUTH_CONFIG", &json)?);
        }
        Ok(Keychain {
            configs,
            ci: ci_env::from_environment(env),
            path_var: env.var("PATH"),
            options,
        })
    }

    /// A keychain with no sources: every registry is anonymous.
    pub fn anonymous() -> Keychain {
        Keychain {
            configs: Vec::new(),
            ci: Vec::new(),
            path_var: None,
            options: KeychainOptions::default(),
        }
    }

    /// The origins (paths, `$DOCKER_AUTH_CONFIG`) that were loaded, in order.
    pub fn origins(&self) -> Vec<&str> {
        self.configs.iter().map(|c| c.origin.as_str()).collect()
    }

    /// The credentials for `registry` (`host[:port]`, `docker.io` for Docker Hub). Logs
    /// one line naming the source the credential came from, never the secret.
    pub fn resolve(&self, registry: &str) -> Result<Credential, AuthError> {
        let (credential, source) = self.resolve_with_source(registry)?;
        tracing::info!(registry, source = %source, kind = %credential.describe(), "registry credentials");
        Ok(credential)
    }

    /// Like [`Keychain::resolve`], also returning where the credential came from (a
    /// config's origin, a helper, CI variable names, or "none"), without logging. The CI
    /// variables answer only when no config does and no helper has a credential.
    pub fn resolve_with_source(&self, registry: &str) -> Result<(Credential, String), AuthError> {
        if let Some(found) = self.config_answer(registry)?
            && !found.0.is_anonymous()
        {
            return Ok(found);
        }
        if let Some(ci) = ci_env::lookup(&self.ci, registry) {
            return Ok((ci.credential.clone(), ci.source.to_owned()));
        }
        Ok((Credential::Anonymous, "none (anonymous)".to_owned()))
    }

    /// The first config's answer for `registry`, asking its helper when it names one.
    fn config_answer(&self, registry: &str) -> Result<Option<(Credential, String)>, AuthError> {
        for config in &self.configs {
            match config.lookup(registry)? {
                Some(ConfigAnswer::Credential(credential)) => {
                    return Ok(Some((credential, config.origin.clone())));
                }
                Some(ConfigAnswer::Helper(name)) => {
                    let credential = helper::get(
                        &name,
                        registry,
                        &config.origin,
                        self.path_var.as_deref(),
                        self.options.helper_timeout,
                    )?;
                    let source = format!("docker-credential-{name} (from {})", config.origin);
                    return Ok(Some((credential, source)));
                }
                None => {}
            }
        }
        Ok(None)
    }
}

fn candidate_files(env: &dyn Environment) -> Vec<PathBuf> {
    let mut files = Vec::new();
    match env.non_empty("DOCKER_CONFIG") {
        Some(dir) => files.push(PathBuf::from(dir).join("config.json")),
        None => {
            if let Some(home) = env.home_dir() {
                files.push(home.join(".docker").join("config.json"));
            }
        }
    }
    if let Some(file) = env.non_empty("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(file));
    }
    if let Some(dir) = env.non_empty("XDG_RUNTIME_DIR") {
        files.push(PathBuf::from(dir).join("containers").join("auth.json"));
    }
    files
}
