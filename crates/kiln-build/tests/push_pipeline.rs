//! The push pipeline against a real docker-registry behind the testkit's proxy,
//! whose request log shows what reached the registry when: the layers start
//! uploading before the build ends (the first request for the config, which
//! only exists once every stage is done), each once, and are not asked about
//! again; tiny layers do not queue; one session serves the whole build; the image is byte-identical to
//! one pushed the old way, a registry refusing chunked uploads still gets it,
//! a build failing at a later step leaves no manifest and no tag,
//! `--no-push` sends nothing, no upload session is left open, and the base's
//! layers are mounted while the stage waits for them.

mod support;

use std::path::Path;
use std::process::Command;

use kiln_build::{BuildOptions, BuildOutcome};
use kiln_testkit::proxy::ProxiedRequest;
use kiln_testkit::{FailRule, FaultProxy, Faults, Registry};
use support::*;

const DOCKERFILE: &str =
    "FROM scratch\nCOPY big.bin /big.bin\nCOPY small.txt /etc/small.txt\nENV A=1\n";

fn fixture(dockerfile: &str) -> Fixture {
    let fx = Fixture::new(dockerfile, &[("small.txt", "small\n")]);
    fs_err::write(
        fx.path().join("big.bin"),
        kiln_testkit::noise::bytes(20 << 20, 1),
    )
    .unwrap();
    fx
}

fn push_options(fx: &Fixture, destination: &str) -> BuildOptions {
    let mut o = fx.options();
    o.no_push = false;
    o.destinations = vec![destination.to_string()];
    o.registry.insecure = true;
    o.registry.insecure_pull = true;
    o.reproducible = true;
    o
}

fn build(options: &BuildOptions) -> BuildOutcome {
    run_tokio(kiln_build::build(options, &kiln_build::NoopObserver)).unwrap()
}

fn raw_manifest(reference: &str) -> Vec<u8> {
    skopeo(|c| {
        c.args(["inspect", "--tls-verify=false", "--raw"])
            .arg(format!("docker://{reference}"));
    })
    .stdout
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").expect("a sha256 digest")
}

/// Where in the log each layer's upload was closed (`PUT ?digest=`, 201).
fn layer_puts(log: &[ProxiedRequest], outcome: &BuildOutcome) -> Vec<usize> {
    outcome
        .layers
        .iter()
        .map(|l| {
            let wanted = format!("digest=sha256%3A{}", hex(&l.digest));
            log.iter()
                .position(|r| r.method == "PUT" && r.status == 201 && r.path.contains(&wanted))
                .unwrap_or_else(|| panic!("layer {} was never uploaded: {log:#?}", l.digest))
        })
        .collect()
}

/// Where the pushing of the image's own blobs began: the first request naming
/// the config (which only exists once every stage is done).
fn final_push_start(log: &[ProxiedRequest], registry: &str, reference: &str) -> usize {
    let manifest: serde_json::Value =
        serde_json::from_slice(&raw_manifest(&format!("{registry}/{reference}"))).unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap().to_string();
    log.iter()
        .position(|r| r.path.contains(hex(&config)))
        .unwrap_or_else(|| panic!("the config {config} was never pushed: {log:#?}"))
}

#[test]
fn layers_upload_before_the_final_push_and_the_image_is_the_same() {
    let registry = Registry::start_plain();
    let proxy = FaultProxy::in_front_of(&registry, Faults::none());
    let fx = fixture(DOCKERFILE);

    let pipelined = build(&push_options(
        &fx,
        &format!("{}/pipe/app:1", proxy.host_port()),
    ));
    let log = proxy.requests();
    assert_eq!(pipelined.layers.len(), 2);
    // The config only exists once every stage is done: the big layer's chunks were
    // on their way before it was first pushed; the config goes up while the last
    // uploads finish, and the manifest after every layer.
    let start = final_push_start(&log, &registry.host_port(), "pipe/app:1");
    assert!(
        log[..start]
            .iter()
            .any(|r| r.method == "PATCH" && r.status == 202),
        "the 20 MB layer was uploading in chunks before the build ended: {log:#?}"
    );
    let manifest_put = log
        .iter()
        .position(|r| r.method == "PUT" && r.path.contains("/manifests/"))
        .expect("the manifest PUT");
    for put in layer_puts(&log, &pipelined) {
        assert!(
            put < manifest_put,
            "a layer was closed at request {put}, after the manifest at {manifest_put}"
        );
    }
    // Each layer went up once, by the pipeline; nothing asked about it afterwards:
    // the build's one registry client saw the registry accept it.
    for layer in &pipelined.layers {
        let about: Vec<&ProxiedRequest> = log
            .iter()
            .filter(|r| r.path.contains(hex(&layer.digest)))
            .collect();
        assert!(
            about
                .last()
                .is_some_and(|r| r.method == "PUT" && r.status == 201)
                && about.iter().filter(|r| r.method == "PUT").count() == 1,
            "layer {} was asked about or uploaded again after its upload: {about:#?}",
            layer.digest
        );
    }

    // The same build pushed the old way, all at the end.
    let fx2 = fixture(DOCKERFILE);
    let mut sequential = push_options(&fx2, &format!("{}/seq/app:1", registry.host_port()));
    sequential.push_while_building = false;
    let old = build(&sequential);
    assert_eq!(pipelined.digest, old.digest);
    assert_eq!(pipelined.layers, old.layers);
    assert_eq!(
        raw_manifest(&format!("{}/pipe/app:1", registry.host_port())),
        raw_manifest(&format!("{}/seq/app:1", registry.host_port()))
    );
    let copied = tempfile::tempdir().unwrap();
    for (reference, dir) in [("pipe/app:1", "pipe"), ("seq/app:1", "seq")] {
        skopeo(|c| {
            c.args(["copy", "--src-tls-verify=false"])
                .arg(format!("docker://{}/{reference}", registry.host_port()))
                .arg(format!("oci:{}:1", copied.path().join(dir).display()));
        });
    }
    assert_same_blobs(&copied.path().join("pipe"), &copied.path().join("seq"));
}

/// Every blob of `a`'s OCI layout is in `b`'s with the same bytes.
fn assert_same_blobs(a: &Path, b: &Path) {
    let dir = a.join("blobs/sha256");
    let mut n = 0;
    for entry in fs_err::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name();
        let theirs = fs_err::read(b.join("blobs/sha256").join(&name)).unwrap();
        assert!(
            fs_err::read(dir.join(&name)).unwrap() == theirs,
            "{name:?} differs"
        );
        n += 1;
    }
    assert!(n >= 4, "manifest, config and two layers: {n}");
}

#[test]
fn a_registry_refusing_chunked_uploads_gets_the_same_image() {
    let registry = Registry::start_plain();
    let refuse = FailRule::status(405, usize::MAX).matching(Some("PATCH"), None);
    let proxy = FaultProxy::in_front_of(&registry, Faults::none().fail(refuse));
    let fx = fixture(DOCKERFILE);
    let outcome = build(&push_options(
        &fx,
        &format!("{}/refused/app:1", proxy.host_port()),
    ));
    let log = proxy.requests();
    assert!(
        log.iter()
            .any(|r| r.method == "PATCH" && r.fault == Some("fail")),
        "a chunk was offered and refused: {log:#?}"
    );
    layer_puts(&log, &outcome);

    let fx2 = fixture(DOCKERFILE);
    let mut local = fx2.options();
    local.reproducible = true;
    let expected = build(&local);
    assert_eq!(outcome.digest, expected.digest);
    let served = raw_manifest(&format!("{}/refused/app:1", registry.host_port()));
    assert_eq!(
        kiln_oci::Digest::sha256_of(&served).to_string(),
        outcome.digest
    );
}

#[test]
fn a_build_failing_at_a_later_step_pushes_no_manifest_and_no_tag() {
    let registry = Registry::start_plain();
    let proxy = FaultProxy::in_front_of(&registry, Faults::none());
    let fx = fixture("FROM scratch\nCOPY big.bin /big.bin\nCOPY missing.txt /missing.txt\n");
    let destination = format!("{}/failed/app:1", proxy.host_port());
    let err = run_tokio(kiln_build::build(
        &push_options(&fx, &destination),
        &kiln_build::NoopObserver,
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("missing.txt"), "{err}");
    // Whether the first layer's upload got anywhere before the failure stopped
    // it depends on timing; what must never exist is a manifest.
    let log = proxy.requests();
    assert!(
        !log.iter().any(|r| r.path.contains("/manifests/")),
        "no manifest request at all: {log:#?}"
    );
    let inspect = Command::new(tool("/usr/bin/skopeo"))
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{}/failed/app:1", registry.host_port()))
        .output()
        .unwrap();
    assert!(
        !inspect.status.success(),
        "the tag exists: {}",
        String::from_utf8_lossy(&inspect.stdout)
    );
}

#[test]
fn no_push_sends_nothing() {
    let registry = Registry::start_plain();
    let proxy = FaultProxy::in_front_of(&registry, Faults::none());
    let fx = fixture(DOCKERFILE);
    let mut options = push_options(&fx, &format!("{}/none/app:1", proxy.host_port()));
    options.no_push = true;
    build(&options);
    assert_eq!(proxy.request_count(), 0, "{:#?}", proxy.requests());
}

/// Layers that ended small (under 1 MiB) do not wait for one of the registry client's
/// `max_parallel_uploads` (4) turns: eight tiny COPY layers through a proxy adding
/// 150 ms per request upload at once, not in waves of four.
#[test]
fn small_layers_upload_at_once() {
    let registry = Registry::start_plain();
    let proxy = FaultProxy::in_front_of(
        &registry,
        Faults::none().shape(kiln_testkit::Shaping::new(1000, 150)),
    );
    let files: Vec<(String, String)> = (0..8)
        .map(|i| (format!("f{i}.txt"), format!("file {i}\n")))
        .collect();
    let dockerfile: String = std::iter::once("FROM scratch\n".to_string())
        .chain(
            files
                .iter()
                .map(|(name, _)| format!("COPY {name} /{name}\n")),
        )
        .collect();
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_str()))
        .collect();
    let fx = Fixture::new(&dockerfile, &borrowed);
    let outcome = build(&push_options(
        &fx,
        &format!("{}/small/app:1", proxy.host_port()),
    ));
    assert_eq!(outcome.layers.len(), 8);
    let log = proxy.requests();
    let puts = layer_puts(&log, &outcome);
    // the most layer uploads whose closing PUTs were under way at one moment
    let most = puts
        .iter()
        .map(|&i| {
            puts.iter()
                .filter(|&&j| log[j].arrived <= log[i].arrived && log[i].arrived < log[j].answered)
                .count()
        })
        .max()
        .unwrap();
    assert!(
        most > 4,
        "at most {most} small layers uploaded at once: {log:#?}"
    );
}

/// One registry client serves the whole build: the push permission check, the base's
/// pull (by the parallel scheduler's puller), the layer cache and the pushes share its
/// session, so the registry is pinged once, not once per part.
#[test]
fn one_session_serves_the_check_the_pull_and_the_push() {
    let registry = Registry::start_plain();
    kiln_testkit::FixtureImage::busybox()
        .push(&registry, "base/busybox:1", None)
        .unwrap();
    let proxy = FaultProxy::in_front_of(&registry, Faults::none());
    let via = proxy.host_port();
    let fx = Fixture::new(
        &format!("FROM {via}/base/busybox:1\nCOPY small.txt /small.txt\n"),
        &[("small.txt", "small\n")],
    );
    let mut options = push_options(&fx, &format!("{via}/one/app:1"));
    options.jobs = 2;
    options.cache.enabled = true;
    options.cache.repo = Some(format!("{via}/one/cache"));
    let outcome = build(&options);
    assert_eq!(outcome.pushed, vec![format!("{via}/one/app:1")]);
    let log = proxy.requests();
    let pings = log
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/v2/")
        .count();
    assert_eq!(pings, 1, "{log:#?}");
}

/// The upload sessions the pipeline keeps open ahead are used by the layers and the
/// config, and those left when the image is pushed are cancelled: every session the
/// build opened (`POST`) was closed by a blob's `PUT` or cancelled (`DELETE`).
#[test]
fn no_upload_session_is_left_open() {
    let registry = Registry::start_plain();
    let proxy = FaultProxy::in_front_of(&registry, Faults::none());
    let fx = Fixture::new(
        "FROM scratch\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n",
        &[("a.txt", "a\n"), ("b.txt", "b\n")],
    );
    let outcome = build(&push_options(
        &fx,
        &format!("{}/ahead/app:1", proxy.host_port()),
    ));
    assert_eq!(outcome.layers.len(), 2);
    let log = proxy.requests();
    let count = |method: &str, status: u16| {
        log.iter()
            .filter(|r| {
                r.method == method && r.status == status && r.path.contains("/blobs/uploads/")
            })
            .count()
    };
    let (opened, closed, cancelled) = (count("POST", 202), count("PUT", 201), count("DELETE", 204));
    assert_eq!(closed, 3, "two layers and the config: {log:#?}");
    assert!(cancelled > 0, "no unused session was cancelled: {log:#?}");
    assert_eq!(opened, closed + cancelled, "{log:#?}");
}

/// The layers of the image the pushed stage is built `FROM` are mounted into the
/// destination when the stage is prepared, not beside the config after its last
/// step: with the base layer's download stalled for 3 s (then retried), the mount
/// is answered before the download is, and the final push does not mount again.
#[test]
fn base_layers_are_mounted_while_the_stage_waits_for_them() {
    let registry = Registry::start_plain();
    let base = kiln_testkit::FixtureImage::busybox();
    base.push(&registry, "base/busybox:1", None).unwrap();
    let layer = base.layers[0].digest();
    let layer = hex(&layer).to_string();
    let stall = kiln_testkit::StallRule::first(1, 0, std::time::Duration::from_secs(3))
        .matching(Some("GET"), Some(&layer));
    let proxy = FaultProxy::in_front_of(&registry, Faults::none().stall(stall));
    let via = proxy.host_port();
    let fx = Fixture::new(
        &format!("FROM {via}/base/busybox:1\nCOPY small.txt /small.txt\n"),
        &[("small.txt", "small\n")],
    );
    build(&push_options(&fx, &format!("{via}/mounted/app:1")));
    let log = proxy.requests();
    let mounts: Vec<&ProxiedRequest> = log
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains(&format!("mount=sha256%3A{layer}")))
        .collect();
    assert_eq!(mounts.len(), 1, "{log:#?}");
    let downloaded = log
        .iter()
        .rev()
        .find(|r| r.method == "GET" && r.path.ends_with(&layer) && r.status == 200)
        .unwrap_or_else(|| panic!("the base layer was never downloaded: {log:#?}"));
    assert!(
        mounts[0].status == 201 && mounts[0].answered < downloaded.answered,
        "the base layer was mounted after its download: {log:#?}"
    );
}
