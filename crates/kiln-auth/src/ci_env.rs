//! GitLab CI's predefined variables as the keychain's last credential source.
//!
//! A GitLab job gets `CI_REGISTRY` with `CI_REGISTRY_USER`/`CI_REGISTRY_PASSWORD` (or
//! `CI_JOB_TOKEN`, presented as user `gitlab-ci-token`), and
//! `CI_DEPENDENCY_PROXY_SERVER` with `CI_DEPENDENCY_PROXY_USER`/`_PASSWORD`. These
//! are used only when no config file, helper or `DOCKER_AUTH_CONFIG` answers for the
//! registry: an explicit config always wins.
//!
//! Hosts match after [`normalize`] (scheme and path stripped, lower-cased, Docker Hub
//! aliases folded), with the port kept; `:443` is treated as the HTTPS default so
//! `gitlab.example.com:443` (how GitLab spells the dependency proxy) and
//! `gitlab.example.com` name the same registry.

use crate::credential::Credential;
use crate::env::Environment;
use crate::registry_key::normalize;
use crate::secret::Secret;

/// The user name GitLab accepts with `CI_JOB_TOKEN`.
pub const JOB_TOKEN_USER: &str = "gitlab-ci-token";

/// One registry's credential from the CI environment, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiCredential {
    /// The normalised host (`host[:port]`).
    pub host: String,
    /// The credential (its secret never prints).
    pub credential: Credential,
    /// The variables it came from, for the log line (names only).
    pub source: &'static str,
}

/// Reads the GitLab CI variables; registries without a complete user/secret pair are
/// left out. `CI_REGISTRY` comes before the dependency proxy when both name one host.
pub fn from_environment(env: &dyn Environment) -> Vec<CiCredential> {
    let mut found = Vec::new();
    if let Some(registry) = env.non_empty("CI_REGISTRY") {
        let user_password = env
            .non_empty("CI_REGISTRY_USER")
            .zip(env.non_empty("CI_REGISTRY_PASSWORD"))
            .map(|(u, p)| (u, p, "$CI_REGISTRY_USER/$CI_REGISTRY_PASSWORD"));
        let job_token = || {
            env.non_empty("CI_JOB_TOKEN")
                .map(|t| (JOB_TOKEN_USER.to_owned(), t, "$CI_JOB_TOKEN"))
        };
        if let Some((username, password, source)) = user_password.or_else(job_token) {
            found.push(entry(&registry, username, password, source));
        }
    }
    if let Some(server) = env.non_empty("CI_DEPENDENCY_PROXY_SERVER")
        && let Some((username, password)) = env
            .non_empty("CI_DEPENDENCY_PROXY_USER")
            .zip(env.non_empty("CI_DEPENDENCY_PROXY_PASSWORD"))
    {
        found.push(entry(
            &server,
            username,
            password,
            "$CI_DEPENDENCY_PROXY_USER/$CI_DEPENDENCY_PROXY_PASSWORD",
        ));
    }
    found
}

/// The CI credential for `registry`, if one was found.
pub fn lookup<'a>(entries: &'a [CiCredential], registry: &str) -> Option<&'a CiCredential> {
    let host = comparable(registry);
    entries.iter().find(|e| comparable(&e.host) == host)
}

fn entry(host: &str, username: String, password: String, source: &'static str) -> CiCredential {
    CiCredential {
        host: normalize(host),
        credential: Credential::Basic {
            username,
            password: Secret::new(password),
        },
        source,
    }
}

fn comparable(registry: &str) -> String {
    let host = normalize(registry);
    match host.strip_suffix(":443") {
        Some(bare) => bare.to_owned(),
        None => host,
    }
}
