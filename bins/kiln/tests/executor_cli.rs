//! The executor command line end to end: kaniko's flags, exit codes, log
//! formats, and the binary answering to the name `executor`.

use std::path::Path;
use std::process::Command;

mod common;
use common::{kiln, run, text};

/// A context with one file and a `FROM scratch` Dockerfile.
fn context(dir: &Path, dockerfile: &str) {
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(dir.join("hello.txt"), "hello\n").unwrap();
}

#[test]
fn builds_into_an_oci_layout_and_writes_the_digest_file() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    context(
        &ctx,
        "FROM scratch\nCOPY hello.txt /hello.txt\nCMD [\"/hello\"]\n",
    );
    let layout = dir.path().join("layout");
    let digest_file = dir.path().join("digest");
    let out = run(
        Path::new(kiln()),
        &[
            "build",
            "-c",
            ctx.to_str().unwrap(),
            "--no-push",
            &format!("--oci-layout-path={}", layout.display()),
            "--digest-file",
            digest_file.to_str().unwrap(),
            "--kaniko-dir",
            dir.path().join("work").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let log = text(&out);
    assert!(
        log.contains("[stage 1/1] STEP 2/3: COPY hello.txt /hello.txt"),
        "{log}"
    );
    let digest = std::fs::read_to_string(&digest_file).unwrap();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert!(
        log.contains(digest.trim()),
        "summary names the digest: {log}"
    );
    // skopeo reads the layout and agrees on the digest.
    let inspect = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}", layout.display()))
        .output()
        .expect("skopeo (run .ci/install-deps)");
    assert!(inspect.status.success(), "{}", text(&inspect));
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(v["Digest"], digest.trim());
    // As BuildKit: an image built on scratch gets the default PATH.
    assert_eq!(
        v["Env"],
        serde_json::json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    context(dir.path(), "FROM scratch\nCOPY hello.txt /\n");
    let out = run(
        Path::new(kiln()),
        &[
            "build",
            "--context",
            dir.path().to_str().unwrap(),
            "--no-push",
            "--log-format=json",
            "--kaniko-dir",
            dir.path().join(".work").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["instruction"] == "COPY hello.txt /" && l["level"] == "INFO"),
        "{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["digest"].is_string() && l["layers"] == 1),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2_and_name_the_flag() {
    let out = run(Path::new(kiln()), &["build", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--no-such-flag"));
    let out = run(Path::new(kiln()), &["build", "--context", "/tmp"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no destination and no --no-push"
    );
    assert!(text(&out).contains("--destination"));
}

#[test]
fn a_failing_step_exits_1_naming_the_step_and_line() {
    let dir = tempfile::tempdir().unwrap();
    context(dir.path(), "FROM scratch\nCOPY missing.txt /\n");
    let out = run(
        Path::new(kiln()),
        &[
            "build",
            "--context",
            dir.path().to_str().unwrap(),
            "--no-push",
            "--kaniko-dir",
            dir.path().join(".work").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let log = text(&out);
    assert!(
        log.contains("Dockerfile:2") && log.contains("missing.txt"),
        "{log}"
    );
}

#[test]
fn installed_as_executor_it_takes_build_flags_directly() {
    let dir = tempfile::tempdir().unwrap();
    let executor = dir.path().join("executor");
    std::os::unix::fs::symlink(kiln(), &executor).unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    context(&ctx, "FROM scratch\nCOPY hello.txt /\n");
    let out = run(
        &executor,
        &[
            "--context",
            ctx.to_str().unwrap(),
            "--dockerfile",
            ctx.join("Dockerfile").to_str().unwrap(),
            "--no-push",
            "--kaniko-dir",
            dir.path().join("work").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&executor, &["version"]);
    assert!(text(&out).starts_with("kiln "));
}
