//! One [`Client`] serves several tokio runtimes: kiln-build's pull pipeline, its puller,
//! the push pipeline and the layer cache each drive their own. A connection the pool
//! kept from a runtime that is no longer being driven must not stall a request made on
//! another runtime (it used to: until the I/O timeout, or for ever when the timer
//! belonged to the idle runtime too).

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::*;
use kiln_registry::{ManifestRef, RepoRef};
use kiln_testkit::Registry;

/// How long the second runtime may take before the test calls it a hang: far above a
/// pull of a few hundred KB from a local registry, far below the I/O timeout.
const HANG: Duration = Duration::from_secs(60);

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_connection_pooled_on_an_idle_runtime_serves_a_request_on_another() {
    let reg = Registry::start_plain();
    let dir = tempfile::tempdir().unwrap();
    let host = reg.host_port();
    let mut opts = options(&host, true, None, None);
    opts.retry.max_attempts = 1;
    opts.io_timeout = 10 * HANG;
    let client = kiln_registry::Client::new(opts);
    let img = test_image(dir.path(), &[300_000], 17, "amd64");
    let repo = RepoRef::new(&host, "runtimes/app");

    // Runtime A pushes and reads the manifest, then is kept alive but no longer driven.
    let first = current_thread();
    let pulled = first.block_on(async {
        client
            .push_image(&img.image, &[target(&host, "runtimes/app", "v1")])
            .await
            .unwrap();
        client
            .pull_manifest(
                &repo,
                &ManifestRef::Tag("v1".into()),
                &kiln_oci::Platform::new("linux", "amd64"),
            )
            .await
            .unwrap()
    });

    // Runtime B, on another thread, fetches the layer over the pooled connection (a
    // detached thread: a hung one must not keep the test from failing).
    let dest = dir.path().join("layer");
    let (done, outcome) = mpsc::channel();
    let (second_client, source, layer, to) = (
        client.clone(),
        pulled.source.clone(),
        img.layers[0].0.clone(),
        dest.clone(),
    );
    std::thread::spawn(move || {
        let second = current_thread();
        let fetched = second.block_on(second_client.fetch_blob(&source, &layer, &to));
        let _ = done.send(fetched.map_err(|e| e.to_string()));
    });
    let fetched = outcome.recv_timeout(HANG).unwrap_or_else(|_| {
        panic!(
            "the fetch on a second runtime hung for {HANG:?} on a connection of the first \
             (connections must live on a runtime that is always driven)"
        )
    });
    fetched.unwrap();
    assert_eq!(
        fs_err::read(&dest).unwrap(),
        fs_err::read(&img.layers[0].1).unwrap()
    );
    drop(first);
}
