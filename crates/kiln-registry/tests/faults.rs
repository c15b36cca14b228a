//! Faults injected by the testkit proxy (dropped connections, 500s, 429 with Retry-After,
//! truncated bodies) are retried and the image arrives intact; retries are bounded and a
//! failed push leaves no tag.

mod common;

use common::*;
use kiln_registry::{Client, ManifestRef, RepoRef};
use kiln_testkit::{FailRule, FaultProxy, Faults, Registry, TruncateRule};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_retried_and_the_result_is_intact() {
    let reg = Registry::start_plain();
    let faults = Faults::none()
        .drop_connections(2)
        .fail(FailRule::status(500, 2).matching(Some("PUT"), Some("/blobs/uploads/")))
        .fail(FailRule::status(503, 1).matching(Some("POST"), Some("/blobs/uploads/")))
        .fail(
            FailRule::status(429, 1)
                .retry_after("1")
                .matching(Some("PUT"), Some("/manifests/")),
        )
        .fail(FailRule::status(502, 1).matching(Some("GET"), Some("/manifests/")))
        .truncate(TruncateRule::first(1, 1000).matching(Some("GET"), Some("/blobs/sha256:")));
    let proxy = FaultProxy::in_front_of(&reg, faults);
    let host = proxy.host_port();
    let dir = tempfile::tempdir().unwrap();
    let img = test_image(dir.path(), &[200_000, 150_000], 30, "amd64");
    let client = plain_client(&host);

    let out = client
        .push_image(&img.image, &[target(&host, "faulty/app", "v1")])
        .await
        .unwrap();
    assert_eq!(out.digest, img.digest);
    assert_pulls_back(
        &client,
        &RepoRef::new(&host, "faulty/app"),
        "v1",
        &img,
        dir.path(),
    )
    .await;
    // And straight from the registry, bypassing the proxy.
    let direct = reg.host_port();
    assert_pulls_back(
        &plain_client(&direct),
        &RepoRef::new(&direct, "faulty/app"),
        "v1",
        &img,
        dir.path(),
    )
    .await;

    let requests = proxy.requests();
    let failed = requests.iter().filter(|r| r.fault == Some("fail")).count();
    let truncated = requests
        .iter()
        .filter(|r| r.fault == Some("truncate"))
        .count();
    assert_eq!((failed, truncated), (5, 1), "{requests:#?}");
    assert!(proxy.connection_count() > 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded_and_a_failed_push_leaves_no_tag() {
    let reg = Registry::start_plain();
    let faults = Faults::none()
        .fail(FailRule::status(500, 100).matching(Some("PUT"), Some("/blobs/uploads/")));
    let proxy = FaultProxy::in_front_of(&reg, faults);
    let host = proxy.host_port();
    let dir = tempfile::tempdir().unwrap();
    let img = test_image(dir.path(), &[1000], 31, "amd64");
    let mut opts = options(&host, true, None, None);
    opts.retry.max_attempts = 3;
    let client = Client::new(opts);
    let err = client
        .push_image(&img.image, &[target(&host, "bounded/app", "v1")])
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500), "{err}");
    assert_eq!(err.attempts(), 3, "{err}");
    assert!(
        err.to_string().contains("pushing blob") && err.to_string().contains("after 3 attempts"),
        "{err}"
    );
    let requests = proxy.requests();
    assert!(
        !requests.iter().any(|r| r.path.contains("/manifests/")),
        "a manifest was sent: {requests:#?}"
    );
    assert!(
        plain_client(&host)
            .head_manifest(
                &RepoRef::new(&host, "bounded/app"),
                &ManifestRef::Tag("v1".into())
            )
            .await
            .unwrap()
            .is_none()
    );
}

/// A manifest PUT answered `MANIFEST_BLOB_UNKNOWN` (distribution hides a blob for a
/// moment while a concurrent upload of it to the same repository re-links it): every
/// blob is confirmed again before the manifest is put once more, and the image arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_put_meeting_an_unknown_blob_confirms_the_blobs_and_puts_again() {
    let reg = Registry::start_plain();
    let faults = Faults::none().fail(
        FailRule::status(400, 1)
            .code("MANIFEST_BLOB_UNKNOWN")
            .matching(Some("PUT"), Some("/manifests/")),
    );
    let proxy = FaultProxy::in_front_of(&reg, faults);
    let host = proxy.host_port();
    let dir = tempfile::tempdir().unwrap();
    let img = test_image(dir.path(), &[5000, 7000], 32, "amd64");
    let client = plain_client(&host);
    let out = client
        .push_image(&img.image, &[target(&host, "relinked/app", "v1")])
        .await
        .unwrap();
    assert_eq!(out.digest, img.digest);
    assert_pulls_back(
        &client,
        &RepoRef::new(&host, "relinked/app"),
        "v1",
        &img,
        dir.path(),
    )
    .await;
    let requests = proxy.requests();
    let failed_put = requests
        .iter()
        .position(|r| r.fault == Some("fail"))
        .expect("the injected answer");
    let blobs = img.image.blobs.len();
    let heads_after = requests[failed_put..]
        .iter()
        .filter(|r| r.method == "HEAD" && r.path.contains("/blobs/"))
        .count();
    assert_eq!(
        heads_after, blobs,
        "every blob confirmed again: {requests:#?}"
    );
    let puts = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/manifests/"))
        .count();
    assert_eq!(puts, 2, "{requests:#?}");
}
