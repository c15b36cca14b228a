//! A COPY right after `FROM` is encoded and uploaded while the base image still
//! downloads: through a proxy slowed to 2 MB/s its layer's upload is closed before
//! the base's layer could have arrived, the layer is the one the usual path makes
//! (a build whose root is laid out before the COPY), and its files are in the
//! root for the next RUN. A base with a directory or a symlink on the
//! destination's path changes the layer: the build then makes the usual layer
//! (the base's directory metadata, the symlink followed), and the early upload it
//! dropped does not fail the push.

mod support;

use std::io::Read;
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
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&layout_blob(layout, digest)[..])
        .read_to_end(&mut tar)
        .unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
            )
        })
        .collect()
}

#[test]
fn copy_layer_uploads_while_the_base_downloads_and_is_the_usual_layer() {
    let registry = Registry::start_plain();
    // busybox (for the RUN) and a 6 MB layer that takes at least 3 s through the
    // slowed proxy.
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
        .push(&registry, "base/slow:1", None)
        .unwrap();
    let proxy = FaultProxy::in_front_of(&registry, Faults::none().shape(Shaping::new(RATE_MB, 0)));
    let base = format!("{}/base/slow:1", proxy.host_port());

    let fx = context(&format!(
        "FROM {base}\nCOPY files /app\nRUN cat /app/a.txt /app/sub/c.txt > /seen\n"
    ));
    let destination = format!("{}/copy/ahead:1", proxy.host_port());
    let outcome = build(&options(&fx, Some(&destination)));
    let copy_layer = step_layer(&outcome, base_layers, 0);

    // The slow layer cannot have arrived before `RATE_MB` allows; the COPY's layer
    // was in the registry before that.
    let log = proxy.requests();
    let base_get = log
        .iter()
        .find(|r| r.method == "GET" && r.path.ends_with(slow_digest.trim_start_matches("sha256:")))
        .unwrap_or_else(|| panic!("the slow base layer was never fetched: {log:#?}"));
    let earliest_arrival =
        base_get.arrived + Duration::from_secs_f64(slow_size as f64 / (RATE_MB << 20) as f64);
    let put = closing_put(&log, &copy_layer);
    assert!(
        put.answered < earliest_arrival,
        "the COPY's layer was uploaded {:?} after the base layer's GET, which takes at least {:?}",
        put.answered - base_get.arrived,
        earliest_arrival - base_get.arrived
    );

    // The next RUN read the COPY's files from the root.
    let seen = pushed_layer_entries(&destination, &step_layer(&outcome, base_layers, 1));
    assert!(seen.iter().any(|(p, ..)| p == "seen"), "{seen:?}");

    // The same layer as a build whose root is laid out before the COPY (WORKDIR
    // needs it, and adds no layer).
    let usual = context(&format!(
        "FROM {base}\nWORKDIR /\nCOPY files /app\nRUN cat /app/a.txt /app/sub/c.txt > /seen\n"
    ));
    let usual = build(&options(&usual, None));
    assert_eq!(copy_layer, step_layer(&usual, base_layers, 0));
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
        fs_err::write(
            fx.path().join("files/big.bin"),
            kiln_testkit::noise::bytes(24 << 20, 3),
        )
        .unwrap();
        let destination = format!("{}/copy/usual:{n}", proxy.host_port());
        let outcome = build(&options(&fx, Some(&destination)));
        let layer = step_layer(&outcome, 1, 0);
        let usual = context(&format!("FROM {base}\nWORKDIR /\nCOPY files {dest}\n"));
        fs_err::write(
            usual.path().join("files/big.bin"),
            kiln_testkit::noise::bytes(24 << 20, 3),
        )
        .unwrap();
        assert_eq!(
            layer,
            step_layer(&build(&options(&usual, None)), 1, 0),
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
