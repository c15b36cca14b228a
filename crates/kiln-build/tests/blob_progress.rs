//! Blob progress events: a build pushing a base with a multi-MiB layer to a real
//! registry, then a build pulling and unpacking it, report each blob's transfer as
//! `BlobProgress` events that grow and end at the blob's size.

mod support;

use std::collections::BTreeMap;

use kiln_build::{BuildEvent, Transfer};
use support::{Fixture, Recorder, run_tokio};

const BIG: usize = 3 * 1024 * 1024 + 7;

/// The progress events of `transfer`, by digest, in order: (done, total).
fn progress(recorder: &Recorder, transfer: Transfer) -> BTreeMap<String, Vec<(u64, u64)>> {
    let mut out: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for event in recorder.0.lock().unwrap().iter() {
        if let BuildEvent::BlobProgress {
            transfer: t,
            digest,
            done,
            total,
        } = event
            && *t == transfer
        {
            out.entry(digest.clone())
                .or_default()
                .push((*done, total.expect("blob sizes are known")));
        }
    }
    out
}

/// Every blob's events grow and end at its size; the big layer's first one is partial.
fn check(events: &BTreeMap<String, Vec<(u64, u64)>>, what: &str) {
    assert!(!events.is_empty(), "no {what} progress");
    for (digest, seq) in events {
        assert!(
            seq.windows(2).all(|w| w[0].0 <= w[1].0),
            "{what} {digest}: {seq:?}"
        );
        let (done, total) = *seq.last().unwrap();
        assert_eq!(done, total, "{what} {digest} did not end complete: {seq:?}");
    }
    let big = events
        .values()
        .find(|seq| seq[0].1 > BIG as u64 / 2)
        .unwrap_or_else(|| panic!("no {what} progress for the big layer: {events:?}"));
    assert!(
        big[0].0 < big[0].1,
        "{what}: the first event of the big layer: {big:?}"
    );
}

#[test]
fn pulls_and_pushes_report_blob_progress() {
    let registry = kiln_testkit::Registry::start_plain();
    let base_ref = format!("{}/progress/base:v1", registry.host_port());
    let base = Fixture::new(
        "FROM scratch\nADD rootfs.tar /\nCOPY big.bin /big.bin\n",
        &[("big.bin", &kiln_testkit::noise::text(BIG, 0))],
    );
    let mut options = base.options();
    options.no_push = false;
    options.registry.insecure = true;
    options.destinations = vec![base_ref.clone()];
    let pushing = Recorder::default();
    run_tokio(kiln_build::build(&options, &pushing)).unwrap();
    let pushed = progress(&pushing, Transfer::Push);
    check(&pushed, "push");
    // Config and both layers were uploaded.
    assert_eq!(pushed.len(), 3, "{pushed:?}");

    let fx = Fixture::new(
        &format!("FROM {base_ref}\nRUN wc -c /big.bin > /size\n"),
        &[],
    );
    let mut options = fx.options();
    options.registry.insecure_pull = true;
    let pulling = Recorder::default();
    run_tokio(kiln_build::build(&options, &pulling)).unwrap();
    let pulled = progress(&pulling, Transfer::Pull);
    check(&pulled, "pull");
    // Both layers, and the same digests as pushed.
    assert_eq!(pulled.len(), 2, "{pulled:?}");
    assert!(pulled.keys().all(|d| pushed.contains_key(d)));
}
