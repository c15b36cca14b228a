//! `--image-format` on the command line: bad values are usage errors naming
//! the flag; the digest file names the `--image-format` image while the OCI
//! layout holds the OCI form (checked with skopeo and kiln's blob store).

use std::path::Path;
use std::process::Command;

mod common;
use common::{kiln, run, text};

/// Builds `FROM scratch` + one COPY with `flags`, without pushing, into
/// `<dir>/layout`, writing `<dir>/digest`.
fn build(dir: &Path, flags: &[&str]) -> std::process::Output {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY hello.txt /\n").unwrap();
    std::fs::write(ctx.join("hello.txt"), "hello\n").unwrap();
    let mut args = vec![
        "build".to_string(),
        "--no-push".into(),
        format!("--context={}", ctx.display()),
        format!("--oci-layout-path={}", dir.join("layout").display()),
        format!("--digest-file={}", dir.join("digest").display()),
        format!("--kaniko-dir={}", dir.join("work").display()),
    ];
    args.extend(flags.iter().map(|f| f.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(Path::new(kiln()), &args)
}

/// `skopeo inspect --raw oci:LAYOUT:latest`.
fn layout_manifest(dir: &Path) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:latest", dir.join("layout").display()))
        .output()
        .expect("skopeo (run .ci/install-deps)");
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_bad_image_format_is_a_usage_error_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = build(dir.path(), &["--image-format=v2s2"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let log = text(&out);
    assert!(
        log.contains("\"--image-format\"") && log.contains("oci, docker"),
        "{log}"
    );
    assert!(!dir.path().join("layout").exists());
}

#[test]
fn the_digest_file_names_the_chosen_format_and_the_layout_stays_oci() {
    let dir = tempfile::tempdir().unwrap();
    let out = build(dir.path(), &["--image-format", "docker"]);
    assert!(out.status.success(), "{}", text(&out));
    let digest = std::fs::read_to_string(dir.path().join("digest")).unwrap();
    let layout = layout_manifest(dir.path());
    assert_eq!(
        layout["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        layout["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    // The digest file names the Docker manifest, kept in kiln's blob store:
    // the same config and layers under Docker media types.
    let docker_bytes = std::fs::read(
        dir.path()
            .join("work/blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    assert_eq!(kiln_testkit::image::sha256_digest(&docker_bytes), digest);
    let docker: serde_json::Value = serde_json::from_slice(&docker_bytes).unwrap();
    assert_eq!(
        docker["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        docker["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    assert_eq!(docker["config"]["digest"], layout["config"]["digest"]);
    assert_eq!(docker["layers"][0]["digest"], layout["layers"][0]["digest"]);
    assert!(
        text(&out).contains(&digest),
        "the summary names the digest-file digest: {}",
        text(&out)
    );

    // With OCI chosen, the layout holds the very image the digest file names.
    let dir = tempfile::tempdir().unwrap();
    let out = build(dir.path(), &["--image-format", "oci"]);
    assert!(out.status.success(), "{}", text(&out));
    let digest = std::fs::read_to_string(dir.path().join("digest")).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("layout/index.json")).unwrap())
            .unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
}

#[test]
fn the_docker_archive_is_the_same_in_both_formats() {
    // A docker-archive names no media types: with --reproducible the two
    // formats give the same bytes, while their manifests differ.
    let tarball = |format: &str| {
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("image.tar");
        let out = build(
            dir.path(),
            &[
                "--reproducible",
                &format!("--image-format={format}"),
                &format!("--tar-path={}", tar.display()),
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
        let digest = std::fs::read_to_string(dir.path().join("digest")).unwrap();
        (std::fs::read(tar).unwrap(), digest)
    };
    let (oci_tar, oci_digest) = tarball("oci");
    let (docker_tar, docker_digest) = tarball("docker");
    assert_ne!(oci_digest, docker_digest);
    assert!(oci_tar == docker_tar, "the archives differ");
}

#[test]
fn docker_format_with_zstd_fails_before_building() {
    let dir = tempfile::tempdir().unwrap();
    let out = build(dir.path(), &["--image-format=docker", "--compression=zstd"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let log = text(&out);
    assert!(
        log.contains("--image-format docker") && log.contains("--compression zstd"),
        "{log}"
    );
    assert!(!log.contains("STEP"), "nothing was built: {log}");
    assert!(!dir.path().join("layout").exists());
    assert!(!dir.path().join("digest").exists());
}
