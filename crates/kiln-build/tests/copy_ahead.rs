//! A COPY right after `FROM` is encoded and uploaded while the base image still
//! downloads: through a proxy slowed to 2 MB/s its layer's upload is closed before
//! the base's layer could have arrived, the layer is the one the usual path makes
//! (a build whose root is laid out before the COPY), and its files are in the
//! root for the next RUN. A base with a directory or a symlink on the
//! destination's path changes the layer: the build then makes the usual layer
//! (the base's directory metadata, the symlink followed), and the early upload it
//! dropped does not fail the push.

mod support;

use std::time::Duration;

use kiln_build::{BuildOptions, BuildOutcome};
use kiln_testkit::proxy::ProxiedRequest;
use kiln_testkit::{FaultProxy, Faults, FixtureImage, FixtureLayer, Registry, Shaping};
use support::*;

/// The proxy's rate for the slowed base (MB/s, per connection).
const RATE_MB: u64 = 2;

fn build(options: &BuildOptions) -> BuildOutcome {
    run_tokio(kiln_build::build(options, &kiln_build::NoopObserver)).unwrap()
}

/// A context with `files/` (three small files) and `dockerfile`.
fn context(dockerfile: &str) -> Fixture {
    Fixture::new(
        dockerfile,
        &[
            ("files/a.txt", "alpha\n"),
            ("files/b.txt", "beta\n"),
            ("files/sub/c.txt", "gamma\n"),
        ],
    )
}

/// Options pulling over plain HTTP, reproducible (fixed file times), pushing to
/// `destination` when given, else writing an OCI layout.
fn options(fx: &Fixture, destination: Option<&str>) -> BuildOptions {
    let (mut o, _) = fx.layout_options();
    o.registry.insecure = true;
    o.registry.insecure_pull = true;
    o.reproducible = true;
    if let Some(d) = destination {
        o.oci_layout_path = None;
        o.no_push = false;
        o.destinations = vec![d.to_string()];
    }
    o
}

/// The digest of the layer a build made for its step `n` (0-based, after the
/// base's `base_layers`).
fn step_layer(outcome: &BuildOutcome, base_layers: usize, n: usize) -> String {
    outcome.layers[base_layers + n].digest.clone()
}

/// Where the proxy answered the closing `PUT` of the blob `digest`.
fn closing_put<'l>(log: &'l [ProxiedRequest], digest: &str) -> &'l ProxiedRequest {
    let wanted = format!("digest=sha256%3A{}", digest.trim_start_matches("sha256:"));
    log.iter()
        .find(|r| r.method == "PUT" && r.status == 201 && r.path.contains(&wanted))
        .unwrap_or_else(|| panic!("{digest} was never uploaded: {log:#?}"))
}

/// The entries of a gzip layer pulled back from `reference`: path, mode, mtime.
fn pushed_layer_entries(reference: &str, digest: &str) -> Vec<(String, u32, u64)> {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    skopeo(|c| {
        c.args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .arg(format!("oci:{}:pulled", layout.display()));
    });
    layer_entries(&layout, digest)
}

/// The entries of a gzip layer in an OCI layout: path, mode, mtime.
fn layer_entries(layout: &std::path::Path, digest: &str) -> Vec<(String, u32, u64)> {
    gzip_layer_entries(&layout_blob(layout, digest), |path, h| {
        (path, h.mode().unwrap(), h.mtime().unwrap())
    })
}

/// A build of `FROM base` then `rest` whose files are laid out before any of
/// `rest` runs (an ADD first needs them, and no COPY can go ahead of them), to
/// an OCI layout: its layers after the base and the ADD's are the usual ones.
fn usual_build(base: &str, rest: &str, big: bool) -> BuildOutcome {
    let fx = context(&format!(
        "FROM {base}\nADD files/a.txt /usual/a.txt\n{rest}"
    ));
    if big {
        with_big_file(&fx);
    }
    build(&options(&fx, None))
}

/// Adds a 24 MB file to the context's `files/`.
fn with_big_file(fx: &Fixture) {
    fs_err::write(
        fx.path().join("files/big.bin"),
        kiln_testkit::noise::bytes(24 << 20, 3),
    )
    .unwrap();
}

/// A base image pushed to a registry: busybox (for RUN) and a 6 MB layer that
/// takes at least 3 s through a proxy slowed to `RATE_MB`.
struct SlowBase {
    /// Pulled through this proxy.
    proxy: FaultProxy,
    /// Its reference through the proxy.
    reference: String,
    layers: usize,
    slow_digest: String,
    slow_size: u64,
}

fn slow_base(registry: &Registry) -> SlowBase {
    let mut layers = FixtureImage::busybox().layers;
    let mut slow = tar::Builder::new(Vec::new());
    let big = kiln_testkit::noise::bytes(6 << 20, 7);
    let mut file = header(tar::EntryType::Regular, 0o644, 0);
    file.set_size(big.len() as u64);
    slow.append_data(&mut file, "big.bin", &big[..]).unwrap();
    let slow = FixtureLayer::from_tar(&slow.into_inner().unwrap(), true);
    let (slow_digest, slow_size) = (slow.digest(), slow.blob.len() as u64);
    layers.push(slow);
    let base_layers = layers.len();
    FixtureImage::from_layers(layers, &["sh"])
        .push(registry, "base/slow:1", None)
        .unwrap();
    let proxy = FaultProxy::in_front_of(registry, Faults::none().shape(Shaping::new(RATE_MB, 0)));
    let reference = format!("{}/base/slow:1", proxy.host_port());
    SlowBase {
        proxy,
        reference,
        layers: base_layers,
        slow_digest,
        slow_size,
    }
}

impl SlowBase {
    /// Builds `FROM` this base then `rest`, pushed through the proxy as `name`.
    fn build_pushed(&self, rest: &str, name: &str) -> (BuildOutcome, String) {
        let fx = context(&format!("FROM {}\n{rest}", self.reference));
        let destination = format!("{}/copy/{name}:1", self.proxy.host_port());
        (build(&options(&fx, Some(&destination))), destination)
    }

    /// Asserts that the blob `layer` was in the registry before the slow base layer
    /// could have arrived (the proxy allows no more than `RATE_MB`).
    fn assert_uploaded_before_the_base(&self, layer: &str) {
        let log = self.proxy.requests();
        let hex = self.slow_digest.trim_start_matches("sha256:");
        let base_get = log
            .iter()
            .find(|r| r.method == "GET" && r.path.ends_with(hex))
            .unwrap_or_else(|| panic!("the slow base layer was never fetched: {log:#?}"));
        let earliest_arrival = base_get.arrived
            + Duration::from_secs_f64(self.slow_size as f64 / (RATE_MB << 20) as f64);
        let put = closing_put(&log, layer);
        assert!(
            put.answered < earliest_arrival,
            "the COPY's layer was uploaded {:?} after the base layer's GET, which takes at least {:?}",
            put.answered - base_get.arrived,
            earliest_arrival - base_get.arrived
        );
    }
}

#[test]
fn copy_layer_uploads_while_the_base_downloads_and_is_the_usual_layer() {
    let registry = Registry::start_plain();
    let base = slow_base(&registry);
    let rest = "COPY files /app\nRUN cat /app/a.txt /app/sub/c.txt > /seen\n";
    let (outcome, destination) = base.build_pushed(rest, "ahead");
    let copy_layer = step_layer(&outcome, base.layers, 0);
    base.assert_uploaded_before_the_base(&copy_layer);

    // The next RUN read the COPY's files from the root.
    let seen = pushed_layer_entries(&destination, &step_layer(&outcome, base.layers, 1));
    assert!(seen.iter().any(|(p, ..)| p == "seen"), "{seen:?}");

    // The same layer as a build whose root is laid out before the COPY.
    let usual = usual_build(&base.reference, rest, false);
    assert_eq!(copy_layer, step_layer(&usual, base.layers + 1, 0));
}

#[test]
fn a_workdir_before_the_copy_waits_for_the_base_and_the_copy_does_not() {
    let registry = Registry::start_plain();
    let base = slow_base(&registry);
    let rest = "WORKDIR /app\nENV A=1\nCOPY files .\nRUN cat a.txt sub/c.txt > /seen\n";
    let (outcome, destination) = base.build_pushed(rest, "workdir");
    // WORKDIR's layer (it created /app), the COPY's, the RUN's.
    assert_eq!(
        outcome.layers.len(),
        base.layers + 3,
        "{:#?}",
        outcome.layers
    );
    base.assert_uploaded_before_the_base(&step_layer(&outcome, base.layers, 1));

    // The same layers as a build whose root is laid out before the WORKDIR.
    let usual = usual_build(&base.reference, rest, false);
    let ours: Vec<_> = outcome.layers[base.layers..]
        .iter()
        .map(|l| &l.digest)
        .collect();
    let theirs: Vec<_> = usual.layers[base.layers + 1..]
        .iter()
        .map(|l| &l.digest)
        .collect();
    assert_eq!(ours, theirs);
    // The WORKDIR's history entry, recorded before its layer existed, has it.
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    skopeo(|c| {
        c.args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{destination}"))
            .arg(format!("oci:{}:pulled", layout.display()));
    });
    let (_, config) = layout_documents(&layout);
    let history = config["history"].as_array().unwrap();
    let with_layers: Vec<&str> = history
        .iter()
        .filter(|h| h["empty_layer"] != true)
        .map(|h| h["created_by"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        with_layers.len(),
        config["rootfs"]["diff_ids"].as_array().unwrap().len()
    );
    assert_eq!(
        &with_layers[base.layers..],
        [
            "WORKDIR /app",
            "COPY files . # buildkit",
            "RUN /bin/sh -c cat a.txt sub/c.txt > /seen # buildkit"
        ],
        "{history:#?}"
    );
}

/// A tar header owned by root, empty until a size is set.
fn header(kind: tar::EntryType, mode: u32, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(0);
    h
}

/// A base whose `/opt` has its own mode and time (not a new directory's) and whose `/link` points at it.
fn base_with_opt() -> FixtureImage {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = header(tar::EntryType::Directory, 0o750, 1_000_000);
    tar.append_data(&mut dir, "opt/", std::io::empty()).unwrap();
    let mut link = header(tar::EntryType::Symlink, 0o777, 0);
    tar.append_link(&mut link, "link", "opt").unwrap();
    FixtureImage::from_layers(
        vec![FixtureLayer::from_tar(&tar.into_inner().unwrap(), true)],
        &["sh"],
    )
}

#[test]
fn a_base_that_changes_the_copy_gets_the_usual_layer_and_a_complete_push() {
    let registry = Registry::start_plain();
    base_with_opt().push(&registry, "base/opt:1", None).unwrap();
    let proxy = FaultProxy::in_front_of(&registry, Faults::none());
    let base = format!("{}/base/opt:1", proxy.host_port());
    // (destination, where the files must land, what the layer must not hold)
    let cases = [
        ("/opt/app/", "opt/app/a.txt", None),
        ("/link/more/", "opt/more/a.txt", Some("link/")),
    ];
    for (n, (dest, landed, absent)) in cases.into_iter().enumerate() {
        let fx = context(&format!("FROM {base}\nCOPY files {dest}\n"));
        // Big enough that the early encoding is still going when it is stopped.
        with_big_file(&fx);
        let destination = format!("{}/copy/usual:{n}", proxy.host_port());
        let outcome = build(&options(&fx, Some(&destination)));
        let layer = step_layer(&outcome, 1, 0);
        let usual = usual_build(&base, &format!("COPY files {dest}\n"), true);
        assert_eq!(
            layer,
            step_layer(&usual, 2, 0),
            "COPY to {dest}: not the layer of a build with its root laid out first"
        );
        // The pushed image is complete (every blob readable) and the layer holds
        // the base's /opt as it is, the files where the base's paths lead.
        let entries = pushed_layer_entries(&destination, &layer);
        let opt = entries
            .iter()
            .find(|(p, ..)| p == "opt/")
            .unwrap_or_else(|| panic!("COPY to {dest}: no opt/ in {entries:?}"));
        assert_eq!(opt.1, 0o750, "COPY to {dest}: {opt:?}");
        assert!(
            entries.iter().any(|(p, ..)| p == landed),
            "COPY to {dest}: no {landed} in {entries:?}"
        );
        if let Some(absent) = absent {
            assert!(
                !entries.iter().any(|(p, ..)| p.starts_with(absent)),
                "COPY to {dest}: {absent} in {entries:?}"
            );
        }
    }
}

#[test]
fn copy_link_makes_its_layer_on_an_empty_root_whatever_the_base_holds() {
    let registry = Registry::start_plain();
    base_with_opt().push(&registry, "base/opt:1", None).unwrap();
    let base = format!("{}/base/opt:1", registry.host_port());
    // The first COPY runs ahead of the base, the second on the laid-out root.
    let fx = context(&format!(
        "FROM {base}\nCOPY --link files /link/more/\nCOPY --link files /opt/app/\n"
    ));
    let outcome = build(&options(&fx, None));
    let layout = fx.work.path().join("layout");
    let first = layer_entries(&layout, &step_layer(&outcome, 1, 0));
    let second = layer_entries(&layout, &step_layer(&outcome, 1, 1));
    // Not through the base's symlink: link/ is a new directory.
    assert!(
        first.iter().any(|(p, m, _)| p == "link/" && *m == 0o755),
        "{first:?}"
    );
    assert!(
        first.iter().any(|(p, ..)| p == "link/more/a.txt"),
        "{first:?}"
    );
    assert!(
        !first.iter().any(|(p, ..)| p.starts_with("opt/")),
        "{first:?}"
    );
    // Not the base's /opt (0750): a new directory's metadata.
    assert!(
        second.iter().any(|(p, m, _)| p == "opt/" && *m == 0o755),
        "{second:?}"
    );
    assert!(
        second.iter().any(|(p, ..)| p == "opt/app/sub/c.txt"),
        "{second:?}"
    );
}
