//! `manifest_list::create` over two single-platform pushes (amd64 and arm64 busybox images
//! in two repositories of a real registry): skopeo reads the index, and
//! `skopeo copy --override-arch arm64` picks the arm64 image, from the registry and from
//! the OCI layout `--oci-layout-path` writes. Sources on another registry are copied to
//! the destination first (`skopeo copy --all` from there works with the source gone).
//! An index as a source, and two sources of one platform, are refused.

use std::process::Command;

use kiln_build::manifest_list;
use kiln_build::{BuildOptions, ContextSource};
use kiln_testkit::foreign::arm64_busybox_image;
use kiln_testkit::{FixtureImage, Registry};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new(kiln_testkit::tools::skopeo())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn options(host: &str) -> BuildOptions {
    // Registry flags only: manifest create builds nothing, the context is never read.
    let mut o = BuildOptions::new(ContextSource::Dir(std::env::temp_dir()));
    o.registry.insecure = true;
    o.registry.insecure_pull = true;
    o.registry.insecure_registries = vec![host.to_owned()];
    o
}

#[test]
fn an_index_over_two_single_platform_pushes_serves_each_platform() {
    let registry = Registry::start_plain();
    let host = registry.host_port();
    let amd64 = FixtureImage::busybox();
    let arm64 = arm64_busybox_image();
    amd64.push(&registry, "jobs/amd64:1", None).unwrap();
    arm64.push(&registry, "jobs/arm64:1", None).unwrap();

    let sources = [
        format!("{host}/jobs/amd64:1"),
        format!("{host}/jobs/arm64:1"),
    ];
    let dest = format!("{host}/app:multi");
    let outcome = runtime()
        .block_on(manifest_list::create(
            &options(&host),
            &sources,
            std::slice::from_ref(&dest),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome.platforms, ["linux/amd64", "linux/arm64/v8"]);

    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{dest}"),
    ]);
    assert_eq!(
        raw, outcome.bytes,
        "the registry serves the index as pushed"
    );
    assert_eq!(
        kiln_testkit::image::sha256_digest(&raw),
        outcome.digest.to_string()
    );
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    let seen: Vec<(String, String, String)> = manifests
        .iter()
        .map(|m| {
            (
                m["digest"].as_str().unwrap().to_owned(),
                m["platform"]["architecture"].as_str().unwrap().to_owned(),
                m["platform"]["variant"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (amd64.manifest_digest(), "amd64".into(), String::new()),
            (arm64.manifest_digest(), "arm64".into(), "v8".into()),
        ]
    );

    // The per-platform manifests were copied into the destination repository.
    for image in [&amd64, &arm64] {
        let by_digest = skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{host}/app@{}", image.manifest_digest()),
        ]);
        assert_eq!(by_digest, image.manifest);
    }

    let layout = tempfile::tempdir().unwrap();
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--override-arch",
        "arm64",
        &format!("docker://{dest}"),
        &format!("oci:{}:picked", layout.path().display()),
    ]);
    let picked: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.path().join("index.json")).unwrap()).unwrap();
    let picked_manifest = picked["manifests"][0]["digest"].as_str().unwrap();
    let picked_bytes = std::fs::read(
        layout
            .path()
            .join("blobs/sha256")
            .join(picked_manifest.trim_start_matches("sha256:")),
    )
    .unwrap();
    let picked_manifest: serde_json::Value = serde_json::from_slice(&picked_bytes).unwrap();
    let arm64_manifest: serde_json::Value = serde_json::from_slice(&arm64.manifest).unwrap();
    assert_eq!(
        picked_manifest["config"]["digest"], arm64_manifest["config"]["digest"],
        "--override-arch arm64 must pick the arm64 image"
    );

    let (media_type, digest, bytes) = runtime()
        .block_on(manifest_list::inspect(&options(&host), &dest))
        .unwrap();
    assert!(media_type.is_index());
    assert_eq!(
        (digest, bytes),
        (outcome.digest.clone(), outcome.bytes.clone())
    );

    // The same index into an OCI layout only: skopeo picks the arm64 image from it.
    let layout_dir = tempfile::tempdir().unwrap();
    let mut layout_options = options(&host);
    layout_options.oci_layout_path = Some(layout_dir.path().join("multi"));
    let in_layout = runtime()
        .block_on(manifest_list::create(&layout_options, &sources, &[]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(in_layout.digest, outcome.digest);
    let layout_index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout_dir.path().join("multi/index.json")).unwrap())
            .unwrap();
    assert_eq!(
        layout_index["manifests"][0]["digest"],
        outcome.digest.to_string()
    );
    let from_layout = tempfile::tempdir().unwrap();
    skopeo(&[
        "copy",
        "--override-arch",
        "arm64",
        &format!("oci:{}:latest", layout_dir.path().join("multi").display()),
        &format!("oci:{}:picked", from_layout.path().display()),
    ]);
    let picked: serde_json::Value =
        serde_json::from_slice(&std::fs::read(from_layout.path().join("index.json")).unwrap())
            .unwrap();
    let picked_digest = picked["manifests"][0]["digest"].as_str().unwrap();
    assert_eq!(picked_digest, arm64.manifest_digest());

    let err = runtime()
        .block_on(manifest_list::create(
            &options(&host),
            std::slice::from_ref(&dest),
            &[format!("{host}/app:again")],
        ))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already an index") && err.contains(&dest),
        "{err}"
    );
}

#[test]
fn a_repeated_platform_is_refused_and_nothing_is_pushed() {
    let registry = Registry::start_plain();
    let host = registry.host_port();
    let amd64 = FixtureImage::busybox();
    amd64.push(&registry, "jobs/a:1", None).unwrap();
    amd64.push(&registry, "jobs/b:1", None).unwrap();
    let dest = format!("{host}/app:multi");
    let err = runtime()
        .block_on(manifest_list::create(
            &options(&host),
            &[format!("{host}/jobs/a:1"), format!("{host}/jobs/b:1")],
            std::slice::from_ref(&dest),
        ))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("linux/amd64") && err.contains("jobs/a:1") && err.contains("jobs/b:1"),
        "{err}"
    );
    let out = Command::new(kiln_testkit::tools::skopeo())
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{dest}"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "an index was pushed despite the error"
    );
}

#[test]
fn sources_on_another_registry_are_copied_before_the_index_is_pushed() {
    let jobs = Registry::start_plain();
    let target = Registry::start_plain();
    let (jobs_host, target_host) = (jobs.host_port(), target.host_port());
    let amd64 = FixtureImage::busybox();
    let arm64 = arm64_busybox_image();
    amd64.push(&jobs, "ci/amd64:1", None).unwrap();
    arm64.push(&jobs, "ci/arm64:1", None).unwrap();
    let mut o = options(&jobs_host);
    o.registry.insecure_registries.push(target_host.clone());
    let dest = format!("{target_host}/release/app:1.0");
    let outcome = runtime()
        .block_on(manifest_list::create(
            &o,
            &[
                format!("{jobs_host}/ci/amd64:1"),
                format!("{jobs_host}/ci/arm64:1"),
            ],
            std::slice::from_ref(&dest),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{dest}"),
    ]);
    assert_eq!(raw, outcome.bytes);
    // Every manifest and blob now lives on the target registry: copy the whole index
    // from there with the jobs registry gone.
    drop(jobs);
    let copied = tempfile::tempdir().unwrap();
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{dest}"),
        &format!("oci:{}:all", copied.path().display()),
    ]);
    for image in [&amd64, &arm64] {
        let digest = image.manifest_digest();
        let blob = copied
            .path()
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        assert_eq!(std::fs::read(blob).unwrap(), image.manifest);
    }
}
