//! Credential lookup from real files and real (shell-script) credential helpers, with an
//! injected environment.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use kiln_auth::{AuthError, Credential, Keychain, KeychainOptions, MapEnvironment, Secret};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn basic(user: &str, password: &str) -> Credential {
    Credential::Basic {
        username: user.to_owned(),
        password: Secret::new(password),
    }
}

fn load(env: &MapEnvironment) -> Keychain {
    Keychain::load(env, KeychainOptions::default()).expect("load keychain")
}

#[test]
fn auths_entries_of_every_kind_and_key_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        r#"{{"auths": {{
            "https://index.docker.io/v1/": {{"auth": "{hub}"}},
            "http://127.0.0.1:5000/v2/": {{"username": "u5000", "password": "p5000"}},
            "ghcr.io": {{"identitytoken": "refresh-abc"}},
            "quay.io": {{"registrytoken": "bearer-xyz"}},
            "empty.example": {{}}
        }}}}"#,
        hub = b64("hubuser:hub:pass")
    );
    write(&dir.path().join("docker/config.json"), &config);
    let env = MapEnvironment::new().with(
        "DOCKER_CONFIG",
        dir.path().join("docker").to_str().expect("utf8"),
    );
    let keychain = load(&env);
    assert_eq!(
        keychain.resolve("docker.io").expect("hub"),
        basic("hubuser", "hub:pass")
    );
    assert_eq!(
        keychain.resolve("index.docker.io").expect("hub alias"),
        basic("hubuser", "hub:pass")
    );
    assert_eq!(
        keychain.resolve("127.0.0.1:5000").expect("port key"),
        basic("u5000", "p5000")
    );
    assert_eq!(
        keychain.resolve("ghcr.io").expect("ghcr"),
        Credential::IdentityToken(Secret::new("refresh-abc"))
    );
    assert_eq!(
        keychain.resolve("quay.io").expect("quay"),
        Credential::RegistryToken(Secret::new("bearer-xyz"))
    );
    assert_eq!(
        keychain.resolve("empty.example").expect("empty"),
        Credential::Anonymous
    );
    assert_eq!(
        keychain.resolve("127.0.0.1:5001").expect("other port"),
        Credential::Anonymous
    );
}

#[test]
fn docker_config_replaces_home_and_podman_files_follow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    write(
        &home.join(".docker/config.json"),
        &format!(
            r#"{{"auths":{{"a.example":{{"auth":"{}"}}}}}}"#,
            b64("home:1")
        ),
    );
    write(
        &dir.path().join("kaniko/.docker/config.json"),
        &format!(
            r#"{{"auths":{{"b.example":{{"auth":"{}"}}}}}}"#,
            b64("kaniko:2")
        ),
    );
    write(
        &dir.path().join("run/containers/auth.json"),
        &format!(
            r#"{{"auths":{{"c.example":{{"auth":"{}"}},"b.example":{{"auth":"{}"}}}}}}"#,
            b64("xdg:3"),
            b64("later:9")
        ),
    );
    write(
        &dir.path().join("podman.json"),
        &format!(
            r#"{{"auths":{{"d.example":{{"auth":"{}"}}}}}}"#,
            b64("raf:4")
        ),
    );
    let home_str = home.to_str().expect("utf8").to_owned();

    // Without DOCKER_CONFIG, ~/.docker/config.json is read.
    let keychain = load(&MapEnvironment::new().with("HOME", home_str.clone()));
    assert_eq!(
        keychain.resolve("a.example").expect("a"),
        basic("home", "1")
    );

    // DOCKER_CONFIG (kaniko sets /kaniko/.docker) replaces ~/.docker.
    let env = MapEnvironment::new()
        .with("HOME", home_str)
        .with(
            "DOCKER_CONFIG",
            dir.path().join("kaniko/.docker").to_str().expect("utf8"),
        )
        .with(
            "REGISTRY_AUTH_FILE",
            dir.path().join("podman.json").to_str().expect("utf8"),
        )
        .with(
            "XDG_RUNTIME_DIR",
            dir.path().join("run").to_str().expect("utf8"),
        );
    let keychain = load(&env);
    assert_eq!(
        keychain.resolve("a.example").expect("a"),
        Credential::Anonymous
    );
    assert_eq!(
        keychain.resolve("b.example").expect("b"),
        basic("kaniko", "2"),
        "first source wins"
    );
    assert_eq!(keychain.resolve("c.example").expect("c"), basic("xdg", "3"));
    assert_eq!(keychain.resolve("d.example").expect("d"), basic("raf", "4"));
    assert_eq!(keychain.origins().len(), 3);
}

#[test]
fn gitlab_docker_auth_config_variable() {
    let json = format!(
        r#"{{"auths":{{"registry.gitlab.example:5050":{{"auth":"{}"}}}}}}"#,
        b64("gitlab-ci-token:job")
    );
    let keychain = load(&MapEnvironment::new().with("DOCKER_AUTH_CONFIG", json));
    assert_eq!(
        keychain
            .resolve("registry.gitlab.example:5050")
            .expect("gitlab"),
        basic("gitlab-ci-token", "job")
    );
    assert_eq!(keychain.origins(), ["$DOCKER_AUTH_CONFIG"]);
}

/// Writes an executable `docker-credential-NAME` script into `dir`.
fn helper_script(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("docker-credential-{name}"));
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write helper");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn credential_helpers_answer_per_registry_and_store_is_the_fallback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    // Answers only for the server URL it is given on stdin; `get` is the only verb.
    helper_script(
        &bin,
        "fake",
        r#"[ "$1" = get ] || exit 9
read -r server
case "$server" in
  helper.example) printf '{"ServerURL":"%s","Username":"helperuser","Secret":"helper-secret"}' "$server" ;;
  token.example) printf '{"ServerURL":"%s","Username":"<token>","Secret":"refresh-tok"}' "$server" ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac"#,
    );
    helper_script(
        &bin,
        "store",
        r#"read -r server
[ "$server" = "https://index.docker.io/v1/" ] && printf '{"Username":"hub","Secret":"from-store"}' && exit 0
echo "credentials not found in native keychain"; exit 1"#,
    );
    write(
        &dir.path().join("cfg/config.json"),
        &format!(
            r#"{{"credHelpers":{{"helper.example":"fake","token.example":"fake","unknown.example":"fake"}},
               "credsStore":"store",
               "auths":{{"plain.example":{{"auth":"{}"}}}}}}"#,
            b64("plain:pw")
        ),
    );
    let env = MapEnvironment::new()
        .with(
            "DOCKER_CONFIG",
            dir.path().join("cfg").to_str().expect("utf8"),
        )
        .with("PATH", format!("/nonexistent:{}", bin.display()));
    let keychain = load(&env);
    assert_eq!(
        keychain.resolve("helper.example").expect("helper"),
        basic("helperuser", "helper-secret")
    );
    assert_eq!(
        keychain.resolve("token.example").expect("token"),
        Credential::IdentityToken(Secret::new("refresh-tok"))
    );
    assert_eq!(
        keychain.resolve("unknown.example").expect("not found"),
        Credential::Anonymous
    );
    assert_eq!(
        keychain
            .resolve("plain.example")
            .expect("auths before store"),
        basic("plain", "pw")
    );
    assert_eq!(
        keychain.resolve("docker.io").expect("store"),
        basic("hub", "from-store")
    );
}

#[test]
fn helper_missing_failing_or_hanging_gives_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    helper_script(&bin, "broken", "echo 'keychain locked' >&2; exit 3");
    helper_script(&bin, "slow", "sleep 5");
    helper_script(&bin, "garbage", "echo not-json");
    write(
        &dir.path().join("cfg/config.json"),
        r#"{"credHelpers":{"m.example":"absent","b.example":"broken","s.example":"slow","g.example":"garbage"}}"#,
    );
    let config_path = dir.path().join("cfg/config.json");
    let env = MapEnvironment::new()
        .with(
            "DOCKER_CONFIG",
            dir.path().join("cfg").to_str().expect("utf8"),
        )
        .with("PATH", bin.to_str().expect("utf8"));
    let keychain = Keychain::load(
        &env,
        KeychainOptions {
            helper_timeout: Duration::from_millis(300),
        },
    )
    .expect("load");

    let err = keychain.resolve("m.example").expect_err("missing helper");
    assert!(matches!(err, AuthError::HelperMissing { .. }));
    let text = err.to_string();
    assert!(
        text.contains("docker-credential-absent") && text.contains("m.example"),
        "{text}"
    );
    assert!(text.contains(&config_path.display().to_string()), "{text}");

    let text = keychain
        .resolve("b.example")
        .expect_err("failing helper")
        .to_string();
    assert!(
        text.contains("docker-credential-broken") && text.contains("keychain locked"),
        "{text}"
    );

    let started = std::time::Instant::now();
    let err = keychain.resolve("s.example").expect_err("hanging helper");
    assert!(matches!(err, AuthError::HelperTimeout { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the helper was killed, not awaited"
    );

    let err = keychain.resolve("g.example").expect_err("garbage");
    assert!(matches!(err, AuthError::HelperOutput { .. }), "{err}");
}

#[test]
fn secrets_never_appear_in_debug_or_errors() {
    let credential = basic("alice", "hunter2-password");
    let debug = format!(
        "{credential:?} {:?}",
        Credential::IdentityToken(Secret::new("tok-hunter2"))
    );
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("alice"));
    assert_eq!(Secret::new("hunter2").to_string(), "<redacted>");

    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        r#"{{"auths":{{"x.example":{{"auth":"{}"}}}}}}"#,
        b64("bob:hunter2-in-file")
    );
    write(&dir.path().join("ok/config.json"), &config);
    let keychain = load(&MapEnvironment::new().with(
        "DOCKER_CONFIG",
        dir.path().join("ok").to_str().expect("utf8"),
    ));
    let debug = format!(
        "{keychain:?} {:?}",
        keychain.resolve("x.example").expect("x")
    );
    assert!(
        !debug.contains("hunter2") && !debug.contains(&b64("bob:hunter2-in-file")),
        "{debug}"
    );

    // A secret in a wrongly typed field: serde would quote it, our error does not.
    write(
        &dir.path().join("bad/config.json"),
        "{\"auths\":{\"x\":{\"password\":[\"hunter2-typed\"]}}}",
    );
    let err = Keychain::load(
        &MapEnvironment::new().with(
            "DOCKER_CONFIG",
            dir.path().join("bad").to_str().expect("utf8"),
        ),
        KeychainOptions::default(),
    )
    .expect_err("bad shape");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        text.contains("bad/config.json") && text.contains("line 1"),
        "{text}"
    );

    // An `auth` that is not base64 of user:password.
    let not_b64 = "hunter2!!notbase64";
    let json = format!(r#"{{"auths":{{"y.example":{{"auth":"{not_b64}"}}}}}}"#);
    let keychain = load(&MapEnvironment::new().with("DOCKER_AUTH_CONFIG", json));
    let err = keychain.resolve("y.example").expect_err("invalid auth");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        text.contains("y.example") && text.contains("DOCKER_AUTH_CONFIG"),
        "{text}"
    );
    let json = format!(
        r#"{{"auths":{{"z.example":{{"auth":"{}"}}}}}}"#,
        b64("no-colon-hunter2")
    );
    let keychain = load(&MapEnvironment::new().with("DOCKER_AUTH_CONFIG", json));
    let text = keychain
        .resolve("z.example")
        .expect_err("no colon")
        .to_string();
    assert!(
        !text.contains("hunter2") && text.contains("user:password"),
        "{text}"
    );
}

#[test]
fn missing_files_are_anonymous_and_malformed_files_name_their_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keychain =
        load(&MapEnvironment::new().with("DOCKER_CONFIG", dir.path().to_str().expect("utf8")));
    assert_eq!(
        keychain.resolve("any.example").expect("anonymous"),
        Credential::Anonymous
    );
    assert!(keychain.origins().is_empty());
    write(
        &dir.path().join("config.json"),
        "{\n  \"auths\": {\n    oops\n",
    );
    let err = Keychain::load(
        &MapEnvironment::new().with("DOCKER_CONFIG", dir.path().to_str().expect("utf8")),
        KeychainOptions::default(),
    )
    .expect_err("malformed");
    match err {
        AuthError::ParseConfig { origin, line, .. } => {
            assert!(origin.ends_with("config.json"));
            assert_eq!(line, 3);
        }
        other => panic!("unexpected {other}"),
    }
}
