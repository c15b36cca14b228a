//! Peak memory stays bounded whatever the layer size.
//!
//! The test re-runs itself as a child process (so other tests' allocations do
//! not count) which encodes a layer holding a sparse 2 GiB file twice (plain
//! and gzip level 1, 2 threads), then applies the gzip blob onto a rootfs, and
//! reports its peak RSS (`VmHWM` from /proc/self/status). The parent asserts
//! it stays under 64 MiB.

mod common;

use std::path::Path;
use std::process::Command;

use common::{meta, p};
use kiln_layer::{
    ApplyOptions, Compression, EncodeOptions, Entry, Expected, apply_layer, encode_layer,
};

const CHILD_ENV: &str = "KILN_LAYER_MEMORY_CHILD_REPORT";
const SIZE: u64 = 2 << 30;

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
    let source = dir.path().join("sparse");
    std::fs::File::create(&source)
        .unwrap()
        .set_len(SIZE)
        .unwrap();
    let entries = || {
        vec![
            Entry::dir(p("data"), meta(0o755, 0, 0)),
            Entry::file(p("data/big"), &source, meta(0o644, 0, 0)),
        ]
    };

    let plain = EncodeOptions {
        compression: Compression::None,
        ..Default::default()
    };
    let (encoded, _) = encode_layer(entries(), &plain, std::io::sink()).unwrap();
    assert!(encoded.size > SIZE);

    let gzip = EncodeOptions {
        compression: Compression::Gzip { level: 1 },
        threads: Some(2),
        ..Default::default()
    };
    let blob_path = dir.path().join("layer.tar.gz");
    let file = std::fs::File::create(&blob_path).unwrap();
    let (gz, _) = encode_layer(entries(), &gzip, std::io::BufWriter::new(file)).unwrap();
    assert_eq!(gz.diff_id, encoded.diff_id);

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
    assert_eq!(applied.stats.bytes, SIZE);
    assert_eq!(
        std::fs::metadata(root.join("data/big")).unwrap().len(),
        SIZE
    );
    std::fs::write(report, vm_hwm_kib().to_string()).unwrap();
}

#[test]
fn two_gib_layer_encodes_and_applies_within_64_mib_peak_rss() {
    if let Some(report) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&report));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("vmhwm");
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "two_gib_layer_encodes_and_applies_within_64_mib_peak_rss",
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
        "peak RSS {peak_kib} KiB for a 2 GiB layer"
    );
}
