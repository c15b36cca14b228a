//! GitLab CI's predefined variables as the last credential source: explicit configs,
//! helpers and `DOCKER_AUTH_CONFIG` win; the source description never holds a secret.

use std::path::Path;

use base64::Engine;
use kiln_auth::{Credential, Keychain, KeychainOptions, MapEnvironment, Secret};

fn basic(user: &str, password: &str) -> Credential {
    Credential::Basic {
        username: user.to_owned(),
        password: Secret::new(password),
    }
}

fn load(env: &MapEnvironment) -> Keychain {
    Keychain::load(env, KeychainOptions::default()).expect("load keychain")
}

fn config_with_auth(dir: &Path, key: &str, user_password: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(user_password);
    let cfg = dir.join("cfg");
    std::fs::create_dir_all(&cfg).expect("mkdir");
    std::fs::write(
        cfg.join("config.json"),
        format!(r#"{{"auths":{{"{key}":{{"auth":"{auth}"}}}}}}"#),
    )
    .expect("write config");
    cfg.to_str().expect("utf8").to_owned()
}

fn gitlab_env() -> MapEnvironment {
    MapEnvironment::new()
        .with("CI_REGISTRY", "registry.example.com:5000")
        .with("CI_REGISTRY_USER", "ci-user")
        .with("CI_REGISTRY_PASSWORD", "ci-pass-SECRET")
        .with("CI_JOB_TOKEN", "job-token-SECRET")
}

#[test]
fn ci_registry_user_and_password_when_nothing_else_answers() {
    let keychain = load(&gitlab_env());
    let (credential, source) = keychain
        .resolve_with_source("registry.example.com:5000")
        .expect("resolve");
    assert_eq!(credential, basic("ci-user", "ci-pass-SECRET"));
    assert_eq!(source, "$CI_REGISTRY_USER/$CI_REGISTRY_PASSWORD");
    // Other hosts, or the same host on another port, stay anonymous.
    for other in [
        "registry.example.com",
        "registry.example.com:5001",
        "docker.io",
    ] {
        assert_eq!(
            keychain.resolve(other).expect("other"),
            Credential::Anonymous,
            "{other}"
        );
    }
    // A key-shaped spelling of the same registry matches after normalisation.
    assert_eq!(
        keychain
            .resolve("https://Registry.Example.com:5000/v2/")
            .expect("normalised"),
        basic("ci-user", "ci-pass-SECRET")
    );
}

#[test]
fn job_token_is_the_fallback_without_registry_password() {
    let env = MapEnvironment::new()
        .with("CI_REGISTRY", "registry.example.com")
        .with("CI_REGISTRY_USER", "ci-user")
        .with("CI_JOB_TOKEN", "job-token-SECRET");
    let (credential, source) = load(&env)
        .resolve_with_source("registry.example.com")
        .expect("resolve");
    assert_eq!(credential, basic("gitlab-ci-token", "job-token-SECRET"));
    assert_eq!(source, "$CI_JOB_TOKEN");
    // Without CI_REGISTRY nothing is guessed.
    let env = MapEnvironment::new().with("CI_JOB_TOKEN", "job-token-SECRET");
    assert_eq!(
        load(&env).resolve("registry.example.com").expect("none"),
        Credential::Anonymous
    );
}

#[test]
fn dependency_proxy_host_with_port_443_matches_its_pulls() {
    let env = gitlab_env()
        .with("CI_DEPENDENCY_PROXY_SERVER", "gitlab.example.com:443")
        .with("CI_DEPENDENCY_PROXY_USER", "proxy-user")
        .with("CI_DEPENDENCY_PROXY_PASSWORD", "proxy-SECRET");
    let keychain = load(&env);
    for spelled in ["gitlab.example.com:443", "gitlab.example.com"] {
        let (credential, source) = keychain.resolve_with_source(spelled).expect("proxy");
        assert_eq!(credential, basic("proxy-user", "proxy-SECRET"), "{spelled}");
        assert_eq!(
            source,
            "$CI_DEPENDENCY_PROXY_USER/$CI_DEPENDENCY_PROXY_PASSWORD"
        );
    }
    assert_eq!(
        keychain
            .resolve("gitlab.example.com:8443")
            .expect("other port"),
        Credential::Anonymous
    );
    assert_eq!(
        keychain
            .resolve("registry.example.com:5000")
            .expect("registry"),
        basic("ci-user", "ci-pass-SECRET")
    );
}

#[test]
fn config_file_wins_over_ci_variables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_with_auth(dir.path(), "registry.example.com:5000", "from-file:file-pw");
    let keychain = load(&gitlab_env().with("DOCKER_CONFIG", cfg.clone()));
    let (credential, source) = keychain
        .resolve_with_source("registry.example.com:5000")
        .expect("resolve");
    assert_eq!(credential, basic("from-file", "file-pw"));
    assert_eq!(source, format!("{cfg}/config.json"));
}

#[test]
fn docker_auth_config_wins_over_ci_variables() {
    let auth = base64::engine::general_purpose::STANDARD.encode("from-var:var-pw");
    let json = format!(r#"{{"auths":{{"registry.example.com:5000":{{"auth":"{auth}"}}}}}}"#);
    let keychain = load(&gitlab_env().with("DOCKER_AUTH_CONFIG", json));
    let (credential, source) = keychain
        .resolve_with_source("registry.example.com:5000")
        .expect("resolve");
    assert_eq!(credential, basic("from-var", "var-pw"));
    assert_eq!(source, "$DOCKER_AUTH_CONFIG");
}

#[test]
fn helper_with_a_credential_wins_and_one_without_falls_back_to_ci() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let helper = bin.join("docker-credential-fake");
    std::fs::write(
        &helper,
        r#"#!/bin/sh
read -r server
case "$server" in
  registry.example.com:5000) printf '{"Username":"helperuser","Secret":"helper-pw"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#,
    )
    .expect("write helper");
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let cfg = dir.path().join("cfg");
    std::fs::create_dir_all(&cfg).expect("mkdir");
    std::fs::write(cfg.join("config.json"), r#"{"credsStore":"fake"}"#).expect("write");
    let env = gitlab_env()
        .with("DOCKER_CONFIG", cfg.to_str().expect("utf8"))
        .with("PATH", bin.to_str().expect("utf8"))
        .with("CI_DEPENDENCY_PROXY_SERVER", "gitlab.example.com:443")
        .with("CI_DEPENDENCY_PROXY_USER", "proxy-user")
        .with("CI_DEPENDENCY_PROXY_PASSWORD", "proxy-SECRET");
    let keychain = load(&env);
    let (credential, source) = keychain
        .resolve_with_source("registry.example.com:5000")
        .expect("helper");
    assert_eq!(credential, basic("helperuser", "helper-pw"));
    assert!(source.starts_with("docker-credential-fake"), "{source}");
    assert_eq!(
        keychain.resolve("gitlab.example.com").expect("proxy"),
        basic("proxy-user", "proxy-SECRET")
    );
}

#[test]
fn no_secret_in_debug_or_source() {
    let env = gitlab_env()
        .with("CI_DEPENDENCY_PROXY_SERVER", "gitlab.example.com")
        .with("CI_DEPENDENCY_PROXY_USER", "proxy-user")
        .with("CI_DEPENDENCY_PROXY_PASSWORD", "proxy-SECRET");
    let keychain = load(&env);
    let mut printed = format!("{keychain:?}");
    for registry in ["registry.example.com:5000", "gitlab.example.com"] {
        let (credential, source) = keychain.resolve_with_source(registry).expect("resolve");
        assert!(!credential.is_anonymous());
        printed.push_str(&format!(
            "{credential:?} {source} {}",
            credential.describe()
        ));
    }
    assert!(printed.contains("ci-user"), "{printed}");
    assert!(!printed.contains("SECRET"), "a secret leaked: {printed}");
}
