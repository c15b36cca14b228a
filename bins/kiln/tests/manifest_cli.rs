//! `kiln manifest create` / `inspect` end to end against a real docker-registry: two
//! single-platform pushes (amd64 and arm64 busybox) in other repositories become one index
//! that skopeo reads and that serves the arm64 image to an arm64 client.

use std::path::Path;
use std::process::Command;

mod common;
use common::{kiln, run, text};

#[test]
fn manifest_create_combines_two_pushes_and_inspect_prints_the_index() {
    let registry = kiln_testkit::Registry::start_plain();
    let host = registry.host_port();
    let amd64 = kiln_testkit::FixtureImage::busybox();
    let arm64 = kiln_testkit::foreign::arm64_busybox_image();
    amd64.push(&registry, "jobs/amd64:1", None).unwrap();
    arm64.push(&registry, "jobs/arm64:1", None).unwrap();
    let dest = format!("{host}/app:latest");
    let out = run(
        Path::new(kiln()),
        &[
            "manifest",
            "create",
            "--insecure",
            "--insecure-pull",
            "--destination",
            &dest,
            &format!("{host}/jobs/amd64:1"),
            &format!("{host}/jobs/arm64:1"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let digest = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    let raw = Command::new(kiln_testkit::tools::skopeo())
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{dest}"))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(kiln_testkit::image::sha256_digest(&raw.stdout), digest);
    let index: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    let arches: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"]);
    assert_eq!(index["manifests"][1]["digest"], arm64.manifest_digest());

    let out = run(
        Path::new(kiln()),
        &["manifest", "inspect", "--insecure-pull", &dest],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(out.stdout.strip_suffix(b"\n").unwrap(), raw.stdout);

    let out = run(
        Path::new(kiln()),
        &["manifest", "create", &format!("{host}/x:1")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--destination"), "{}", text(&out));
}
