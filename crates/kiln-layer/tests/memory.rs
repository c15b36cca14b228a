//! Peak memory stays bounded whatever the layer size.
//!
//! The test re-runs itself as a child process (so other tests' allocations do
//! not count) which encodes a layer holding a sparse 2 GiB file (gzip level
//! 1, then zstd level 3; 2 threads, to a file), then encodes and applies a
//! 512 MiB one onto a rootfs, then a plain 256 MiB one from its file (read
//! through mappings), and reports its peak RSS (`VmHWM` from
//! /proc/self/status). The parent asserts it stays under 64 MiB.

mod common;

use std::path::Path;
use std::process::Command;

use common::{meta, p};
use kiln_layer::{
    ApplyOptions, Compression, EncodeOptions, Entry, Expected, apply_layer, apply_layer_file,
    encode_layer,
};

const CHILD_ENV: &str = "KILN_LAYER_MEMORY_CHILD_REPORT";
const ENCODE_SIZE: u64 = 2 << 30;
const APPLY_SIZE: u64 = 512 << 20;
const PLAIN_APPLY_SIZE: u64 = 256 << 20;

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("needs /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM line in /proc/self/status")
}

fn child(report: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let sparse = |name: &str, size: u64| {
        let path = dir.path().join(name);
        std::fs::File::create(&path).unwrap().set_len(size).unwrap();
        path
    };
    let entries = |source: &Path| {
        vec![
            Entry::dir(p("data"), meta(0o755, 0, 0)),
            Entry::file(p("data/big"), source, meta(0o644, 0, 0)),
        ]
    };
    let gzip = EncodeOptions {
        compression: Compression::Gzip { level: 1 },
        threads: Some(2),
        ..Default::default()
    };

    // encode 2 GiB: tar + sha256 + parallel gzip + sha256 into a file
    let huge = sparse("huge", ENCODE_SIZE);
    let file = std::fs::File::create(dir.path().join("huge.tar.gz")).unwrap();
    let (encoded, _) = encode_layer(entries(&huge), &gzip, std::io::BufWriter::new(file)).unwrap();
    assert!(encoded.uncompressed_size > ENCODE_SIZE);

    // the same with zstd: tar thread, libzstd's workers and the write thread
    let zstd = EncodeOptions {
        compression: Compression::Zstd { level: 3 },
        threads: Some(2),
        ..Default::default()
    };
    let file = std::fs::File::create(dir.path().join("huge.tar.zst")).unwrap();
    let (encoded, _) = encode_layer(entries(&huge), &zstd, std::io::BufWriter::new(file)).unwrap();
    assert!(encoded.uncompressed_size > ENCODE_SIZE);

    // apply 512 MiB (the applier streams the same way; a smaller size keeps
    // the test from writing gigabytes to a shared disk)
    let big = sparse("big", APPLY_SIZE);
    let blob_path = dir.path().join("big.tar.gz");
    let file = std::fs::File::create(&blob_path).unwrap();
    let (gz, _) = encode_layer(entries(&big), &gzip, std::io::BufWriter::new(file)).unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let blob = std::io::BufReader::new(std::fs::File::open(&blob_path).unwrap());
    let expected = Expected {
        digest: Some(gz.digest.clone()),
        size: Some(gz.size),
        diff_id: Some(gz.diff_id.clone()),
    };
    let applied =
        apply_layer(blob, "big-layer", expected, &root, &ApplyOptions::default()).unwrap();
    assert_eq!(applied.stats.bytes, APPLY_SIZE);
    assert_eq!(
        std::fs::metadata(root.join("data/big")).unwrap().len(),
        APPLY_SIZE
    );
    std::fs::remove_dir_all(&root).unwrap();

    // apply a plain 256 MiB blob from its file: read through mappings, a
    // window at a time (mapped pages count in RSS too)
    let plain = EncodeOptions {
        compression: Compression::None,
        ..Default::default()
    };
    let mid = sparse("mid", PLAIN_APPLY_SIZE);
    let blob_path = dir.path().join("mid.tar");
    let file = std::fs::File::create(&blob_path).unwrap();
    let (tar, _) = encode_layer(entries(&mid), &plain, std::io::BufWriter::new(file)).unwrap();
    std::fs::create_dir(&root).unwrap();
    let expected = Expected {
        digest: Some(tar.digest.clone()),
        size: Some(tar.size),
        diff_id: Some(tar.diff_id.clone()),
    };
    let blob = std::fs::File::open(&blob_path).unwrap();
    let applied = apply_layer_file(
        &blob,
        "mid-layer",
        expected,
        &root,
        &ApplyOptions::default(),
    )
    .unwrap();
    assert_eq!(applied.stats.bytes, PLAIN_APPLY_SIZE);
    assert_eq!(
        std::fs::metadata(root.join("data/big")).unwrap().len(),
        PLAIN_APPLY_SIZE
    );
    std::fs::write(report, vm_hwm_kib().to_string()).unwrap();
}

#[test]
fn two_gib_layer_encodes_and_big_layer_applies_within_64_mib_peak_rss() {
    if let Some(report) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&report));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("vmhwm");
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "two_gib_layer_encodes_and_big_layer_applies_within_64_mib_peak_rss",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &report)
        .status()
        .unwrap();
    assert!(status.success(), "child failed: {status}");
    let peak_kib: u64 = std::fs::read_to_string(&report)
        .expect("child report")
        .parse()
        .unwrap();
    assert!(
        peak_kib < 64 * 1024,
        "peak RSS {peak_kib} KiB (2 GiB encoded, 512 MiB and 256 MiB applied)"
    );
}
