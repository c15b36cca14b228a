//! Builds for two platforms (linux/amd64 and linux/arm64) from one Dockerfile, against a
//! real registry holding an index over the testkit's amd64 busybox and Debian's arm64
//! busybox-static. The arm64 RUN steps run under Debian's qemu-aarch64-static, which kiln
//! registers in its own user namespace (`--emulator`): the host has no handler (checked,
//! loudly).
//!
//! The Dockerfile has a stage pinned to `$BUILDPLATFORM` (built once, shared) and a
//! per-platform stage whose RUN writes `uname -m`:
//! - `skopeo inspect --raw` shows the index with both platforms, `skopeo copy --all`
//!   copies it, and each platform's image (picked by skopeo) holds what its own
//!   architecture wrote;
//! - the shared stage's RUN ran exactly once (its output line is seen once);
//! - a second identical build with `--cache` runs no RUN and gives the same index;
//! - `--tar-path` with two platforms and a build without any emulation fail with clear
//!   errors and push nothing;
//! - buildah's own `--platform linux/amd64,linux/arm64 --manifest` build of the same
//!   Dockerfile (run in a user namespace of the test's with a private binfmt_misc
//!   registration, so the host's stays untouched) gives the same per-platform trees.

mod support;

use std::path::Path;

use kiln_build::{BuildOptions, ContextSource};
use kiln_testkit::foreign::{arm64_busybox_image, qemu_user_static};
use kiln_testkit::{FixtureImage, Registry};
use support::{Recorder, run_tokio, skopeo, umoci_unpack};

const DOCKERFILE: &str = "\
FROM --platform=$BUILDPLATFORM BASE AS tool
RUN echo tool-stage-ran && uname -m > /built-on
FROM BASE
ARG TARGETARCH
COPY --from=tool /built-on /tool-built-on
RUN echo final-stage-ran && uname -m > /arch && echo \"$TARGETARCH\" > /target-arch
";

/// A registry holding `base/busybox:multi`, an index over the amd64 and arm64 busybox
/// images, and a context whose Dockerfile builds on it.
struct Setup {
    registry: Registry,
    context: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        assert_eq!(
            kiln_testkit::image::host_architecture(),
            "amd64",
            "these tests expect an amd64 host (arm64 is the emulated platform)"
        );
        kiln_testkit::foreign::assert_no_host_handler("aarch64");
        let registry = Registry::start_plain();
        let host = registry.host_port();
        FixtureImage::busybox()
            .push(&registry, "base/amd64:1", None)
            .unwrap();
        arm64_busybox_image()
            .push(&registry, "base/arm64:1", None)
            .unwrap();
        let sources = [
            format!("{host}/base/amd64:1"),
            format!("{host}/base/arm64:1"),
        ];
        run_tokio(kiln_build::manifest_list::create(
            &registry_options(&host, Path::new("/")),
            &sources,
            &[format!("{host}/base/busybox:multi")],
        ))
        .unwrap_or_else(|e| panic!("making the base index: {e}"));
        let context = tempfile::tempdir().unwrap();
        fs_err::write(
            context.path().join("Dockerfile"),
            DOCKERFILE.replace("BASE", &format!("{host}/base/busybox:multi")),
        )
        .unwrap();
        Setup {
            registry,
            context,
            work: tempfile::tempdir().unwrap(),
        }
    }

    fn host(&self) -> String {
        self.registry.host_port()
    }

    /// Two platforms, kiln's own emulator registration, reproducible, pushing to `dest`.
    fn options(&self, dest: &str) -> BuildOptions {
        let mut o = registry_options(&self.host(), self.context.path());
        o.kaniko_dir = self.work.path().join("kiln");
        o.custom_platform = Some("linux/amd64,linux/arm64".into());
        o.destinations = vec![format!("{}/{dest}", self.host())];
        o.emulators = vec![qemu_user_static("aarch64")];
        o.emulator_dirs = Vec::new();
        o.reproducible = true;
        o
    }

    /// A blob of the registry's own storage, by digest.
    fn stored_blob(&self, digest: &str) -> Vec<u8> {
        let hex = digest.trim_start_matches("sha256:");
        fs_err::read(
            self.registry
                .storage_dir()
                .join("docker/registry/v2/blobs/sha256")
                .join(&hex[..2])
                .join(hex)
                .join("data"),
        )
        .unwrap()
    }

    /// `skopeo inspect --raw` of `reference` on this registry; `None` when it is absent.
    fn raw(&self, reference: &str) -> Option<Vec<u8>> {
        let out = std::process::Command::new(kiln_testkit::tools::skopeo())
            .args([
                "inspect",
                "--tls-verify=false",
                "--raw",
                &format!("docker://{}/{reference}", self.host()),
            ])
            .output()
            .unwrap();
        out.status.success().then_some(out.stdout)
    }
}

fn registry_options(host: &str, context: &Path) -> BuildOptions {
    let mut o = BuildOptions::new(ContextSource::Dir(context.to_path_buf()));
    o.registry.insecure = true;
    o.registry.insecure_pull = true;
    o.registry.insecure_registries = vec![host.to_owned()];
    o
}

/// The file `path` of the `arch` image of `reference` (picked from the index by skopeo,
/// unpacked by umoci).
fn file_of(setup: &Setup, reference: &str, arch: &str, path: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    skopeo(|c| {
        c.args([
            "copy",
            "--src-tls-verify=false",
            "--override-arch",
            arch,
            &format!("docker://{}/{reference}", setup.host()),
            &format!("oci:{}:{arch}", layout.display()),
        ]);
    });
    let bundle = umoci_unpack(&layout, arch, &dir.path().join("bundle"));
    fs_err::read_to_string(bundle.join("rootfs").join(path.trim_start_matches('/')))
        .unwrap()
        .trim()
        .to_owned()
}

fn count(lines: &[String], wanted: &str) -> usize {
    lines.iter().filter(|l| l.as_str() == wanted).count()
}

#[test]
fn two_platforms_give_an_index_of_images_each_made_by_its_own_architecture() {
    let setup = Setup::new();
    let recorder = Recorder::default();
    let mut options = setup.options("app:multi");
    let (layout, digest_file) = (
        setup.work.path().join("layout"),
        setup.work.path().join("digest"),
    );
    options.oci_layout_path = Some(layout.clone());
    options.digest_file = Some(digest_file.clone());
    let outcome =
        run_tokio(kiln_build::build(&options, &recorder)).unwrap_or_else(|e| panic!("{e}"));

    let runs = recorder.run_lines();
    assert_eq!(
        count(&runs, "tool-stage-ran"),
        1,
        "the build-platform stage runs once for both platforms: {runs:?}"
    );
    assert_eq!(count(&runs, "final-stage-ran"), 2, "{runs:?}");
    let steps = recorder.step_lines();
    assert!(
        steps
            .iter()
            .any(|l| l.starts_with("[stage 2/2 linux/arm64/v8] STEP 4/4: RUN")),
        "step lines name the platform: {steps:?}"
    );

    let raw = setup.raw("app:multi").expect("the index was pushed");
    assert_eq!(kiln_testkit::image::sha256_digest(&raw), outcome.digest);
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    // The busybox fixtures are OCI images, so the index is OCI's.
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let platforms: Vec<(String, String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["platform"]["os"].as_str().unwrap().to_owned(),
                m["platform"]["architecture"].as_str().unwrap().to_owned(),
                m["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = outcome
        .platforms
        .iter()
        .map(|p| {
            let arch = p.platform.split('/').nth(1).unwrap().to_owned();
            ("linux".to_owned(), arch, p.digest.clone())
        })
        .collect();
    assert_eq!(platforms, expected);
    let archs: Vec<&str> = platforms.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(archs, ["amd64", "arm64"]);

    // Each platform's image holds what its own architecture wrote; the shared stage
    // ran on the build machine.
    for (arch, uname) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        assert_eq!(file_of(&setup, "app:multi", arch, "/arch"), uname);
        assert_eq!(file_of(&setup, "app:multi", arch, "/target-arch"), arch);
        assert_eq!(
            file_of(&setup, "app:multi", arch, "/tool-built-on"),
            "x86_64"
        );
    }

    // The digest file names the index; the OCI layout holds it (its images are OCI
    // already, so the same bytes) and skopeo reads the arm64 image from it.
    assert_eq!(
        fs_err::read_to_string(&digest_file).unwrap(),
        outcome.digest
    );
    let layout_index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        layout_index["manifests"][0]["digest"],
        outcome.digest.as_str()
    );
    assert_eq!(support::layout_blob(&layout, &outcome.digest), raw);
    let from_layout = tempfile::tempdir().unwrap();
    skopeo(|c| {
        c.args([
            "copy",
            "--override-arch",
            "arm64",
            &format!("oci:{}:multi", layout.display()),
            &format!("oci:{}:arm64", from_layout.path().display()),
        ]);
    });
    let bundle = umoci_unpack(from_layout.path(), "arm64", &from_layout.path().join("b"));
    assert_eq!(
        fs_err::read_to_string(bundle.join("rootfs/arch")).unwrap(),
        "aarch64\n"
    );

    // skopeo copies the whole index.
    let copy = tempfile::tempdir().unwrap();
    skopeo(|c| {
        c.args([
            "copy",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{}/app:multi", setup.host()),
            &format!("oci:{}:all", copy.path().display()),
        ]);
    });
    let copied = support::layout_blob(copy.path(), &outcome.digest);
    assert_eq!(copied, raw, "skopeo copy --all kept the index as pushed");

    // The same build again with the layer cache: the first fills it, the second runs no
    // RUN and gives the same index.
    let mut cached = setup.options("app:cached");
    cached.cache.enabled = true;
    cached.cache.repo = Some(format!("{}/cache", setup.host()));
    let first = run_tokio(kiln_build::build(&cached, &Recorder::default())).unwrap();
    assert_eq!(
        first.digest, outcome.digest,
        "reproducible builds, same index"
    );
    let again = Recorder::default();
    let second = run_tokio(kiln_build::build(&cached, &again)).unwrap();
    assert_eq!(again.run_lines(), Vec::<String>::new(), "no RUN ran");
    assert_eq!(second.digest, outcome.digest);
    assert_eq!(file_of(&setup, "app:cached", "arm64", "/arch"), "aarch64");
}

#[test]
fn tar_path_with_two_platforms_is_refused_before_building() {
    let setup = Setup::new();
    let mut options = setup.options("app:tar");
    let tar = setup.work.path().join("image.tar");
    options.tar_path = Some(tar.clone());
    let recorder = Recorder::default();
    let err = run_tokio(kiln_build::build(&options, &recorder))
        .expect_err("refused")
        .to_string();
    assert!(err.contains(&tar.display().to_string()), "{err}");
    assert!(err.contains("--oci-layout-path"), "{err}");
    assert!(err.contains("one platform"), "{err}");
    assert!(recorder.step_lines().is_empty(), "nothing was built");
    assert!(!tar.exists());
    assert!(setup.raw("app:tar").is_none(), "nothing was pushed");
}

#[test]
fn without_emulation_the_arm64_run_fails_before_it_runs_and_nothing_is_pushed() {
    let setup = Setup::new();
    let mut options = setup.options("app:none");
    options.emulators = Vec::new();
    options.emulator_dirs = Vec::new();
    // One stage at a time, so that the amd64 stage has certainly run when the arm64 one
    // fails (in parallel, the failure stops stages not started yet).
    options.jobs = 1;
    let recorder = Recorder::default();
    let err = run_tokio(kiln_build::build(&options, &recorder))
        .expect_err("no emulation")
        .to_string();
    for part in [
        "linux/arm64",
        "uname -m > /arch",
        "Dockerfile:6",
        "F flag",
        "--emulator",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    assert_eq!(
        count(&recorder.run_lines(), "final-stage-ran"),
        1,
        "only the amd64 RUN ran"
    );
    assert!(setup.raw("app:none").is_none(), "nothing was pushed");
}

#[test]
fn each_platforms_tree_is_the_same_as_buildahs_manifest_build() {
    let setup = Setup::new();
    let kiln_layout = setup.work.path().join("kiln-layout");
    let mut options = setup.options("app:compare");
    options.no_push = true;
    options.destinations = Vec::new();
    options.oci_layout_path = Some(kiln_layout.clone());
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver))
        .unwrap_or_else(|e| panic!("{e}"));

    let root = setup.work.path().join("buildah");
    let buildah_layout = setup.work.path().join("buildah-layout");
    let buildah = format!(
        "{} --root {} --runroot {} --storage-driver vfs",
        support::tool("/usr/bin/buildah").display(),
        root.join("storage").display(),
        root.join("runroot").display()
    );
    let script = format!(
        "set -e\n\
         mount -t binfmt_misc binfmt_misc {binfmt}\n\
         printf '%s' '{registration}' > {binfmt}/register\n\
         {buildah} build --isolation chroot --layers=false --format oci --tls-verify=false \
         --platform linux/amd64,linux/arm64 --manifest localhost/compare:1 {context}\n\
         {buildah} manifest push --all localhost/compare:1 oci:{layout}:latest\n",
        binfmt = kiln_sandbox::HOST_BINFMT_MISC,
        registration = kiln_testkit::foreign::AARCH64_REGISTRATION,
        context = setup.context.path().display(),
        layout = buildah_layout.display(),
    );
    kiln_testkit::foreign::in_private_binfmt_namespace(&script);

    for arch in ["amd64", "arm64"] {
        let tree = |layout: &Path, tag: &str| {
            let dir = tempfile::tempdir().unwrap();
            let one = dir.path().join("one");
            skopeo(|c| {
                c.args([
                    "copy",
                    "--override-arch",
                    arch,
                    &format!("oci:{}:{tag}", layout.display()),
                    &format!("oci:{}:{arch}", one.display()),
                ]);
            });
            let bundle = umoci_unpack(&one, arch, &dir.path().join("bundle"));
            support::without_buildah_artifacts(support::file_tree(
                &bundle.join("rootfs"),
                support::LinkGroups::Ignore,
            ))
        };
        // buildah 1.28 runs the `--platform=$BUILDPLATFORM` stage for the target platform
        // (measured here: its arm64 image's /tool-built-on says aarch64, and with both
        // platforms built at once its amd64 image's may too). BuildKit's rule, and kiln's,
        // is the build machine's platform (checked by the first test), so the one file that
        // stage makes is left out of the comparison.
        let (mut kiln, mut buildah) = (
            tree(&kiln_layout, "latest"),
            tree(&buildah_layout, "latest"),
        );
        assert!(
            kiln.contains_key("/arch"),
            "{arch}: {:?}",
            kiln.keys().collect::<Vec<_>>()
        );
        for tree in [&mut kiln, &mut buildah] {
            tree.remove("/tool-built-on")
                .expect("both images hold /tool-built-on");
        }
        support::assert_same_tree(&kiln, &buildah);
    }
}

/// Two platforms, each with two stages that need nothing of each other and a final stage
/// copying from both: `--jobs 4` runs them (and the two platforms) at the same time, and
/// gives the same index, byte for byte, as `--jobs 1`.
#[test]
fn a_parallel_build_gives_the_same_index_as_a_sequential_one() {
    let setup = Setup::new();
    let base = format!("{}/base/busybox:multi", setup.host());
    fs_err::write(
        setup.context.path().join("Dockerfile.parallel"),
        format!(
            "FROM {base} AS left\nRUN uname -m > /left && echo left-ran\n\
             FROM {base} AS right\nRUN echo right > /right && echo right-ran\n\
             FROM {base}\nCOPY --from=left /left /left\nCOPY --from=right /right /right\n"
        ),
    )
    .unwrap();
    let layout = |jobs: usize| {
        let mut o = setup.options("unused");
        o.no_push = true;
        o.destinations = Vec::new();
        o.dockerfile = kiln_build::DockerfileSource::Path("Dockerfile.parallel".into());
        o.jobs = jobs;
        let path = setup.work.path().join(format!("layout-{jobs}"));
        o.oci_layout_path = Some(path.clone());
        let recorder = Recorder::default();
        let outcome = run_tokio(kiln_build::build(&o, &recorder)).unwrap_or_else(|e| panic!("{e}"));
        let runs = recorder.run_lines();
        assert_eq!(count(&runs, "left-ran"), 2, "{runs:?}");
        assert_eq!(count(&runs, "right-ran"), 2, "{runs:?}");
        (outcome, path)
    };
    let (sequential, one) = layout(1);
    let (parallel, four) = layout(4);
    assert_eq!(parallel.digest, sequential.digest);
    assert_eq!(parallel.platforms, sequential.platforms);
    for p in &parallel.platforms {
        assert_eq!(
            support::layout_blob(&four, &p.digest),
            support::layout_blob(&one, &p.digest)
        );
    }
}

/// In a parallel build, a stage failing on one platform fails the build with that step's
/// error, and nothing is pushed.
#[test]
fn a_stage_failing_on_one_platform_fails_a_parallel_build_and_pushes_nothing() {
    let setup = Setup::new();
    let base = format!("{}/base/busybox:multi", setup.host());
    fs_err::write(
        setup.context.path().join("Dockerfile.failing"),
        format!(
            "FROM {base} AS check\nARG TARGETARCH\nRUN test \"$TARGETARCH\" = amd64\n\
             FROM {base}\nCOPY --from=check /bin/busybox /copied\n"
        ),
    )
    .unwrap();
    let mut options = setup.options("app:failing");
    options.dockerfile = kiln_build::DockerfileSource::Path("Dockerfile.failing".into());
    options.jobs = 4;
    let err = run_tokio(kiln_build::build(&options, &Recorder::default()))
        .expect_err("the arm64 check fails")
        .to_string();
    for part in [
        "Dockerfile.failing:3",
        "linux/arm64",
        "test \"$TARGETARCH\" = amd64",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    assert!(setup.raw("app:failing").is_none(), "nothing was pushed");
}

/// `--image-format docker` with two platforms: the registry gets a Docker manifest list
/// of Docker manifests; the OCI layout holds an OCI index of their OCI forms, which
/// skopeo reads per platform.
#[test]
fn docker_format_images_get_a_docker_manifest_list_and_the_layout_an_oci_index() {
    let setup = Setup::new();
    let base = format!("{}/base/busybox:multi", setup.host());
    fs_err::write(
        setup.context.path().join("Dockerfile.docker"),
        format!("FROM {base}\nARG TARGETARCH\nLABEL arch=$TARGETARCH\n"),
    )
    .unwrap();
    let mut options = setup.options("app:docker");
    options.dockerfile = kiln_build::DockerfileSource::Path("Dockerfile.docker".into());
    options.image_format = kiln_build::ImageFormatChoice::Docker;
    let layout = setup.work.path().join("docker-layout");
    options.oci_layout_path = Some(layout.clone());
    let outcome = run_tokio(kiln_build::build(&options, &Recorder::default()))
        .unwrap_or_else(|e| panic!("{e}"));

    let raw = setup.raw("app:docker").expect("pushed");
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    assert_eq!(kiln_testkit::image::sha256_digest(&raw), outcome.digest);
    for m in index["manifests"].as_array().unwrap() {
        assert_eq!(
            m["mediaType"],
            "application/vnd.docker.distribution.manifest.v2+json"
        );
    }

    let top: serde_json::Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
    let layout_digest = top["manifests"][0]["digest"].as_str().unwrap();
    assert_ne!(
        layout_digest, outcome.digest,
        "the layout holds the OCI forms"
    );
    let layout_index: serde_json::Value =
        serde_json::from_slice(&support::layout_blob(&layout, layout_digest)).unwrap();
    assert_eq!(
        layout_index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let dir = tempfile::tempdir().unwrap();
    skopeo(|c| {
        c.args([
            "copy",
            "--override-arch",
            "arm64",
            &format!("oci:{}:docker", layout.display()),
            &format!("oci:{}:arm64", dir.path().display()),
        ]);
    });
    let (_, config) = support::layout_documents(dir.path());
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["config"]["Labels"]["arch"], "arm64");
}

/// `--sbom --provenance` with two platforms: each platform's manifest gets its own
/// attestations (referrers tag schema on distribution 2.8), naming its own platform,
/// before the index is pushed.
#[test]
fn each_platform_image_gets_its_own_attestations() {
    let setup = Setup::new();
    let mut options = setup.options("app:attested");
    options.attest.sbom = true;
    options.attest.provenance = true;
    let outcome = run_tokio(kiln_build::build(&options, &Recorder::default()))
        .unwrap_or_else(|e| panic!("{e}"));
    let raw = setup.raw("app:attested").expect("the index is pushed");
    assert_eq!(kiln_testkit::image::sha256_digest(&raw), outcome.digest);
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2);
    for m in manifests {
        let subject = m["digest"].as_str().unwrap();
        let arch = m["platform"]["architecture"].as_str().unwrap();
        let tag = subject.replace(':', "-");
        let referrers: serde_json::Value = serde_json::from_slice(
            &setup
                .raw(&format!("app:{tag}"))
                .unwrap_or_else(|| panic!("no referrers tag for the {arch} image")),
        )
        .unwrap();
        let mut types: Vec<&str> = referrers["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["artifactType"].as_str().unwrap())
            .collect();
        types.sort();
        assert_eq!(
            types,
            ["application/spdx+json", "application/vnd.in-toto+json"],
            "attestations of the {arch} image"
        );
        for d in referrers["manifests"].as_array().unwrap() {
            let manifest: serde_json::Value = serde_json::from_slice(
                &setup
                    .raw(&format!("app@{}", d["digest"].as_str().unwrap()))
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(manifest["subject"]["digest"], subject);
            if d["artifactType"] == "application/vnd.in-toto+json" {
                let layer = manifest["layers"][0]["digest"].as_str().unwrap();
                let statement: serde_json::Value =
                    serde_json::from_slice(&setup.stored_blob(layer)).unwrap();
                assert_eq!(
                    statement["subject"][0]["digest"]["sha256"],
                    subject.trim_start_matches("sha256:")
                );
                let text = statement.to_string();
                assert!(
                    text.contains(&format!("linux/{arch}")),
                    "the {arch} provenance names its platform: {text}"
                );
            }
        }
    }
}

/// `kiln warm` with two platforms (`--custom-platform linux/amd64,linux/arm64`) and the
/// Dockerfile: the base is cached for both platforms (the build-platform stage's needs
/// no third copy), each with the manifest the registry serves for it, under one name
/// listing an OCI index over them (amd64 warmed alone before is kept and joined by
/// arm64); a second warm leaves both alone; with the registry
/// gone, the two-platform build reads both bases from the cache dir and gives the same
/// index as a build that pulled them.
#[test]
fn warming_two_platforms_caches_each_platforms_base_for_an_offline_build() {
    let setup = Setup::new();
    let host = setup.host();
    let base = format!("{host}/base/busybox:multi");
    let served: serde_json::Value = serde_json::from_slice(
        &setup
            .raw("base/busybox:multi")
            .expect("the base index is there"),
    )
    .unwrap();
    let served_digest = |arch: &str| {
        served["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .unwrap_or_else(|| panic!("no {arch} in {served}"))["digest"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // The build pulling from the registry, for comparison.
    let mut pulled = setup.options("unused:pulled");
    pulled.no_push = true;
    pulled.destinations.clear();
    pulled.oci_layout_path = Some(setup.work.path().join("pulled"));
    let from_registry = run_tokio(kiln_build::build(&pulled, &Recorder::default()))
        .unwrap_or_else(|e| panic!("{e}"));

    let cache_dir = setup.work.path().join("cache");
    let mut warm_options = registry_options(&host, setup.context.path());
    warm_options.cache.dir = Some(cache_dir.clone());
    let request = kiln_build::WarmRequest {
        dockerfile: Some(setup.context.path().join("Dockerfile")),
        ..Default::default()
    };
    // amd64 alone first: the name lists its manifest.
    warm_options.custom_platform = Some("linux/amd64".into());
    let first =
        run_tokio(kiln_build::warm(&warm_options, &request)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.len(), 1, "{first:?}");
    let index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(cache_dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"],
        served_digest("amd64").as_str()
    );
    // Both: amd64 is left alone, arm64 joins it.
    warm_options.custom_platform = Some("linux/amd64,linux/arm64".into());
    let warmed =
        run_tokio(kiln_build::warm(&warm_options, &request)).unwrap_or_else(|e| panic!("{e}"));
    let seen: Vec<(String, String, String, bool)> = warmed
        .iter()
        .map(|w| {
            (
                w.reference.clone(),
                w.platform.architecture.clone(),
                w.digest.clone(),
                w.already_cached,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (base.clone(), "amd64".into(), served_digest("amd64"), true),
            (base.clone(), "arm64".into(), served_digest("arm64"), false),
        ]
    );
    // One name, an OCI index over both platforms' manifests.
    let index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(cache_dir.join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index}");
    assert_eq!(
        entries[0]["annotations"]["org.opencontainers.image.ref.name"],
        base.as_str()
    );
    assert_eq!(
        entries[0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let listed: serde_json::Value = serde_json::from_slice(&support::layout_blob(
        &cache_dir,
        entries[0]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let listed: Vec<(String, String)> = listed["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"].as_str().unwrap().to_owned(),
                m["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("amd64".to_owned(), served_digest("amd64")),
            ("arm64".to_owned(), served_digest("arm64")),
        ]
    );

    let again = run_tokio(kiln_build::warm(&warm_options, &request)).unwrap();
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|w| w.already_cached), "{again:?}");

    // The registry goes away: both platforms' bases come from the cache dir.
    let Setup {
        registry,
        context,
        work,
    } = setup;
    drop(registry);
    let mut offline = registry_options(&host, context.path());
    offline.kaniko_dir = work.path().join("kiln-offline");
    offline.custom_platform = Some("linux/amd64,linux/arm64".into());
    offline.emulators = vec![qemu_user_static("aarch64")];
    offline.emulator_dirs = Vec::new();
    offline.reproducible = true;
    offline.no_push = true;
    offline.cache.dir = Some(cache_dir);
    offline.oci_layout_path = Some(work.path().join("offline"));
    let from_cache = run_tokio(kiln_build::build(&offline, &Recorder::default()))
        .unwrap_or_else(|e| panic!("the offline build: {e}"));
    assert_eq!(from_cache.digest, from_registry.digest);
}

/// `--push-ignore-immutable-tag-errors`, for an index and (the same semantics) for one
/// image: the registry (behind the fault proxy) answers the PUT of the manifest to one
/// tag with distribution's `TAG_INVALID`, as a registry with immutable tags does.
/// Without the flag the build fails naming that destination; with it, that tag is a
/// warning and stays unset, and the digest file names what was built (here the other
/// destination gets the index; a single image's push stops at the refused tag).
fn check_immutable_tag(platforms: &str, frozen_first: bool) -> (Setup, String) {
    use kiln_testkit::proxy::{FailRule, FaultProxy, Faults};
    let setup = Setup::new();
    let proxy = FaultProxy::in_front_of(
        &setup.registry,
        Faults::none().fail(
            FailRule::status(400, usize::MAX)
                .code("TAG_INVALID")
                .matching(Some("PUT"), Some("/manifests/frozen")),
        ),
    );
    let via = proxy.host_port();
    let options_for = |ignore: bool| {
        let mut o = setup.options("unused");
        o.custom_platform = Some(platforms.to_owned());
        o.registry.insecure_registries.push(via.clone());
        o.destinations = vec![format!("{via}/app:frozen")];
        let moving = format!("{via}/app:moving");
        match frozen_first {
            true => o.destinations.push(moving),
            false => o.destinations.insert(0, moving),
        }
        o.push_ignore_immutable_tag_errors = ignore;
        o.digest_file = Some(setup.work.path().join(format!("digest-{ignore}")));
        o
    };

    let err = run_tokio(kiln_build::build(&options_for(false), &Recorder::default()))
        .expect_err("an immutable tag fails the push without the flag")
        .to_string();
    assert!(err.contains("app") && err.contains("frozen"), "{err}");
    assert!(err.contains("TAG_INVALID"), "{err}");
    assert!(setup.raw("app:frozen").is_none());

    let recorder = Recorder::default();
    let outcome = run_tokio(kiln_build::build(&options_for(true), &recorder))
        .unwrap_or_else(|e| panic!("with the flag: {e}"));
    let warnings: Vec<String> = recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            kiln_build::BuildEvent::Warning { message } => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("immutable") && w.contains("TAG_INVALID")),
        "{warnings:?}"
    );
    assert!(
        setup.raw("app:frozen").is_none(),
        "the frozen tag stays unset"
    );
    assert_eq!(
        fs_err::read_to_string(setup.work.path().join("digest-true")).unwrap(),
        outcome.digest
    );
    let refused = proxy
        .requests()
        .iter()
        .filter(|r| r.fault == Some("fail"))
        .count();
    assert_eq!(refused, 2, "one refused manifest PUT per build");
    (setup, outcome.digest)
}

#[test]
fn an_immutable_index_tag_is_a_warning_with_push_ignore_immutable_tag_errors() {
    let (setup, digest) = check_immutable_tag("linux/amd64,linux/arm64", true);
    let moved = setup
        .raw("app:moving")
        .expect("the other tag got the index");
    assert_eq!(kiln_testkit::image::sha256_digest(&moved), digest);
    let index: serde_json::Value = serde_json::from_slice(&moved).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
}

#[test]
fn an_immutable_image_tag_is_a_warning_with_push_ignore_immutable_tag_errors() {
    let (setup, digest) = check_immutable_tag("linux/amd64", false);
    let moved = setup
        .raw("app:moving")
        .expect("the tag before it was pushed");
    assert_eq!(kiln_testkit::image::sha256_digest(&moved), digest);
}
