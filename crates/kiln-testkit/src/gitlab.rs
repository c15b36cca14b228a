//! The shape of GitLab's container registry in one call: HTTPS registry and HTTPS
//! token realm sharing one CA, a `gitlab-ci-token` user with a job token allowed
//! `pull,push`, as a CI job sees it (`CI_REGISTRY`, `CI_REGISTRY_USER`,
//! `CI_REGISTRY_PASSWORD`).

use std::sync::Arc;

use base64::Engine;

use crate::registry::Registry;
use crate::tls::{RegistryTls, TestCa};
use crate::token::TokenIssuer;

/// GitLab's CI job user name.
pub const CI_REGISTRY_USER: &str = "gitlab-ci-token";

/// A TLS + token registry set up like GitLab's.
#[derive(Debug)]
pub struct GitLabLike {
    /// The CA that signed the registry's and the realm's certificates.
    pub ca: Arc<TestCa>,
    /// The token issuer (GitLab's `/jwt/auth`).
    pub issuer: TokenIssuer,
    /// The registry.
    pub registry: Registry,
    /// The job token (`CI_REGISTRY_PASSWORD`).
    pub job_token: String,
}

impl GitLabLike {
    /// Starts the issuer and the registry.
    pub fn start() -> GitLabLike {
        let ca = Arc::new(TestCa::new("kiln testkit GitLab-like CA"));
        let job_token = format!("kiln-job-token-{}", std::process::id());
        let issuer = TokenIssuer::builder()
            .user(CI_REGISTRY_USER, &job_token, "pull,push")
            .tls(RegistryTls::with_ca(ca.clone()))
            .start();
        let registry = Registry::builder()
            .tls(RegistryTls::with_ca(ca.clone()))
            .token(&issuer)
            .start();
        GitLabLike {
            ca,
            issuer,
            registry,
            job_token,
        }
    }

    /// `CI_REGISTRY`: `127.0.0.1:PORT`.
    pub fn ci_registry(&self) -> String {
        self.registry.host_port()
    }

    /// (`CI_REGISTRY_USER`, `CI_REGISTRY_PASSWORD`).
    pub fn credentials(&self) -> (&str, &str) {
        (CI_REGISTRY_USER, &self.job_token)
    }

    /// The config.json a kaniko job writes to `/kaniko/.docker/config.json`:
    /// `{"auths":{"CI_REGISTRY":{"auth":"base64(user:token)"}}}`.
    pub fn docker_config_json(&self) -> String {
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{CI_REGISTRY_USER}:{}", self.job_token));
        serde_json::json!({"auths": {self.ci_registry(): {"auth": auth}}}).to_string()
    }
}
