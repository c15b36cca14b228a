//! Uploading a blob while it is written (`Client::push_growing_blob`) against a real
//! docker-registry behind the testkit's proxy, whose request log shows what was sent
//! when: chunks leave before the writer ends, a registry refusing `PATCH` still gets
//! the blob whole, an abandoned blob fails the upload, a blob the registry holds is
//! not sent again unless it is small enough that asking costs as much as sending.

mod common;

use std::io::Write;

use common::*;
use kiln_oci::{Descriptor, Digest, MediaType};
use kiln_registry::{BlobOutcome, Client, GrowingBlobWriter, RepoRef, growing_blob};
use kiln_testkit::proxy::ProxiedRequest;
use kiln_testkit::{FailRule, FaultProxy, Faults, Registry};

const CHUNK: u64 = 256 * 1024;

fn chunked_client(host: &str) -> Client {
    let mut o = options(host, true, None, None);
    o.chunk_size = Some(CHUNK);
    Client::new(o)
}

/// A registry behind the testkit's proxy with `faults`, the proxy's `host:port`, and
/// a temp dir for blob files.
fn behind_proxy(faults: Faults) -> (Registry, FaultProxy, String, tempfile::TempDir) {
    let reg = Registry::start_plain();
    let proxy = FaultProxy::in_front_of(&reg, faults);
    let host = proxy.host_port();
    (reg, proxy, host, tempfile::tempdir().unwrap())
}

fn writer(dir: &std::path::Path) -> (GrowingBlobWriter, kiln_registry::GrowingBlob) {
    let path = dir.join("blob");
    let file = std::fs::File::create(&path).unwrap();
    growing_blob(file, &path).unwrap()
}

fn patches_accepted(log: &[ProxiedRequest]) -> usize {
    log.iter()
        .filter(|r| r.method == "PATCH" && r.status == 202)
        .count()
}

/// The descriptor of `data` as an untyped blob.
fn octets(data: &[u8]) -> Descriptor {
    Descriptor::new(
        MediaType::parse("application/octet-stream"),
        Digest::sha256_of(data),
        data.len() as u64,
    )
}

/// The registry itself (not the proxy) serves `data` in `repository`.
async fn stored(reg: &Registry, repository: &str, data: &[u8], dir: &std::path::Path) {
    let host = reg.host_port();
    fetched(
        &plain_client(&host),
        &RepoRef::new(&host, repository),
        data,
        dir,
    )
    .await;
}

async fn fetched(client: &Client, repo: &RepoRef, data: &[u8], dir: &std::path::Path) {
    let descriptor = octets(data);
    let dest = dir.join("fetched");
    client.fetch_blob(repo, &descriptor, &dest).await.unwrap();
    assert!(fs_err::read(&dest).unwrap() == data, "the blob differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_leave_while_the_blob_is_written() {
    let (reg, proxy, host, dir) = behind_proxy(Faults::none());
    let client = chunked_client(&host);
    let repo = RepoRef::new(&host, "grow/app");
    let data = kiln_testkit::noise::bytes(5 * CHUNK as usize + 1234, 7);
    let (mut w, blob) = writer(dir.path());
    let upload = tokio::spawn({
        let (client, repo) = (client.clone(), repo.clone());
        async move { client.push_growing_blob(&repo, &blob).await }
    });

    let written = data.clone();
    let proxy = tokio::task::spawn_blocking(move || {
        // Three chunks' worth, then wait until the registry accepted them all before
        // writing the rest: the upload runs while the blob is being written.
        w.write_all(&written[..3 * CHUNK as usize]).unwrap();
        wait_for_log(&proxy, "three PATCHes before the end", |log| {
            patches_accepted(log) == 3
        });
        assert!(
            !proxy.requests().iter().any(|r| r.method == "PUT"),
            "nothing may be closed before the blob ends"
        );
        w.write_all(&written[3 * CHUNK as usize..]).unwrap();
        w.finish(Digest::sha256_of(&written));
        proxy
    })
    .await
    .unwrap();

    assert_eq!(upload.await.unwrap().unwrap(), BlobOutcome::Uploaded);
    let log = proxy.requests();
    // The rest went as further PATCHes or with the closing PUT, whichever came first.
    assert!(patches_accepted(&log) >= 3, "{log:#?}");
    let put = log
        .iter()
        .find(|r| r.method == "PUT")
        .expect("the closing PUT");
    assert!(
        put.path.contains(&format!(
            "digest=sha256%3A{}",
            Digest::sha256_of(&data).hex()
        )) && put.status == 201,
        "{put:?}"
    );
    stored(&reg, "grow/app", &data, dir.path()).await;

    // A blob over `UNASKED_MAX` that ended before one full chunk, pushed again by
    // another client: the registry has it, so it is only checked, not sent.
    let small = kiln_testkit::noise::bytes(kiln_registry::UNASKED_MAX as usize + 1000, 8);
    let (mut w, blob) = writer(dir.path());
    w.write_all(&small).unwrap();
    w.finish(Digest::sha256_of(&small));
    assert_eq!(
        client.push_growing_blob(&repo, &blob).await.unwrap(),
        BlobOutcome::Uploaded
    );
    let (mut w, blob) = writer(dir.path());
    w.write_all(&small).unwrap();
    w.finish(Digest::sha256_of(&small));
    let other = chunked_client(&host);
    // its ping comes first
    other
        .blob_exists(&repo, &Digest::sha256_of(b""))
        .await
        .unwrap();
    let before = proxy.request_count();
    assert_eq!(
        other.push_growing_blob(&repo, &blob).await.unwrap(),
        BlobOutcome::Existing
    );
    let again = &proxy.requests()[before..];
    assert!(
        again.iter().all(|r| r.method == "HEAD"),
        "an existing blob is only checked: {again:#?}"
    );
}

/// A blob of at most `UNASKED_MAX` bytes (a small `RUN`'s layer, a config) goes up
/// without a `HEAD` first, whether it grew or was whole: `POST`, `PUT`. Sent again by
/// the same client, it costs no request; by another, it is simply sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_blob_is_sent_without_asking_first() {
    let (_reg, proxy, host, dir) = behind_proxy(Faults::none());
    let client = chunked_client(&host);
    let repo = RepoRef::new(&host, "grow/small");
    let methods = |from: usize| -> Vec<String> {
        proxy.requests()[from..]
            .iter()
            .map(|r| r.method.clone())
            .collect()
    };
    let data = kiln_testkit::noise::bytes(kiln_registry::UNASKED_MAX as usize, 12);
    let (mut w, blob) = writer(dir.path());
    w.write_all(&data).unwrap();
    w.finish(Digest::sha256_of(&data));
    // the client's ping comes first
    client
        .blob_exists(&repo, &Digest::sha256_of(b""))
        .await
        .unwrap();
    let before = proxy.request_count();
    assert_eq!(
        client.push_growing_blob(&repo, &blob).await.unwrap(),
        BlobOutcome::Uploaded
    );
    assert_eq!(methods(before), ["POST", "PUT"]);
    fetched(&client, &repo, &data, dir.path()).await;

    let whole = kiln_registry::BlobToPush {
        descriptor: octets(&data),
        source: kiln_registry::BlobSource::Bytes(data.clone().into()),
        mount_from: None,
    };
    let before = proxy.request_count();
    assert_eq!(
        client.push_blob(&repo, &whole).await.unwrap(),
        BlobOutcome::Existing
    );
    assert_eq!(methods(before), Vec::<String>::new());

    let other = chunked_client(&host);
    other
        .blob_exists(&repo, &Digest::sha256_of(b""))
        .await
        .unwrap();
    let before = proxy.request_count();
    assert_eq!(
        other.push_blob(&repo, &whole).await.unwrap(),
        BlobOutcome::Uploaded
    );
    assert_eq!(methods(before), ["POST", "PUT"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_refusing_chunks_gets_the_finished_blob_in_one_put() {
    let refuse = FailRule::status(405, usize::MAX).matching(Some("PATCH"), None);
    let (_reg, proxy, host, dir) = behind_proxy(Faults::none().fail(refuse));
    let client = chunked_client(&host);
    let repo = RepoRef::new(&host, "refuse/app");
    let data = kiln_testkit::noise::bytes(3 * CHUNK as usize + 99, 9);
    let (mut w, blob) = writer(dir.path());
    let upload = tokio::spawn({
        let (client, repo) = (client.clone(), repo.clone());
        async move { client.push_growing_blob(&repo, &blob).await }
    });
    let written = data.clone();
    let proxy = tokio::task::spawn_blocking(move || {
        // A chunk is offered (and refused) while the blob is still growing.
        w.write_all(&written[..2 * CHUNK as usize]).unwrap();
        wait_for_log(&proxy, "a refused PATCH", |log| {
            log.iter()
                .any(|r| r.method == "PATCH" && r.fault == Some("fail"))
        });
        w.write_all(&written[2 * CHUNK as usize..]).unwrap();
        w.finish(Digest::sha256_of(&written));
        proxy
    })
    .await
    .unwrap();

    assert_eq!(upload.await.unwrap().unwrap(), BlobOutcome::Uploaded);
    let log = proxy.requests();
    assert!(
        log.iter()
            .any(|r| r.method == "PATCH" && r.fault == Some("fail")),
        "the PATCH was refused: {log:#?}"
    );
    assert!(
        log.iter().any(|r| r.method == "PUT" && r.status == 201),
        "{log:#?}"
    );
    fetched(&client, &repo, &data, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_blob_fails_its_upload() {
    let reg = Registry::start_plain();
    let host = reg.host_port();
    let dir = tempfile::tempdir().unwrap();
    let client = chunked_client(&host);
    let repo = RepoRef::new(&host, "abandon/app");
    let (mut w, blob) = writer(dir.path());
    let upload = tokio::spawn({
        let (client, repo) = (client.clone(), repo.clone());
        async move { client.push_growing_blob(&repo, &blob).await }
    });
    let data = kiln_testkit::noise::bytes(2 * CHUNK as usize, 10);
    tokio::task::spawn_blocking(move || {
        w.write_all(&data).unwrap();
        w.abandon("the step failed");
    })
    .await
    .unwrap();
    let err = upload.await.unwrap().unwrap_err().to_string();
    assert!(
        err.contains("the step failed") && err.contains("abandon/app"),
        "{err}"
    );

    // A writer dropped without an end abandons too.
    let (w, blob) = writer(dir.path());
    drop(w);
    let err = client
        .push_growing_blob(&repo, &blob)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("stopped before the end"), "{err}");
}

/// A blob this client (or a clone) saw the registry accept is not asked about again
/// when the final push puts the image's blobs in place; another client still asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_this_client_uploaded_is_not_checked_again() {
    let (_reg, proxy, host, dir) = behind_proxy(Faults::none());
    let client = chunked_client(&host);
    let repo = RepoRef::new(&host, "grow/known");
    let data = kiln_testkit::noise::bytes(2 * CHUNK as usize + 99, 11);
    let (mut w, blob) = writer(dir.path());
    w.write_all(&data).unwrap();
    w.finish(Digest::sha256_of(&data));
    assert_eq!(
        client.push_growing_blob(&repo, &blob).await.unwrap(),
        BlobOutcome::Uploaded
    );
    let to_push = kiln_registry::BlobToPush {
        descriptor: octets(&data),
        source: kiln_registry::BlobSource::Bytes(data.clone().into()),
        mount_from: None,
    };
    let clone = client.with_progress(kiln_registry::ProgressHook::new(|_| {}));
    let before = proxy.request_count();
    assert_eq!(
        clone.push_blob(&repo, &to_push).await.unwrap(),
        BlobOutcome::Existing
    );
    let asked = &proxy.requests()[before..];
    assert!(asked.is_empty(), "asked again: {asked:#?}");

    // Another repository, or another client, is asked.
    let other_repo = RepoRef::new(&host, "grow/elsewhere");
    let before = proxy.request_count();
    assert_eq!(
        client.push_blob(&other_repo, &to_push).await.unwrap(),
        BlobOutcome::Uploaded
    );
    assert_eq!(
        chunked_client(&host)
            .push_blob(&repo, &to_push)
            .await
            .unwrap(),
        BlobOutcome::Existing
    );
    let asked = &proxy.requests()[before..];
    assert_eq!(
        asked.iter().filter(|r| r.method == "HEAD").count(),
        2,
        "{asked:#?}"
    );
}

/// Without a chunk size in the options, an upload behind its writer sends everything
/// written so far in one `PATCH` (up to `STREAM_CHUNK_MAX`), not one per
/// `STREAM_CHUNK`: fewer round trips when the network is the bottleneck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_behind_its_writer_sends_what_is_written_in_one_patch() {
    let (reg, proxy, host, dir) = behind_proxy(Faults::none());
    let client = Client::new(options(&host, true, None, None));
    let repo = RepoRef::new(&host, "grow/behind");
    let chunk = kiln_registry::STREAM_CHUNK as usize;
    let data = kiln_testkit::noise::bytes(3 * chunk + chunk / 2 + 17, 12);
    let (mut w, blob) = writer(dir.path());
    // three and a half chunks written before the upload starts
    w.write_all(&data[..3 * chunk + chunk / 2]).unwrap();
    let upload = tokio::spawn({
        let (client, repo) = (client.clone(), repo.clone());
        async move { client.push_growing_blob(&repo, &blob).await }
    });
    let written = data.clone();
    let proxy = tokio::task::spawn_blocking(move || {
        wait_for_log(&proxy, "the first PATCH", |log| patches_accepted(log) == 1);
        w.write_all(&written[3 * chunk + chunk / 2..]).unwrap();
        w.finish(Digest::sha256_of(&written));
        proxy
    })
    .await
    .unwrap();
    assert_eq!(upload.await.unwrap().unwrap(), BlobOutcome::Uploaded);
    let log = proxy.requests();
    assert_eq!(
        patches_accepted(&log),
        1,
        "what was written went in one PATCH: {log:#?}"
    );
    stored(&reg, "grow/behind", &data, dir.path()).await;
}
