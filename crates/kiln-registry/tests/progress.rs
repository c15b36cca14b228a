//! The progress hook against a real registry: pushes (monolithic and chunked) and
//! pulls report growing byte counts, at least once per MiB, and end at the blob's size.

mod common;

use std::sync::{Arc, Mutex};

use common::{options, target, test_image};
use kiln_registry::{BlobProgress, Client, Direction, ProgressHook, RepoRef};
use kiln_testkit::Registry;

const SIZE: usize = 5 * 1024 * 1024 + 123;

/// A hook that records every report.
fn recording_hook() -> (ProgressHook, Arc<Mutex<Vec<BlobProgress>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let hook = ProgressHook::new(move |p| sink.lock().unwrap().push(p.clone()));
    (hook, seen)
}

/// The reports for `digest` in `direction`: growing, ending at the size, and at least
/// one per MiB of the blob.
fn check_reports(seen: &[BlobProgress], direction: Direction, digest: &kiln_oci::Digest) {
    let reports: Vec<&BlobProgress> = seen
        .iter()
        .filter(|p| p.direction == direction && &p.digest == digest)
        .collect();
    assert!(
        reports.len() >= SIZE / (1024 * 1024),
        "{direction:?}: only {} reports: {reports:?}",
        reports.len()
    );
    assert!(reports.iter().all(|p| p.total == SIZE as u64));
    assert!(
        reports.windows(2).all(|w| w[0].done <= w[1].done),
        "{direction:?}: not growing: {reports:?}"
    );
    assert!(reports[0].done < SIZE as u64, "{reports:?}");
    assert_eq!(reports.last().unwrap().done, SIZE as u64);
}

async fn push_and_pull(chunk_size: Option<u64>) {
    let reg = Registry::start_plain();
    let host = reg.host_port();
    let dir = tempfile::tempdir().unwrap();
    let img = test_image(dir.path(), &[SIZE], 7, "amd64");
    let mut opts = options(&host, true, None, None);
    opts.chunk_size = chunk_size;
    let (hook, seen) = recording_hook();
    let client = Client::new(opts).with_progress(hook);
    client
        .push_image(&img.image, &[target(&host, "progress", "v1")])
        .await
        .unwrap();
    let layer = &img.layers[0].0;
    check_reports(&seen.lock().unwrap(), Direction::Push, &layer.digest);

    let dest = dir.path().join("pulled");
    client
        .fetch_blob(&RepoRef::new(&host, "progress"), layer, &dest)
        .await
        .unwrap();
    assert_eq!(fs_err::metadata(&dest).unwrap().len(), SIZE as u64);
    check_reports(&seen.lock().unwrap(), Direction::Pull, &layer.digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monolithic_push_and_pull_report_progress() {
    push_and_pull(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_push_reports_progress_across_chunks() {
    push_and_pull(Some(2 * 1024 * 1024)).await;
}

/// A client without a hook, and the hooked client's clones, share sessions; the hook
/// sees nothing of the plain client's transfers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_hooked_client_reports() {
    let reg = Registry::start_plain();
    let host = reg.host_port();
    let dir = tempfile::tempdir().unwrap();
    let img = test_image(dir.path(), &[SIZE], 8, "amd64");
    let plain = Client::new(options(&host, true, None, None));
    let (hook, seen) = recording_hook();
    let _hooked = plain.with_progress(hook);
    plain
        .push_image(&img.image, &[target(&host, "quiet", "v1")])
        .await
        .unwrap();
    assert!(seen.lock().unwrap().is_empty());
}
