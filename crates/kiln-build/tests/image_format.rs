//! Issue 16: the manifest family of each output. `--oci-layout-path` always
//! holds an OCI image (umoci unpacks it) even on a Docker-format base;
//! `--image-format oci|docker` chooses what is pushed; the default follows the
//! base, as before. Bases are real images in a real registry: the busybox
//! fixture as OCI, and skopeo's Docker schema 2 conversion of it.

mod support;

use std::path::Path;

use kiln_build::{BuildOptions, BuildOutcome, ImageFormatChoice};
use serde_json::Value;
use support::{Fixture, Recorder, run_tokio, skopeo, umoci_unpack};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// A registry holding the busybox fixture twice: as pushed (OCI) and as
/// skopeo converts it to Docker schema 2.
struct Bases {
    registry: kiln_testkit::Registry,
    oci: String,
    docker: String,
}

fn bases() -> Bases {
    let registry = kiln_testkit::Registry::start_plain();
    kiln_testkit::FixtureImage::busybox()
        .push(&registry, "fixtures/busybox:1", None)
        .unwrap();
    let host = registry.host_port();
    let oci = format!("{host}/fixtures/busybox:1");
    let docker = format!("{host}/fixtures/busybox-docker:1");
    skopeo(|c| {
        c.args([
            "copy",
            "--quiet",
            "--format",
            "v2s2",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .arg(format!("docker://{oci}"))
        .arg(format!("docker://{docker}"));
    });
    // The bases really are what their names say.
    assert_eq!(types(&raw_manifest(&oci)).0, OCI_MANIFEST);
    assert_eq!(
        types(&raw_manifest(&docker)),
        (
            DOCKER_MANIFEST.to_string(),
            DOCKER_CONFIG.to_string(),
            vec![DOCKER_LAYER_GZIP.to_string()]
        )
    );
    Bases {
        registry,
        oci,
        docker,
    }
}

impl Bases {
    fn destination(&self, name: &str) -> String {
        format!("{}/built/{name}:1", self.registry.host_port())
    }
}

/// `skopeo inspect --raw` of `transport:reference`.
fn inspect(args: &[&str], target: String) -> Value {
    let out = skopeo(|c| {
        c.arg("inspect").args(args).arg(target);
    });
    serde_json::from_slice(&out.stdout).unwrap()
}

fn raw_manifest(reference: &str) -> Value {
    inspect(
        &["--tls-verify=false", "--raw"],
        format!("docker://{reference}"),
    )
}

fn pushed_digest(reference: &str) -> String {
    inspect(&["--tls-verify=false"], format!("docker://{reference}"))["Digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The manifest tagged `tag` in an OCI layout (kiln tags it with the first
/// destination's tag, else `latest`).
fn layout_manifest(layout: &Path, tag: &str) -> Value {
    inspect(&["--raw"], format!("oci:{}:{tag}", layout.display()))
}

/// (manifest, config, layers) media types.
fn types(manifest: &Value) -> (String, String, Vec<String>) {
    let text = |v: &Value| v.as_str().unwrap_or("<none>").to_string();
    (
        text(&manifest["mediaType"]),
        text(&manifest["config"]["mediaType"]),
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| text(&l["mediaType"]))
            .collect(),
    )
}

fn digests(manifest: &Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

fn oci_types(layers: usize) -> (String, String, Vec<String>) {
    (
        OCI_MANIFEST.into(),
        OCI_CONFIG.into(),
        vec![OCI_LAYER_GZIP.into(); layers],
    )
}

fn docker_types(layers: usize) -> (String, String, Vec<String>) {
    (
        DOCKER_MANIFEST.into(),
        DOCKER_CONFIG.into(),
        vec![DOCKER_LAYER_GZIP.into(); layers],
    )
}

/// A context building on `base`: one COPY and one RUN layer.
fn fixture(base: &str) -> Fixture {
    Fixture::new(
        &format!("FROM {base}\nCOPY a.txt /a.txt\nRUN echo ran && echo built > /b.txt\n"),
        &[("a.txt", "copied\n")],
    )
}

/// Options pushing to `destination` with a digest file and a layout.
fn push_options(fx: &Fixture, destination: &str) -> BuildOptions {
    let mut o = fx.options();
    o.no_push = false;
    o.destinations = vec![destination.to_string()];
    o.registry.insecure = true;
    o.registry.insecure_pull = true;
    o.digest_file = Some(fx.work.path().join("digest"));
    o.oci_layout_path = Some(fx.work.path().join("layout"));
    o
}

fn build(options: &BuildOptions) -> BuildOutcome {
    run_tokio(kiln_build::build(options, &kiln_build::NoopObserver)).unwrap()
}

fn digest_file(fx: &Fixture) -> String {
    fs_err::read_to_string(fx.work.path().join("digest")).unwrap()
}

/// umoci unpacks the layout's image tagged `1` (the destinations' tag), and the tree has the base's files and the build's.
fn assert_unpacks(layout: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let bundle = umoci_unpack(layout, "1", dir.path());
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs_err::read_to_string(rootfs.join("a.txt")).unwrap(),
        "copied\n"
    );
    assert_eq!(
        fs_err::read_to_string(rootfs.join("b.txt")).unwrap(),
        "built\n"
    );
    assert!(
        rootfs.join("bin/busybox").is_file(),
        "the base layer is unpacked"
    );
}

#[test]
fn a_docker_base_by_default_pushes_docker_and_lays_out_oci() {
    let bases = bases();
    let fx = fixture(&bases.docker);
    let destination = bases.destination("default");
    let options = push_options(&fx, &destination);
    let outcome = build(&options);

    // Pushed: the base's family, as before issue 16.
    let pushed = raw_manifest(&destination);
    assert_eq!(types(&pushed), docker_types(3));
    let digest = pushed_digest(&destination);
    assert_eq!(digest_file(&fx), digest);
    assert_eq!(outcome.digest, digest);
    assert!(
        outcome
            .layers
            .iter()
            .all(|l| l.media_type == DOCKER_LAYER_GZIP)
    );

    // The layout: OCI throughout, the same blobs, its own manifest digest.
    let layout = fx.work.path().join("layout");
    let oci = layout_manifest(&layout, "1");
    assert_eq!(types(&oci), oci_types(3));
    assert_eq!(digests(&oci), digests(&pushed));
    assert_eq!(
        digests(&oci)[0],
        digests(&raw_manifest(&bases.docker))[0],
        "the base layer keeps its bytes"
    );
    assert_eq!(oci["config"]["digest"], pushed["config"]["digest"]);
    let index: Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["mediaType"], OCI_MANIFEST);
    assert_ne!(
        index["manifests"][0]["digest"].as_str().unwrap(),
        digest,
        "the layout's manifest is not the pushed one"
    );
    assert_unpacks(&layout);
}

#[test]
fn image_format_oci_converts_a_docker_base_reproducibly() {
    let bases = bases();
    let fx = fixture(&bases.docker);
    let destination = bases.destination("oci");
    let mut options = push_options(&fx, &destination);
    options.image_format = ImageFormatChoice::Oci;
    options.reproducible = true;
    let first = build(&options);

    let pushed = raw_manifest(&destination);
    assert_eq!(types(&pushed), oci_types(3));
    let digest = pushed_digest(&destination);
    assert_eq!(digest_file(&fx), digest);
    // The layout holds the very image that was pushed.
    let layout = fx.work.path().join("layout");
    let index: Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"].as_str().unwrap(), digest);
    assert_unpacks(&layout);

    // --reproducible: the same again, and the Docker form differs only in
    // its manifest (same config and layer blobs).
    let second = build(&options);
    assert_eq!(first.digest, second.digest);
    options.image_format = ImageFormatChoice::Docker;
    options.oci_layout_path = None;
    let destination = bases.destination("docker-again");
    options.destinations = vec![destination.clone()];
    let docker = build(&options);
    assert_ne!(docker.digest, first.digest);
    let docker_manifest = raw_manifest(&destination);
    assert_eq!(types(&docker_manifest), docker_types(3));
    assert_eq!(digests(&docker_manifest), digests(&pushed));
    assert_eq!(
        docker_manifest["config"]["digest"],
        pushed["config"]["digest"]
    );
}

#[test]
fn image_format_docker_converts_an_oci_base_that_buildah_pulls() {
    let bases = bases();

    // Default: an OCI base stays OCI.
    let fx = fixture(&bases.oci);
    let destination = bases.destination("oci-default");
    build(&push_options(&fx, &destination));
    assert_eq!(types(&raw_manifest(&destination)), oci_types(3));

    let fx = fixture(&bases.oci);
    let destination = bases.destination("docker");
    let mut options = push_options(&fx, &destination);
    options.image_format = ImageFormatChoice::Docker;
    build(&options);
    let pushed = raw_manifest(&destination);
    assert_eq!(types(&pushed), docker_types(3));
    assert_eq!(digest_file(&fx), pushed_digest(&destination));
    assert_eq!(
        types(&layout_manifest(&fx.work.path().join("layout"), "1")).0,
        OCI_MANIFEST
    );

    // buildah pulls it and sees the same manifest.
    let root = tempfile::tempdir().unwrap();
    let buildah = |args: &[&str]| support::buildah(root.path(), "vfs", args);
    buildah(&[
        "pull",
        "--quiet",
        "--tls-verify=false",
        &format!("docker://{destination}"),
    ]);
    let inspected: Value =
        serde_json::from_slice(&buildah(&["inspect", "--type", "image", &destination])).unwrap();
    let manifest: Value = serde_json::from_str(inspected["Manifest"].as_str().unwrap()).unwrap();
    assert_eq!(manifest, pushed);
}

#[test]
fn docker_format_refuses_what_schema_2_cannot_hold_and_writes_nothing() {
    // An OCI base with an uncompressed layer, from a cache dir (no registry).
    let cache = tempfile::tempdir().unwrap();
    let layer = kiln_testkit::FixtureLayer::from_tar(&kiln_testkit::busybox::rootfs_tar(), false);
    kiln_testkit::FixtureImage::from_layers(vec![layer], &["sh"])
        .write_oci_layout(cache.path(), "example.invalid/plain:1");
    let fx = Fixture::new(
        "FROM example.invalid/plain:1\nCOPY a.txt /a.txt\n",
        &[("a.txt", "a\n")],
    );
    let (mut options, layout) = fx.layout_options();
    options.cache.dir = Some(cache.path().to_path_buf());
    options.tar_path = Some(fx.work.path().join("image.tar"));
    options.digest_file = Some(fx.work.path().join("digest"));
    options.image_format = ImageFormatChoice::Docker;
    let error = run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("--image-format docker")
            && error.contains("application/vnd.oci.image.layer.v1.tar,")
            && error.contains("no docker equivalent"),
        "{error}"
    );
    for path in [
        &layout,
        &fx.work.path().join("image.tar"),
        &fx.work.path().join("digest"),
    ] {
        assert!(!path.exists(), "{} was written", path.display());
    }
    // The default makes it OCI, as before.
    options.image_format = ImageFormatChoice::FollowBase;
    build(&options);
    assert_eq!(types(&layout_manifest(&layout, "latest")).0, OCI_MANIFEST);

    // zstd and annotations are refused before anything is built.
    let mut zstd = options.clone();
    zstd.image_format = ImageFormatChoice::Docker;
    zstd.compression = kiln_build::Compression::Zstd;
    let recorder = Recorder::default();
    let error = run_tokio(kiln_build::build(&zstd, &recorder))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("--image-format docker") && error.contains("--compression zstd"),
        "{error}"
    );
    assert!(recorder.step_lines().is_empty(), "nothing was built");
    let mut annotated = options.clone();
    annotated.image_format = ImageFormatChoice::Docker;
    annotated
        .annotations
        .insert("org.example".into(), "x".into());
    let error = run_tokio(kiln_build::build(&annotated, &kiln_build::NoopObserver))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("--image-format docker") && error.contains("--annotation"),
        "{error}"
    );
}

#[test]
fn the_layer_cache_is_shared_across_formats() {
    let bases = bases();
    let fx = fixture(&bases.docker);
    let cache = tempfile::tempdir().unwrap();
    let mut options = push_options(&fx, &bases.destination("cached"));
    options.cache.enabled = true;
    options.cache.repo = Some(format!("oci:{}", cache.path().join("layers").display()));
    options.image_format = ImageFormatChoice::Docker;
    let recorder = Recorder::default();
    let first = run_tokio(kiln_build::build(&options, &recorder)).unwrap();
    assert_eq!(recorder.run_lines(), ["ran"]);

    options.image_format = ImageFormatChoice::Oci;
    let recorder = Recorder::default();
    let second = run_tokio(kiln_build::build(&options, &recorder)).unwrap();
    assert!(
        recorder.run_lines().is_empty(),
        "the RUN step came from the cache: {:?}",
        recorder.run_lines()
    );
    let layers = |o: &BuildOutcome| {
        o.layers
            .iter()
            .map(|l| (l.digest.clone(), l.diff_id.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(layers(&first), layers(&second));
    assert_unpacks(&fx.work.path().join("layout"));
}
