//! Upload sessions opened ahead (`Client::keep_sessions_ahead`) against a real
//! docker-registry behind the testkit's proxy, whose request log shows what was sent
//! when: a blob that is ready goes up in a session opened before it existed (its `PUT`
//! waits for no `POST`), whether it grew or was whole, and closing cancels the
//! session nobody took.

mod common;

use std::io::Write;
use std::time::Instant;

use common::*;
use kiln_oci::{Descriptor, Digest, MediaType};
use kiln_registry::{BlobOutcome, BlobSource, BlobToPush, RepoRef, growing_blob};
use kiln_testkit::proxy::ProxiedRequest;
use kiln_testkit::{FaultProxy, Faults, Registry, Shaping};

fn posts_answered(log: &[ProxiedRequest]) -> usize {
    log.iter()
        .filter(|r| r.method == "POST" && r.status == 202)
        .count()
}

/// The closing `PUT` of the blob `data` waited for no `POST` sent after `ready`: every
/// `POST` answered before that `PUT` arrived had arrived before `ready`.
fn put_took_a_session_opened_before(log: &[ProxiedRequest], data: &[u8], ready: Instant) {
    let wanted = format!("digest=sha256%3A{}", Digest::sha256_of(data).hex());
    let put = log
        .iter()
        .find(|r| r.method == "PUT" && r.path.contains(&wanted) && r.status == 201)
        .unwrap_or_else(|| panic!("no closing PUT: {log:#?}"));
    let waited_for = log
        .iter()
        .filter(|r| r.method == "POST" && r.answered <= put.arrived && r.arrived >= ready)
        .count();
    assert_eq!(waited_for, 0, "the PUT waited for a POST: {log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_blobs_take_sessions_opened_ahead_and_closing_cancels_the_rest() {
    let reg = Registry::start_plain();
    let proxy = FaultProxy::in_front_of(&reg, Faults::none().shape(Shaping::new(1000, 100)));
    let host = proxy.host_port();
    let dir = tempfile::tempdir().unwrap();
    let client = plain_client(&host);
    let repo = RepoRef::new(&host, "ahead/app");

    client.keep_sessions_ahead(&repo, 1);
    let proxy = tokio::task::spawn_blocking(move || {
        wait_for_log(&proxy, "the session opened ahead", |log| {
            posts_answered(log) == 1
        });
        proxy
    })
    .await
    .unwrap();

    // A layer: written and finished now, uploaded while it grows.
    let layer = kiln_testkit::noise::bytes(1000, 21);
    let path = dir.path().join("layer");
    let (mut w, blob) = growing_blob(std::fs::File::create(&path).unwrap(), &path).unwrap();
    let ready = Instant::now();
    w.write_all(&layer).unwrap();
    w.finish(Digest::sha256_of(&layer));
    assert_eq!(
        client.push_growing_blob(&repo, &blob).await.unwrap(),
        BlobOutcome::Uploaded
    );
    put_took_a_session_opened_before(&proxy.requests(), &layer, ready);

    // A config: whole, pushed once the replacement session is open.
    let proxy = tokio::task::spawn_blocking(move || {
        wait_for_log(&proxy, "the replacement session", |log| {
            posts_answered(log) == 2
        });
        proxy
    })
    .await
    .unwrap();
    let config = kiln_testkit::noise::bytes(500, 22);
    let ready = Instant::now();
    let whole = BlobToPush {
        descriptor: Descriptor::new(
            MediaType::parse("application/octet-stream"),
            Digest::sha256_of(&config),
            config.len() as u64,
        ),
        source: BlobSource::Bytes(config.clone().into()),
        mount_from: None,
    };
    assert_eq!(
        client.push_blob(&repo, &whole).await.unwrap(),
        BlobOutcome::Uploaded
    );
    put_took_a_session_opened_before(&proxy.requests(), &config, ready);

    // The third session, opened when the config took the second, is cancelled.
    client.close_sessions_ahead(&repo).await;
    let log = proxy.requests();
    let posts = log.iter().filter(|r| r.method == "POST").count();
    let deletes: Vec<u16> = log
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.status)
        .collect();
    assert_eq!((posts, deletes), (3, vec![204]), "{log:#?}");

    // Both blobs are there.
    for data in [&layer, &config] {
        let dest = dir.path().join("fetched");
        let descriptor = Descriptor::new(
            MediaType::parse("application/octet-stream"),
            Digest::sha256_of(data),
            data.len() as u64,
        );
        client.fetch_blob(&repo, &descriptor, &dest).await.unwrap();
        assert!(fs_err::read(&dest).unwrap() == **data, "the blob differs");
    }
}
