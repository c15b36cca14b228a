//! Faults injected by the testkit proxy (dropped connections, 500s, 429 with Retry-After,
//! truncated bodies, uploads cut mid-body) are retried and the image arrives intact;
//! retries are bounded and a failed push leaves no tag.

mod common;

use common::*;
use kiln_registry::{Client, ManifestRef, RepoRef};
use kiln_testkit::{CutRule, FailRule, FaultProxy, Faults, Registry, TruncateRule};

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
/// blob is confirmed again (asked about, or sent again when it is small enough that
/// asking costs as much) before the manifest is put once more, and the image arrives.
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
    let confirmed_after = requests[failed_put..]
        .iter()
        .filter(|r| {
            (r.method == "HEAD" && r.path.contains("/blobs/"))
                || (r.method == "PUT" && r.path.contains("/blobs/uploads/"))
        })
        .count();
    assert_eq!(
        confirmed_after, blobs,
        "every blob confirmed again: {requests:#?}"
    );
    let puts = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/manifests/"))
        .count();
    assert_eq!(puts, 2, "{requests:#?}");
}

/// Uploads whose request body the proxy cuts after some bytes (the registry gets a
/// partial `PUT` or `PATCH` and a broken connection, kiln a connection closed under its
/// upload): distribution keeps whatever part of a `PATCH` it read in the session, so
/// resending into it would be refused or, worse, append twice. Each retry starts a
/// fresh session (`POST`), and the image arrives whole, monolithic and chunked alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_cut_mid_body_restart_in_a_fresh_session() {
    let reg = Registry::start_plain();
    let dir = tempfile::tempdir().unwrap();
    for (name, chunk, method, keep) in [
        ("monolithic", None, "PUT", 1000),
        ("chunked", Some(100_000), "PATCH", 50_000),
    ] {
        let faults = Faults::none()
            .cut(CutRule::first(2, keep).matching(Some(method), Some("/blobs/uploads/")));
        let proxy = FaultProxy::in_front_of(&reg, faults);
        let host = proxy.host_port();
        let img = test_image(dir.path(), &[600_000, 300_000], 33, "amd64");
        let mut opts = options(&host, true, None, None);
        opts.chunk_size = chunk;
        let client = Client::new(opts);
        let repo = format!("cut/{name}");
        let out = client
            .push_image(&img.image, &[target(&host, &repo, "v1")])
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out.digest, img.digest);
        let requests = proxy.requests();
        let cuts: Vec<usize> = requests
            .iter()
            .enumerate()
            .filter(|(_, r)| r.fault == Some("cut"))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(cuts.len(), 2, "{name}: {requests:#?}");
        let posts = requests
            .iter()
            .filter(|r| r.method == "POST" && r.path.contains("/blobs/uploads/"))
            .count();
        assert!(
            posts >= img.image.blobs.len() + 2,
            "{name}: every cut upload starts again in a new session: {requests:#?}"
        );
        let direct = reg.host_port();
        assert_pulls_back(
            &plain_client(&direct),
            &RepoRef::new(&direct, &repo),
            "v1",
            &img,
            dir.path(),
        )
        .await;
    }
}

/// Without retries an upload cut mid-body fails the push, as a retryable transfer
/// error naming the registry, and no manifest is sent: the tag does not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_mid_body_without_retries_fails_and_moves_no_tag() {
    let reg = Registry::start_plain();
    let dir = tempfile::tempdir().unwrap();
    let direct = reg.host_port();
    let old = test_image(dir.path(), &[2000], 34, "amd64");
    plain_client(&direct)
        .push_image(&old.image, &[target(&direct, "cut/none", "v1")])
        .await
        .unwrap();
    let faults =
        Faults::none().cut(CutRule::first(1000, 5000).matching(Some("PUT"), Some("/blobs/")));
    let proxy = FaultProxy::in_front_of(&reg, faults);
    let host = proxy.host_port();
    let img = test_image(dir.path(), &[400_000], 35, "amd64");
    let mut opts = options(&host, true, None, None);
    opts.retry.max_attempts = 1;
    let err = Client::new(opts)
        .push_image(&img.image, &[target(&host, "cut/none", "v1")])
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), kiln_registry::ErrorKind::Transfer { .. })
            && err.is_retryable()
            && err.to_string().contains(&host),
        "{err:?}"
    );
    let requests = proxy.requests();
    assert!(
        requests.iter().any(|r| r.fault == Some("cut")),
        "{requests:#?}"
    );
    assert!(
        !requests.iter().any(|r| r.path.contains("/manifests/")),
        "a manifest was sent: {requests:#?}"
    );
    let tag = plain_client(&direct)
        .head_manifest(
            &RepoRef::new(&direct, "cut/none"),
            &ManifestRef::Tag("v1".into()),
        )
        .await
        .unwrap()
        .map(|d| d.digest);
    assert_eq!(tag, Some(old.digest), "the tag moved");
}
