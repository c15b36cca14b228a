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
    std::fs::write(base.join("big.bin"), kiln_testkit::noise::bytes(BIG, 0)).unwrap();
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

/// On a terminal (util-linux `script` gives kiln a pseudo-terminal), text logs get
/// the progress board: one line per blob, redrawn in place, ending complete.
#[test]
fn progress_board_on_a_terminal() {
    let registry = kiln_testkit::Registry::start_plain();
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    let base_ctx = context(&base, "FROM scratch\nCOPY big.bin /big.bin\n");
    std::fs::write(base.join("big.bin"), kiln_testkit::noise::bytes(BIG, 0)).unwrap();
    let base_ref = format!("{}/progress/tty:v1", registry.host_port());
    let work = dir.path().join("work");
    let args = [
        env!("CARGO_BIN_EXE_kiln"),
        "build",
        "-c",
        &base_ctx,
        "-d",
        &base_ref,
        "--insecure",
        "--log-format=text",
        "--kaniko-dir",
        work.to_str().unwrap(),
    ];
    // Every argument is a plain path or word: no quoting needed for `script -c`.
    assert!(args.iter().all(|a| !a.contains([' ', '\'', '"'])));
    let out = Command::new("/usr/bin/script")
        .args(["-q", "-e", "-c", &args.join(" "), "/dev/null"])
        .env_remove("RUST_LOG")
        .env("TERM", "xterm")
        .output()
        .expect("util-linux script (run .ci/install-deps)");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    let layer_line = regex_free_find(&screen, "pushing sha256:")
        .unwrap_or_else(|| panic!("no progress line on the terminal: {screen:?}"));
    assert!(layer_line.contains(" MB"), "{layer_line:?}");
    // The big layer's line reaches its size: `N.N/N.N MB` with both sides equal.
    assert!(
        screen.lines().any(|l| {
            l.split("pushing sha256:").nth(1).is_some_and(|rest| {
                let figures = rest.split_whitespace().nth(1).unwrap_or("");
                figures
                    .split_once('/')
                    .is_some_and(|(a, b)| a == b && a.parse::<f64>().is_ok_and(|v| v >= 3.0))
            })
        }),
        "{screen:?}"
    );
    // Redrawn in place: cursor-up sequences.
    assert!(
        screen.contains("\x1b[1A") || screen.contains("\x1b[2A"),
        "{screen:?}"
    );
}

/// The first line of `text` holding `needle`.
fn regex_free_find<'a>(text: &'a str, needle: &str) -> Option<&'a str> {
    text.lines().find(|l| l.contains(needle))
}
