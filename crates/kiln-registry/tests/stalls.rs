//! The registry I/O timeout (`RegistryOptions::io_timeout`, kiln's `--registry-timeout`):
//! a manifest or blob body that stalls halfway (kiln-testkit's proxy sends part of it,
//! then nothing for a minute) fails after the timeout, not after the stall. With
//! retries (`--push-retry`/`--image-download-retry`) the next attempt gets the whole
//! thing; with a single attempt the pull fails cleanly with an error that says it
//! timed out and names the registry.

mod common;

use std::time::{Duration, Instant};

use common::*;
use kiln_registry::{Client, ErrorKind, ManifestRef, RepoRef};
use kiln_testkit::{FaultProxy, Faults, Registry, StallRule};

/// Far longer than the timeout: a client that waits it out fails the time bound below.
const STALL: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_millis(1500);

/// Pushes a test image straight to `reg` and returns it with a proxy in front whose
/// first `count` GETs of the manifest or of the layer stall after `keep` bytes.
async fn stalled(
    reg: &Registry,
    dir: &std::path::Path,
    layer: bool,
    keep: usize,
    count: usize,
) -> (TestImage, FaultProxy) {
    let img = test_image(dir, &[400_000], 41, "amd64");
    let path = if layer {
        format!("/blobs/{}", img.layers[0].0.digest)
    } else {
        "/manifests/".to_owned()
    };
    let direct = reg.host_port();
    plain_client(&direct)
        .push_image(&img.image, &[target(&direct, "stalls/app", "v1")])
        .await
        .unwrap();
    let faults = Faults::none()
        .stall(StallRule::first(count, keep, STALL).matching(Some("GET"), Some(&path)));
    (img, FaultProxy::in_front_of(reg, faults))
}

fn client_with(host: &str, attempts: u32) -> Client {
    let mut opts = options(host, true, None, None);
    opts.retry.max_attempts = attempts;
    opts.io_timeout = TIMEOUT;
    Client::new(opts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_are_retried_after_the_io_timeout() {
    let reg = Registry::start_plain();
    let dir = tempfile::tempdir().unwrap();
    for (what, layer, keep) in [("manifest", false, 20), ("layer", true, 100_000)] {
        let (img, proxy) = stalled(&reg, dir.path(), layer, keep, 2).await;
        let host = proxy.host_port();
        let started = Instant::now();
        assert_pulls_back(
            &client_with(&host, 4),
            &RepoRef::new(&host, "stalls/app"),
            "v1",
            &img,
            dir.path(),
        )
        .await;
        let elapsed = started.elapsed();
        assert!(elapsed >= 2 * TIMEOUT, "{what}: two stalls in {elapsed:?}");
        let stalls = proxy
            .requests()
            .iter()
            .filter(|r| r.fault == Some("stall"))
            .count();
        assert_eq!(stalls, 2, "{what}: {:#?}", proxy.requests());
        assert!(
            elapsed < STALL / 2,
            "{what}: the pull took {elapsed:?}: it waited the stall out instead of timing out"
        );
        eprintln!("stalls: {what} stalled twice, pulled whole in {elapsed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_without_retries_fails_cleanly_after_the_io_timeout() {
    let reg = Registry::start_plain();
    let dir = tempfile::tempdir().unwrap();
    let (img, proxy) = stalled(&reg, dir.path(), true, 100_000, 1_000).await;
    let host = proxy.host_port();
    let client = client_with(&host, 1);
    let repo = RepoRef::new(&host, "stalls/app");
    let pulled = client
        .pull_manifest(
            &repo,
            &ManifestRef::Tag("v1".into()),
            &kiln_oci::Platform::new("linux", "amd64"),
        )
        .await
        .unwrap();
    let dest = dir.path().join("pulled");
    let started = Instant::now();
    let err = client
        .fetch_blob(&pulled.source, &img.layers[0].0, &dest)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    let text = err.to_string();
    assert!(
        matches!(err.kind(), ErrorKind::Transfer { .. }) && err.is_retryable(),
        "{err:?}"
    );
    assert!(
        text.contains("timed out") && text.contains(&host) && err.attempts() == 1,
        "{text}"
    );
    assert!(
        elapsed >= TIMEOUT && elapsed < STALL / 2,
        "failed after {elapsed:?} (timeout {TIMEOUT:?}, stall {STALL:?})"
    );
    // Nothing half-written is left where the blob would go.
    let left: Vec<_> = fs_err::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pulled"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
