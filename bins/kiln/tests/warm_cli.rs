//! `kiln warm` (kaniko's warmer) end to end against a real docker-registry:
//! images named with `-i` and the bases of a Dockerfile (`-d`, with
//! `--build-arg`) land in `--cache-dir`; a second run leaves them alone unless
//! `--force`; a build then reads its base from the cache dir with the registry
//! gone, and the cache-on log says hit or miss per step; the binary answers
//! to the name `warmer` too.

use std::path::Path;
use std::process::Command;

mod common;
use common::{kiln, run, text};

/// The ref names listed in the cache dir's index.json.
fn ref_names(cache_dir: &Path) -> Vec<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache_dir.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .map(String::from)
        .collect()
}

#[test]
fn warms_images_and_dockerfile_bases_then_a_build_reads_them_offline() {
    let registry = kiln_testkit::Registry::start_plain();
    let host = registry.host_port();
    let busybox = kiln_testkit::FixtureImage::busybox();
    busybox.push(&registry, "base/one:1", None).unwrap();
    busybox.push(&registry, "base/two:2", None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("ARG TAG=0\nFROM {host}/base/two:$TAG\nRUN echo built > /built\n"),
    )
    .unwrap();

    let cache_arg = format!("--cache-dir={}", cache_dir.display());
    let insecure = format!("--insecure-registry={host}");
    let one = format!("{host}/base/one:1");
    let dockerfile = ctx.join("Dockerfile");
    let out = run(
        Path::new(kiln()),
        &[
            "warm",
            "-i",
            &one,
            "-d",
            dockerfile.to_str().unwrap(),
            "--build-arg",
            "TAG=2",
            &cache_arg,
            &insecure,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let mut names = ref_names(&cache_dir);
    names.sort();
    assert_eq!(names, [one.clone(), format!("{host}/base/two:2")]);
    // The manifest is kept byte for byte: same digest as the registry's.
    let listed = text(&out);
    assert!(listed.contains(&busybox.manifest_digest()), "{listed}");
    // skopeo reads the cache dir as an OCI layout.
    let inspect = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:{one}", cache_dir.display()))
        .output()
        .expect("skopeo (run .ci/install-deps)");
    assert!(inspect.status.success(), "{}", text(&inspect));

    // Installed as `warmer`: the same command; already cached images are left alone.
    let warmer = dir.path().join("warmer");
    std::os::unix::fs::symlink(kiln(), &warmer).unwrap();
    let out = run(&warmer, &["--image", &one, &cache_arg, &insecure]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("already cached"), "{}", text(&out));
    let out = run(
        &warmer,
        &["--image", &one, &cache_arg, &insecure, "--force"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("already cached"), "{}", text(&out));

    // The registry goes away: the build reads its base from the cache dir
    // (with --cache=true, as kaniko).
    drop(registry);
    let layer_cache = format!("--cache-repo=oci:{}", dir.path().join("layers").display());
    let layout = dir.path().join("out");
    let out = run(
        Path::new(kiln()),
        &[
            "build",
            "-c",
            ctx.to_str().unwrap(),
            "--build-arg",
            "TAG=2",
            "--no-push",
            "--cache=true",
            &layer_cache,
            &cache_arg,
            &format!("--oci-layout-path={}", layout.display()),
            "--kaniko-dir",
            dir.path().join("work").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn warm_usage_errors_exit_2() {
    let out = run(Path::new(kiln()), &["warm", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--no-such-flag"), "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        Path::new(kiln()),
        &["warm", &format!("--cache-dir={}", dir.path().display())],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("nothing to warm"), "{}", text(&out));
}

#[test]
fn cache_hits_and_misses_are_logged_per_step_with_the_key() {
    let registry = kiln_testkit::Registry::start_plain();
    let host = registry.host_port();
    kiln_testkit::FixtureImage::busybox()
        .push(&registry, "base/bb:1", None)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {host}/base/bb:1\nRUN echo hi > /hi\n"),
    )
    .unwrap();
    let build = |work: &str, format: &str| {
        run(
            Path::new(kiln()),
            &[
                "build",
                "-c",
                ctx.to_str().unwrap(),
                "--destination",
                &format!("{host}/app:1"),
                "--insecure",
                "--insecure-pull",
                "--cache=true",
                "--log-format",
                format,
                "--kaniko-dir",
                dir.path().join(work).to_str().unwrap(),
            ],
        )
    };
    let out = build("w1", "text");
    assert!(out.status.success(), "{}", text(&out));
    let log = text(&out);
    assert!(
        log.contains("[stage 1/1] STEP 2/2: cache miss sha256:"),
        "{log}"
    );
    let out = build("w2", "json");
    assert!(out.status.success(), "{}", text(&out));
    let hit = String::from_utf8_lossy(&out.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&out.stdout).lines())
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["cache"] == "hit")
        .unwrap_or_else(|| panic!("no JSON cache hit line: {}", text(&out)));
    assert!(hit["key"].as_str().unwrap().starts_with("sha256:"), "{hit}");
    assert_eq!(hit["step"], "[stage 1/1] STEP 2/2");
}
