//! Uploading a blob while it is written (`Client::push_growing_blob`) against a real
//! docker-registry behind the testkit's proxy, whose request log shows what was sent
//! when, and whose storage shows what arrived: bytes leave before the writer ends (in
//! one streamed `PATCH`, or in chunks of a set size), a cut stream is sent again, a
//! registry refusing `PATCH` still gets the blob whole, an abandoned blob fails the
//! upload, a blob the registry holds is not sent again unless it is small enough that
//! asking costs as much as sending.

mod common;

use std::io::Write;

use common::*;
use kiln_oci::{Descriptor, Digest, MediaType};
use kiln_registry::{BlobOutcome, Client, GrowingBlobWriter, RepoRef, growing_blob};
use kiln_testkit::proxy::ProxiedRequest;
use kiln_testkit::{CutRule, FailRule, FaultProxy, Faults, Registry};

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

/// `client` uploads `blob` into `repo` in the background, while the test writes it.
fn spawn_upload(
    client: &Client,
    repo: &RepoRef,
    blob: kiln_registry::GrowingBlob,
) -> tokio::task::JoinHandle<Result<BlobOutcome, kiln_registry::Error>> {
    let (client, repo) = (client.clone(), repo.clone());
    tokio::spawn(async move { client.push_growing_blob(&repo, &blob).await })
}

/// Whether a `PATCH` in `log` met the proxy's `fault` (`"fail"`, `"cut"`).
fn patch_met(log: &[ProxiedRequest], fault: &str) -> bool {
    log.iter()
        .any(|r| r.method == "PATCH" && r.fault == Some(fault))
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
    let upload = spawn_upload(&client, &repo, blob);

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
    let upload = spawn_upload(&client, &repo, blob);
    let written = data.clone();
    let proxy = tokio::task::spawn_blocking(move || {
        // A chunk is offered (and refused) while the blob is still growing.
        w.write_all(&written[..2 * CHUNK as usize]).unwrap();
        wait_for_log(&proxy, "a refused PATCH", |log| patch_met(log, "fail"));
        w.write_all(&written[2 * CHUNK as usize..]).unwrap();
        w.finish(Digest::sha256_of(&written));
        proxy
    })
    .await
    .unwrap();

    assert_eq!(upload.await.unwrap().unwrap(), BlobOutcome::Uploaded);
    let log = proxy.requests();
    assert!(patch_met(&log, "fail"), "the PATCH was refused: {log:#?}");
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
    let upload = spawn_upload(&client, &repo, blob);
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

/// Bytes the registry itself holds of the uploads in progress to `repository` (the
/// `data` files under its storage's `_uploads`).
fn bytes_received(reg: &Registry, repository: &str) -> u64 {
    let uploads = reg
        .storage_dir()
        .join("docker/registry/v2/repositories")
        .join(repository)
        .join("_uploads");
    std::fs::read_dir(uploads)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|upload| std::fs::metadata(upload.path().join("data")).ok())
        .map(|data| data.len())
        .sum()
}

/// Waits until the registry holds at least `bytes` of uploads to `repository`.
fn wait_for_bytes(reg: &Registry, repository: &str, bytes: u64) {
    let start = std::time::Instant::now();
    while bytes_received(reg, repository) < bytes {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the registry never held {bytes} bytes of {repository} (holds {})",
            bytes_received(reg, repository)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Without a chunk size in the options, a blob longer than `STREAM_CHUNK` goes up in
/// one `PATCH` whose body follows the writer: the registry holds what was written while
/// the writer is still going, however it writes, and the upload closes with an empty
/// `PUT` once it ends. (One `PATCH` per stretch of writing, before: two here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_blob_streams_in_one_patch_that_follows_its_writer() {
    let (reg, proxy, host, dir) = behind_proxy(Faults::none());
    let client = Client::new(options(&host, true, None, None));
    let repo = RepoRef::new(&host, "grow/stream");
    let chunk = kiln_registry::STREAM_CHUNK as usize;
    let (first, second) = (3 * chunk + chunk / 2, 6 * chunk);
    let data = kiln_testkit::noise::bytes(second + 17, 12);
    let (mut w, blob) = writer(dir.path());
    w.write_all(&data[..first]).unwrap();
    let upload = spawn_upload(&client, &repo, blob);
    let written = data.clone();
    let proxy = tokio::task::spawn_blocking(move || {
        // The registry's buffered writer may hold back its last few KiB.
        let held_back = 64 * 1024;
        wait_for_bytes(&reg, "grow/stream", (first - held_back) as u64);
        w.write_all(&written[first..second]).unwrap();
        wait_for_bytes(&reg, "grow/stream", (second - held_back) as u64);
        assert!(
            !proxy.requests().iter().any(|r| r.method == "PUT"),
            "nothing may be closed before the blob ends"
        );
        w.write_all(&written[second..]).unwrap();
        w.finish(Digest::sha256_of(&written));
        (proxy, reg)
    })
    .await
    .unwrap();
    let (proxy, reg) = proxy;
    assert_eq!(upload.await.unwrap().unwrap(), BlobOutcome::Uploaded);
    let log = proxy.requests();
    let methods: Vec<&str> = log.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(
        methods.iter().filter(|m| **m == "PATCH").count(),
        1,
        "one streamed PATCH: {log:#?}"
    );
    assert_eq!(patches_accepted(&log), 1, "{log:#?}");
    assert_eq!(methods.last(), Some(&"PUT"), "{log:#?}");
    stored(&reg, "grow/stream", &data, dir.path()).await;
}

/// A streamed upload whose writer abandons the blob halfway fails with the writer's
/// reason (its `PATCH` is aborted), and the registry is left without the blob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_blob_fails_its_streamed_upload() {
    let reg = Registry::start_plain();
    let host = reg.host_port();
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(options(&host, true, None, None));
    let repo = RepoRef::new(&host, "abandon/stream");
    let (mut w, blob) = writer(dir.path());
    let upload = spawn_upload(&client, &repo, blob);
    let chunk = kiln_registry::STREAM_CHUNK as usize;
    let data = kiln_testkit::noise::bytes(2 * chunk, 13);
    let reg = tokio::task::spawn_blocking(move || {
        w.write_all(&data).unwrap();
        // the stream is under way when the writer gives up
        wait_for_bytes(&reg, "abandon/stream", chunk as u64);
        w.abandon("the step failed");
        reg
    })
    .await
    .unwrap();
    let err = upload.await.unwrap().unwrap_err().to_string();
    assert!(
        err.contains("the step failed") && err.contains("abandon/stream"),
        "{err}"
    );
    let err = plain_client(&host)
        .fetch_blob(
            &repo,
            &octets(&kiln_testkit::noise::bytes(2 * chunk, 13)),
            &dir.path().join("fetched"),
        )
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    drop(reg);
}

/// A streamed `PATCH` cut halfway (the registry gets part of the body and a broken
/// connection, kiln no answer) is retried from a fresh session (here the blob is
/// finished by then, so it goes in one `PUT`), and the registry ends up with the whole
/// blob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_patch_cut_halfway_is_sent_again_whole() {
    let cut = CutRule::first(1, 3 << 20).matching(Some("PATCH"), Some("/blobs/uploads/"));
    let (reg, proxy, host, dir) = behind_proxy(Faults::none().cut(cut));
    let client = Client::new(options(&host, true, None, None));
    let repo = RepoRef::new(&host, "grow/cut");
    let chunk = kiln_registry::STREAM_CHUNK as usize;
    let data = kiln_testkit::noise::bytes(2 * chunk + 5, 14);
    let (mut w, blob) = writer(dir.path());
    let upload = spawn_upload(&client, &repo, blob);
    let written = data.clone();
    tokio::task::spawn_blocking(move || {
        w.write_all(&written).unwrap();
        w.finish(Digest::sha256_of(&written));
    })
    .await
    .unwrap();
    assert_eq!(upload.await.unwrap().unwrap(), BlobOutcome::Uploaded);
    let log = proxy.requests();
    assert!(patch_met(&log, "cut"), "the first PATCH was cut: {log:#?}");
    let cut_at = log.iter().position(|r| r.fault == Some("cut")).unwrap();
    assert!(
        log[cut_at..].iter().any(|r| r.method == "POST")
            && log
                .last()
                .is_some_and(|r| r.method == "PUT" && r.status == 201),
        "sent again from a fresh session: {log:#?}"
    );
    stored(&reg, "grow/cut", &data, dir.path()).await;
}
