//! Authentication against real registries: htpasswd (Basic) and token auth (Bearer from
//! the testkit issuer, as GitLab does): round trips, wrong passwords push nothing, identity
//! tokens through the OAuth2 POST, anonymous pulls, token caching per scope.

mod common;

use common::*;
use kiln_registry::{Client, Credential, ManifestRef, RepoRef, Secret};
use kiln_testkit::{Registry, TokenIssuer};

fn basic(user: &str, password: &str) -> Option<Credential> {
    Some(Credential::Basic {
        username: user.into(),
        password: password.into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_round_trip_and_wrong_password_pushes_nothing() {
    let reg = Registry::builder().htpasswd("kiln", "s3cret-pw").start();
    let host = reg.host_port();
    let dir = tempfile::tempdir().unwrap();
    let img = test_image(dir.path(), &[5000, 70000], 10, "amd64");
    let repo = RepoRef::new(&host, "auth/app");

    let bad = Client::new(options(
        &host,
        true,
        None,
        basic("kiln", "wrong-password-123"),
    ));
    let err = bad
        .push_image(&img.image, &[target(&host, "auth/app", "t")])
        .await
        .unwrap_err();
    assert!(err.is_auth_failure(), "{err}");
    assert_eq!(err.status(), Some(401), "{err}");
    // The push fails at its first request, a HEAD (no body, so no error envelope); a GET
    // shows the registry's code.
    let get = bad
        .get_manifest_from(&repo, &ManifestRef::Tag("t".into()))
        .await
        .unwrap_err();
    assert!(get.codes().contains(&"UNAUTHORIZED"), "{get}");
    let text = format!("{err} {err:?} {get} {get:?}");
    assert!(
        !text.contains("wrong-password-123"),
        "secret leaked: {text}"
    );

    let anonymous = Client::new(options(&host, true, None, None));
    let err = anonymous
        .head_manifest(&repo, &ManifestRef::Tag("t".into()))
        .await
        .unwrap_err();
    assert!(err.is_auth_failure(), "{err}");

    // The right password, found by kiln-auth in GitLab's DOCKER_AUTH_CONFIG.
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "kiln:s3cret-pw");
    let env = kiln_auth::MapEnvironment::new().with(
        "DOCKER_AUTH_CONFIG",
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    );
    let keychain = kiln_auth::Keychain::load(&env, kiln_auth::KeychainOptions::default()).unwrap();
    let mut opts = options(&host, true, None, None);
    opts.credentials = std::sync::Arc::new(keychain);
    let good = Client::new(opts);
    assert!(
        good.head_manifest(&repo, &ManifestRef::Tag("t".into()))
            .await
            .unwrap()
            .is_none(),
        "the failed push left a tag"
    );
    let out = good
        .push_image(&img.image, &[target(&host, "auth/app", "t")])
        .await
        .unwrap();
    assert_eq!(out.uploaded, 3);
    assert_pulls_back(&good, &repo, "t", &img, dir.path()).await;
}

fn token_setup() -> (TokenIssuer, Registry) {
    let issuer = TokenIssuer::builder()
        .user("ci", "job-token-xyz", "pull,push")
        .anonymous("pull")
        .start();
    let reg = Registry::builder().token(&issuer).start();
    (issuer, reg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_round_trip_with_cached_scoped_tokens() {
    let (issuer, reg) = token_setup();
    let host = reg.host_port();
    let dir = tempfile::tempdir().unwrap();
    let img = test_image(dir.path(), &[4000, 9000, 12000], 11, "amd64");
    let client = Client::new(options(&host, true, None, basic("ci", "job-token-xyz")));
    let out = client
        .push_image(
            &img.image,
            &[
                target(&host, "group/project", "v1"),
                target(&host, "group/other", "v1"),
            ],
        )
        .await
        .unwrap();
    assert_eq!((out.uploaded, out.mounted), (4, 4));
    assert_pulls_back(
        &client,
        &RepoRef::new(&host, "group/project"),
        "v1",
        &img,
        dir.path(),
    )
    .await;

    let requests = issuer.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.method == "GET" && r.account.as_deref() == Some("ci") && r.status == 200),
        "{requests:?}"
    );
    // One token per scope set, not one per request: push to project, push to other
    // (+ pull on project for the mounts), pull from project.
    let scope_sets: Vec<Vec<String>> = requests.iter().map(|r| r.scopes.clone()).collect();
    assert!(
        scope_sets.contains(&vec!["repository:group/project:pull,push".to_string()]),
        "{scope_sets:?}"
    );
    assert!(
        scope_sets.iter().any(
            |s| s.contains(&"repository:group/other:pull,push".to_string())
                && s.contains(&"repository:group/project:pull".to_string())
        ),
        "{scope_sets:?}"
    );
    assert!(requests.len() <= 5, "tokens are not cached: {requests:?}");

    // Anonymous pulls work (the issuer grants pull to anyone), anonymous pushes do not.
    let anon = Client::new(options(&host, true, None, None));
    assert_pulls_back(
        &anon,
        &RepoRef::new(&host, "group/other"),
        "v1",
        &img,
        dir.path(),
    )
    .await;
    let err = anon
        .push_image(&img.image, &[target(&host, "group/project", "anon")])
        .await
        .unwrap_err();
    assert!(err.is_auth_failure(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_wrong_password_is_an_auth_error_and_pushes_nothing() {
    let (_issuer, reg) = token_setup();
    let host = reg.host_port();
    let dir = tempfile::tempdir().unwrap();
    let img = test_image(dir.path(), &[1000], 12, "amd64");
    let bad = Client::new(options(&host, true, None, basic("ci", "not-the-job-token")));
    let err = bad
        .push_image(&img.image, &[target(&host, "group/project", "v1")])
        .await
        .unwrap_err();
    assert!(err.is_auth_failure(), "{err}");
    assert!(err.to_string().contains("authenticating to"), "{err}");
    assert!(!format!("{err} {err:?}").contains("not-the-job-token"));
    let good = Client::new(options(&host, true, None, basic("ci", "job-token-xyz")));
    assert!(
        good.head_manifest(
            &RepoRef::new(&host, "group/project"),
            &ManifestRef::Tag("v1".into())
        )
        .await
        .unwrap()
        .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_token_uses_the_oauth2_refresh_grant() {
    let (issuer, reg) = token_setup();
    let host = reg.host_port();
    // Obtain a refresh (identity) token the way `docker login` would, with curl.
    let out = std::process::Command::new("curl")
        .args(["-sf", "-d", "grant_type=password&username=ci&password=job-token-xyz&client_id=test&service=container_registry&scope="])
        .arg(issuer.realm())
        .output()
        .expect("needs curl: install with .ci/install-deps");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let refresh = answer["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_string();

    let dir = tempfile::tempdir().unwrap();
    let img = test_image(dir.path(), &[3000], 13, "amd64");
    let client = Client::new(options(
        &host,
        true,
        None,
        Some(Credential::IdentityToken(Secret::new(refresh))),
    ));
    client
        .push_image(&img.image, &[target(&host, "idt/app", "v1")])
        .await
        .unwrap();
    assert_pulls_back(
        &client,
        &RepoRef::new(&host, "idt/app"),
        "v1",
        &img,
        dir.path(),
    )
    .await;
    let posts: Vec<_> = issuer
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert!(posts.len() >= 2, "{posts:?}");
    assert!(
        posts[1..]
            .iter()
            .all(|r| r.grant_type.as_deref() == Some("refresh_token") && r.status == 200),
        "{posts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_token_is_sent_as_bearer() {
    let (issuer, reg) = token_setup();
    let host = reg.host_port();
    let access = kiln_testkit::token::Access {
        kind: "repository".into(),
        name: "rt/app".into(),
        actions: vec!["pull".into(), "push".into()],
    };
    let token = issuer.mint("ci", &[access], 300);
    let dir = tempfile::tempdir().unwrap();
    let img = test_image(dir.path(), &[3000], 14, "amd64");
    let client = Client::new(options(
        &host,
        true,
        None,
        Some(Credential::RegistryToken(Secret::new(token))),
    ));
    client
        .push_image(&img.image, &[target(&host, "rt/app", "v1")])
        .await
        .unwrap();
    assert_pulls_back(
        &client,
        &RepoRef::new(&host, "rt/app"),
        "v1",
        &img,
        dir.path(),
    )
    .await;
    assert!(
        issuer.requests().is_empty(),
        "the realm was asked although a registry token was given"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_scope_is_rechallenged_once_then_reported() {
    // A user that may only pull: the push's POST gets 401 insufficient_scope, kiln asks
    // the realm again for the scope the registry named, gets pull only again, and stops.
    let issuer = TokenIssuer::builder()
        .user("reader", "read-only-pw", "pull")
        .start();
    let reg = Registry::builder().token(&issuer).start();
    let host = reg.host_port();
    let dir = tempfile::tempdir().unwrap();
    let img = test_image(dir.path(), &[1000], 15, "amd64");
    let mut opts = options(&host, true, None, basic("reader", "read-only-pw"));
    opts.max_parallel_uploads = 1;
    let client = Client::new(opts);
    let err = client
        .push_image(&img.image, &[target(&host, "ro/app", "v1")])
        .await
        .unwrap_err();
    assert!(err.is_auth_failure(), "{err}");
    assert!(err.to_string().contains("pushing blob"), "{err}");
    let push_scope = "repository:ro/app:pull,push".to_string();
    let asks = issuer
        .requests()
        .iter()
        .filter(|r| r.scopes.contains(&push_scope))
        .count();
    assert_eq!(
        asks,
        2,
        "expected the first token and one re-challenge: {:?}",
        issuer.requests()
    );
}
