//! Blob progress in the executor's logs: nothing when stderr is not a terminal
//! and the format is text (CI logs stay clean); JSON progress objects, the last
//! one complete, with `--log-format=json`.

use std::path::Path;
use std::process::{Command, Output};

const BIG: usize = 3 * 1024 * 1024;

fn kiln(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("running kiln");
    assert!(
        out.status.success(),
        "kiln {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Incompressible bytes (xorshift64), so the layer stays over 2 MiB gzipped.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn context(dir: &Path, dockerfile: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    dir.to_str().unwrap().to_string()
}

#[test]
fn progress_is_json_in_json_logs_and_absent_from_plain_logs() {
    let registry = kiln_testkit::Registry::start_plain();
    let base_ref = format!("{}/progress/base:v1", registry.host_port());
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");

    // Text logs, stderr captured (not a terminal): a push with no progress drawn.
    let base = dir.path().join("base");
    let base_ctx = context(
        &base,
        "FROM scratch\nADD rootfs.tar /\nCOPY big.bin /big.bin\n",
    );
    std::fs::write(base.join("rootfs.tar"), kiln_testkit::busybox::rootfs_tar()).unwrap();
    std::fs::write(base.join("big.bin"), noise(BIG)).unwrap();
    let pushed = kiln(&[
        "build",
        "-c",
        &base_ctx,
        "-d",
        &base_ref,
        "--insecure",
        "--log-format=text",
        "--kaniko-dir",
        work.to_str().unwrap(),
    ]);
    let log = String::from_utf8_lossy(&pushed.stderr);
    assert!(log.contains("pushed"), "{log}");
    assert!(!log.contains("pushing sha256:"), "{log}");
    assert!(!log.contains('\x1b'), "{log:?}");

    // JSON logs: the base's layers pulled, each reported, the last report complete.
    let ctx = context(
        &dir.path().join("child"),
        &format!("FROM {base_ref}\nRUN wc -c /big.bin\n"),
    );
    let built = kiln(&[
        "build",
        "-c",
        &ctx,
        "--no-push",
        "--insecure-pull",
        "--log-format=json",
        "--kaniko-dir",
        dir.path().join("work2").to_str().unwrap(),
    ]);
    let mut last: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for line in String::from_utf8_lossy(&built.stderr).lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        if v["transfer"] == "pull" {
            assert!(
                v["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("pulling sha256:"),
                "{line}"
            );
            let digest = v["digest"].as_str().unwrap().to_string();
            let (done, total) = (v["done"].as_u64().unwrap(), v["total"].as_u64().unwrap());
            if let Some((before, _)) = last.get(&digest) {
                assert!(*before <= done, "{line}");
            }
            last.insert(digest, (done, total));
        }
    }
    assert_eq!(last.len(), 2, "both base layers reported: {last:?}");
    assert!(last.values().all(|(done, total)| done == total), "{last:?}");
}
