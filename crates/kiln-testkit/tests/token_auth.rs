//! The token issuer's JWTs are accepted by distribution 2.8 in every signing variant,
//! scopes are enforced, and anonymous / OAuth2 flows behave as GitLab's.

use std::process::Command;

use kiln_testkit::token::{Algorithm, KeyHeader};
use kiln_testkit::{Registry, TokenIssuer};

/// Runs curl; returns (HTTP status, body, response headers).
fn curl(args: &[&str]) -> (String, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let headers = dir.path().join("headers");
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-D"])
        .arg(&headers)
        .args(args)
        .output()
        .expect("needs curl: run .ci/install-deps");
    let text = String::from_utf8(out.stdout).expect("utf8");
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (
        status.to_owned(),
        body.to_owned(),
        std::fs::read_to_string(headers).unwrap_or_default(),
    )
}

fn token_from(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("token JSON {body}: {e}"));
    assert_eq!(v["token"], v["access_token"]);
    assert!(v["expires_in"].is_u64());
    assert!(v["issued_at"].is_string());
    v["token"].as_str().expect("token string").to_owned()
}

fn check_flow(algorithm: Algorithm, header: KeyHeader) {
    let issuer = TokenIssuer::builder()
        .user("ci", "job-token", "pull,push")
        .algorithm(algorithm)
        .key_header(header)
        .start();
    let registry = Registry::builder().token(&issuer).start();
    let base = registry.url();

    let (status, _, headers) = curl(&[&format!("{base}/v2/missing/tags/list")]);
    assert_eq!(status, "401");
    assert!(
        headers.contains(&format!("realm=\"{}\"", issuer.realm())),
        "{headers}"
    );
    assert!(
        headers.contains("scope=\"repository:missing:pull\""),
        "{headers}"
    );

    let url = format!(
        "{}?service={}&scope=repository:missing:pull&scope=repository:other:pull,push",
        issuer.realm(),
        issuer.service()
    );
    let (status, body, _) = curl(&["-u", "ci:job-token", &url]);
    assert_eq!(status, "200", "{body}");
    let token = token_from(&body);
    let bearer = format!("Authorization: Bearer {token}");
    // Authorized: the repository simply does not exist.
    let (status, body, _) = curl(&["-H", &bearer, &format!("{base}/v2/missing/tags/list")]);
    assert_eq!(status, "404", "{body}\nregistry log:\n{}", registry.log());
    assert!(body.contains("NAME_UNKNOWN"), "{body}");
    // Not covered by the token's scopes.
    let (status, body, _) = curl(&["-H", &bearer, &format!("{base}/v2/third/tags/list")]);
    assert_eq!(status, "401", "{body}");
    assert!(
        body.contains("insufficient_scope") || body.contains("UNAUTHORIZED"),
        "{body}"
    );

    let (status, _, _) = curl(&["-u", "ci:wrong", &url]);
    assert_eq!(status, "401");
    let requests = issuer.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].account.as_deref(), Some("ci"));
    assert_eq!(
        requests[0].scopes,
        ["repository:missing:pull", "repository:other:pull,push"]
    );
    assert_eq!(requests[1].status, 401);
}

#[test]
fn es256_x5c_tokens_are_accepted() {
    check_flow(Algorithm::Es256, KeyHeader::X5c);
}

#[test]
fn rs256_x5c_tokens_are_accepted() {
    check_flow(Algorithm::Rs256, KeyHeader::X5c);
}

#[test]
fn es256_kid_tokens_are_accepted() {
    check_flow(Algorithm::Es256, KeyHeader::Kid);
}

#[test]
fn rs256_kid_tokens_are_accepted() {
    check_flow(Algorithm::Rs256, KeyHeader::Kid);
}

#[test]
fn anonymous_pull_is_granted_only_when_configured() {
    let closed = TokenIssuer::builder().user("ci", "pw", "pull").start();
    let (status, _, _) = curl(&[&format!(
        "{}?service={}&scope=repository:a:pull",
        closed.realm(),
        closed.service()
    )]);
    assert_eq!(status, "401");

    let open = TokenIssuer::builder().anonymous("pull").start();
    let registry = Registry::builder().token(&open).start();
    let (status, body, _) = curl(&[&format!(
        "{}?service={}&scope=repository:a:pull,push",
        open.realm(),
        open.service()
    )]);
    assert_eq!(status, "200");
    let bearer = format!("Authorization: Bearer {}", token_from(&body));
    let (status, body, _) = curl(&["-H", &bearer, &format!("{}/v2/a/tags/list", registry.url())]);
    assert_eq!(status, "404", "pull granted: {body}");
    // Push was requested but not granted: starting an upload is refused.
    let (status, _, _) = curl(&[
        "-X",
        "POST",
        "-H",
        &bearer,
        &format!("{}/v2/a/blobs/uploads/", registry.url()),
    ]);
    assert_eq!(status, "401");
}

#[test]
fn oauth2_password_and_refresh_grants() {
    let issuer = TokenIssuer::builder().user("ci", "pw", "pull").start();
    let registry = Registry::builder().token(&issuer).start();
    let form = format!(
        "grant_type=password&username=ci&password=pw&service={}&scope=repository:a:pull&client_id=kiln",
        issuer.service()
    );
    let (status, body, _) = curl(&["-d", &form, issuer.realm()]);
    assert_eq!(status, "200", "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let refresh = v["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let form = format!(
        "grant_type=refresh_token&refresh_token={refresh}&service={}&scope=repository:a:pull&client_id=kiln",
        issuer.service()
    );
    let (status, body, _) = curl(&["-d", &form, issuer.realm()]);
    assert_eq!(status, "200", "{body}");
    let bearer = format!("Authorization: Bearer {}", token_from(&body));
    let (status, _, _) = curl(&["-H", &bearer, &format!("{}/v2/a/tags/list", registry.url())]);
    assert_eq!(status, "404");
    let (status, _, _) = curl(&[
        "-d",
        "grant_type=password&username=ci&password=no",
        issuer.realm(),
    ]);
    assert_eq!(status, "401");
    assert_eq!(issuer.requests()[0].grant_type.as_deref(), Some("password"));
}

#[test]
fn expired_tokens_are_rejected() {
    let issuer = TokenIssuer::builder().user("ci", "pw", "pull").start();
    let registry = Registry::builder().token(&issuer).start();
    let access = [kiln_testkit::token::Access {
        kind: "repository".into(),
        name: "a".into(),
        actions: vec!["pull".into()],
    }];
    let fresh = issuer.mint("ci", &access, 300);
    let expired = issuer.mint("ci", &access, -600);
    let url = format!("{}/v2/a/tags/list", registry.url());
    assert_eq!(
        curl(&["-H", &format!("Authorization: Bearer {fresh}"), &url]).0,
        "404"
    );
    assert_eq!(
        curl(&["-H", &format!("Authorization: Bearer {expired}"), &url]).0,
        "401"
    );
}

/// The servers own their runtimes, so they start and stop inside a tokio test too.
#[tokio::test]
async fn issuer_and_proxy_start_and_stop_inside_a_tokio_runtime() {
    let issuer = TokenIssuer::builder().user("ci", "pw", "pull").start();
    let registry = Registry::builder().token(&issuer).start();
    let proxy = kiln_testkit::FaultProxy::in_front_of(
        &Registry::start_plain(),
        kiln_testkit::Faults::none(),
    );
    let url = format!(
        "{}?service={}&scope=repository:a:pull",
        issuer.realm(),
        issuer.service()
    );
    let (status, _, _) = tokio::task::spawn_blocking(move || curl(&["-u", "ci:pw", &url]))
        .await
        .expect("join");
    assert_eq!(status, "200");
    drop(proxy);
    drop(registry);
    drop(issuer);
}
