//! The pull pipeline against a real registry: base layers download
//! concurrently (at most `CONCURRENT` at once, counted by the fault proxy)
//! through a shaped link while they are applied, giving the same tree as
//! unpacking them from the blob store; a blob corrupted in the registry's
//! storage fails the build naming registry, repository and digest, before any
//! step runs on the root and without pushing anything. With the layer cache
//! on, the base's layers, fetched only once a step misses, download the same
//! way. A base's config and its layers are requested together.

mod support;

use std::path::Path;

use kiln_testkit::{FaultProxy, Faults, Registry, Shaping, TruncateRule};
use support::{Fixture, Recorder, run_tokio};

/// The pipeline's bound (`pull::pipeline::CONCURRENT`).
const CONCURRENT: usize = 3;
const LAYER: usize = 1_500_000;

/// Pushes a base of seven layers (busybox, five big files, a RUN removing one
/// of them and adding a directory) as `pull/base:v1`.
fn push_base(registry: &Registry) -> String {
    let reference = format!("{}/pull/base:v1", registry.host_port());
    let files: Vec<(String, String)> = (0..5)
        .map(|i| (format!("f{i}.bin"), kiln_testkit::noise::text(LAYER, i)))
        .collect();
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_str()))
        .collect();
    let copies: String = (0..5)
        .map(|i| format!("COPY f{i}.bin /data/f{i}.bin\n"))
        .collect();
    let fx = Fixture::new(
        &format!(
            "FROM scratch\nADD rootfs.tar /\n{copies}RUN rm /data/f2.bin && mkdir -p /made/here\n"
        ),
        &borrowed,
    );
    let mut options = fx.options();
    options.no_push = false;
    options.registry.insecure = true;
    options.destinations = vec![reference.clone()];
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    reference
}

/// A RUN writing, for every path of the root, its type, mode, owner, size,
/// mtime and (files) md5 to `/listing`; except what the RUN sandbox itself
/// mounts or writes (`/`, `/dev`, `/proc`, `/sys`, `/etc` and the two files it
/// binds there), whose times are the RUN's, not the layers'.
const LISTING: &str = "RUN find / -xdev ! -path /listing ! -path / ! -path /dev ! -path /proc \
! -path /sys ! -path /etc ! -path /etc/hosts ! -path /etc/resolv.conf | sort | while read -r p; do \
stat -c '%n %F %a %u %g %s %Y' \"$p\"; if [ -f \"$p\" ]; then md5sum \"$p\"; fi; done > /listing\n";

/// `/listing` from the last layer of the image in `layout`.
fn listing(layout: &Path) -> String {
    let (manifest, _) = support::layout_documents(layout);
    let last = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let blob = support::layout_blob(layout, &last);
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("listing") {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            return text;
        }
    }
    panic!("no /listing in the last layer");
}

fn blob_gets(proxy: &FaultProxy) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/blobs/sha256:"))
        .count()
}

#[test]
fn pipelined_pull_gives_the_stored_tree_with_bounded_concurrent_downloads() {
    let registry = Registry::start_plain();
    push_base(&registry);
    // 10 MB/s per connection: each layer takes ~150 ms, so downloads overlap
    let proxy = FaultProxy::in_front_of(&registry, Faults::none().shape(Shaping::new(10, 20)));
    let base = format!("{}/pull/base:v1", proxy.host_port());
    let fx = Fixture::new(&format!("FROM {base}\n{LISTING}"), &[]);

    // cold store: every layer downloads and is applied as it arrives
    let (mut options, layout) = fx.layout_options();
    options.registry.insecure_pull = true;
    let recorder = Recorder::default();
    run_tokio(kiln_build::build(&options, &recorder)).unwrap();
    let streamed = listing(&layout);
    let fetched = blob_gets(&proxy);
    assert!(fetched >= 7, "config and seven layers: {fetched} blob GETs");
    let most = proxy.max_concurrent_blob_gets();
    assert!(
        (2..=CONCURRENT).contains(&most),
        "{most} blob downloads at once, expected 2..={CONCURRENT}"
    );
    let progress = recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, kiln_build::BuildEvent::BlobProgress { .. }))
        .count();
    assert!(progress >= 7, "{progress} progress events");

    // warm store (same kiln dir): no layer downloads, applied from the store
    fs_err::remove_dir_all(&layout).unwrap();
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    let stored = listing(&layout);
    let layer_gets = blob_gets(&proxy) - fetched;
    assert!(
        layer_gets <= 1,
        "only the config may be fetched again: {layer_gets}"
    );

    let differing: Vec<(&str, &str)> = streamed
        .lines()
        .zip(stored.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert!(differing.is_empty(), "{differing:#?}");
    assert_eq!(streamed.lines().count(), stored.lines().count());
    assert!(streamed.contains("/data/f4.bin regular file"), "{streamed}");
    assert!(streamed.contains("/made/here directory"), "{streamed}");
    assert!(!streamed.contains("/data/f2.bin"), "whiteout not applied");
    assert!(streamed.contains("/bin/busybox"), "{streamed}");
}

/// With the layer cache on, a stage lays its files out only when a step
/// misses; the base's layers then come through the same pipeline: downloads
/// at once (bounded), and the same tree as a build without the cache.
#[test]
fn with_the_cache_on_base_layers_download_concurrently_and_give_the_same_tree() {
    let registry = Registry::start_plain();
    push_base(&registry);

    // without the cache, straight from the registry
    let direct = Fixture::new(
        &format!("FROM {}/pull/base:v1\n{LISTING}", registry.host_port()),
        &[],
    );
    let (mut options, layout) = direct.layout_options();
    options.registry.insecure_pull = true;
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    let uncached = listing(&layout);

    // with the cache (an empty one, in the registry, not behind the proxy) and
    // a cold store: the RUN misses, so the base is fetched through the shaped link
    let proxy = FaultProxy::in_front_of(&registry, Faults::none().shape(Shaping::new(10, 20)));
    let fx = Fixture::new(
        &format!("FROM {}/pull/base:v1\n{LISTING}", proxy.host_port()),
        &[],
    );
    let (mut options, layout) = fx.layout_options();
    options.registry.insecure_pull = true;
    options.registry.insecure = true;
    options.cache.enabled = true;
    options.cache.repo = Some(format!("{}/pull/cache", registry.host_port()));
    let recorder = Recorder::default();
    run_tokio(kiln_build::build(&options, &recorder)).unwrap();
    let lookups: Vec<bool> = recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            kiln_build::BuildEvent::CacheLookup { hit, .. } => Some(*hit),
            _ => None,
        })
        .collect();
    assert_eq!(lookups, [false], "one lookup, the RUN's, a miss");
    let fetched = blob_gets(&proxy);
    assert!(fetched >= 7, "config and seven layers: {fetched} blob GETs");
    let most = proxy.max_concurrent_blob_gets();
    assert!(
        (2..=CONCURRENT).contains(&most),
        "{most} blob downloads at once with the cache on, expected 2..={CONCURRENT}"
    );

    let cached = listing(&layout);
    let differing: Vec<(&str, &str)> = uncached
        .lines()
        .zip(cached.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert!(differing.is_empty(), "{differing:#?}");
    assert_eq!(uncached.lines().count(), cached.lines().count());
    assert!(cached.contains("/data/f4.bin regular file"), "{cached}");
    assert!(!cached.contains("/data/f2.bin"), "whiteout not applied");
}

/// Blob bodies cut short make the downloads retry from zero while the layers
/// are being applied from them: the build still gets the registry's tree.
#[test]
fn downloads_retried_mid_layer_still_give_the_stored_tree() {
    let registry = Registry::start_plain();
    push_base(&registry);
    // the config and the first three layers are cut after 400 kB
    let cut = TruncateRule::first(4, 400_000).matching(Some("GET"), Some("/blobs/sha256:"));
    let proxy = FaultProxy::in_front_of(&registry, Faults::none().truncate(cut));
    let fx = Fixture::new(
        &format!("FROM {}/pull/base:v1\n{LISTING}", proxy.host_port()),
        &[],
    );
    let (mut options, layout) = fx.layout_options();
    options.registry.insecure_pull = true;
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    let retried = listing(&layout);
    let cut_short = proxy
        .requests()
        .iter()
        .filter(|r| r.fault == Some("truncate"))
        .count();
    assert_eq!(cut_short, 4);

    // the same base straight from the registry, into a fresh store
    let direct = Fixture::new(
        &format!("FROM {}/pull/base:v1\n{LISTING}", registry.host_port()),
        &[],
    );
    let (mut options, layout) = direct.layout_options();
    options.registry.insecure_pull = true;
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    assert_eq!(retried, listing(&layout));
    assert!(retried.contains("/data/f0.bin regular file"), "{retried}");
}

/// The registry's stored copy of the last big layer, corrupted in place (same size).
fn corrupt_largest_layer(registry: &Registry) -> String {
    let blobs = registry
        .storage_dir()
        .join("docker/registry/v2/blobs/sha256");
    let mut largest = (0u64, std::path::PathBuf::new());
    for prefix in fs_err::read_dir(&blobs).unwrap() {
        for blob in fs_err::read_dir(prefix.unwrap().path()).unwrap() {
            let data = blob.unwrap().path().join("data");
            let len = fs_err::metadata(&data).unwrap().len();
            if len > largest.0 {
                largest = (len, data);
            }
        }
    }
    let (len, data) = largest;
    assert!(
        len > LAYER as u64 / 2,
        "no big layer in {}",
        blobs.display()
    );
    let mut bytes = fs_err::read(&data).unwrap();
    for b in bytes.iter_mut().skip(len as usize / 2).take(4096) {
        *b ^= 0x5a;
    }
    fs_err::write(&data, &bytes).unwrap();
    format!(
        "sha256:{}",
        data.parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
    )
}

#[test]
fn a_corrupt_layer_fails_the_build_before_any_step_uses_the_root() {
    let registry = Registry::start_plain();
    let base = push_base(&registry);
    let digest = corrupt_largest_layer(&registry);
    let fx = Fixture::new(&format!("FROM {base}\nRUN echo ran-on-the-root\n"), &[]);
    let mut options = fx.options();
    options.no_push = false;
    options.registry.insecure = true;
    options.registry.insecure_pull = true;
    let target = format!("{}/pull/out:v1", registry.host_port());
    options.destinations = vec![target];
    let recorder = Recorder::default();
    let err = run_tokio(kiln_build::build(&options, &recorder))
        .unwrap_err()
        .to_string();
    eprintln!("the build failed with: {err}");
    for part in [registry.host_port().as_str(), "pull/base", digest.as_str()] {
        assert!(err.contains(part), "{part:?} not in: {err}");
    }
    assert!(
        err.contains("digest") || err.contains("mismatch"),
        "says why: {err}"
    );
    let ran: Vec<String> = recorder.run_lines();
    assert!(
        !ran.iter().any(|l| l.contains("ran-on-the-root")),
        "a step ran on the root: {ran:?}"
    );
    // nothing pushed: the tag does not exist
    let out = std::process::Command::new(support::tool("/usr/bin/skopeo"))
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{}/pull/out:v1", registry.host_port()))
        .output()
        .unwrap();
    assert!(!out.status.success(), "the tag was pushed");
    // the partial download was removed from the blob store
    let store = fx.work.path().join("kiln/blobs/sha256");
    let leftovers: Vec<_> = fs_err::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let corrupt = store.join(digest.trim_start_matches("sha256:"));
    assert!(!corrupt.exists(), "the corrupt blob was stored");
}

/// The scheduler's bound on bases resolved at once (`scheduler::CONCURRENT_PULLS`).
const CONCURRENT_PULLS: usize = 3;

/// The most requests whose path contains `part` the proxy had in flight at once
/// (from when each arrived to when it was answered).
fn most_in_flight(proxy: &FaultProxy, part: &str) -> usize {
    let log = proxy.requests();
    let matching: Vec<_> = log.iter().filter(|r| r.path.contains(part)).collect();
    matching
        .iter()
        .map(|r| {
            matching
                .iter()
                .filter(|o| o.arrived <= r.arrived && r.arrived < o.answered)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Four bases behind a proxy adding 200 ms to every request: the puller resolves them
/// up to three at once (their manifest requests overlap, never four), and the image is
/// byte-identical to a sequential (`--jobs 1`) build's.
#[test]
fn bases_are_resolved_concurrently_up_to_the_bound() {
    let registry = Registry::start_plain();
    let busybox = kiln_testkit::FixtureImage::busybox();
    for name in ["a", "b", "c", "d"] {
        busybox
            .push(&registry, &format!("bases/{name}:1"), None)
            .unwrap();
    }
    let proxy = FaultProxy::in_front_of(&registry, Faults::none().shape(Shaping::new(50, 200)));
    let via = proxy.host_port();
    let fx = Fixture::new(
        &format!(
            "FROM {via}/bases/a:1 AS a\nFROM {via}/bases/b:1 AS b\nFROM {via}/bases/c:1 AS c\n\
             FROM {via}/bases/d:1\n\
             COPY --from=a /bin/busybox /a\nCOPY --from=b /bin/busybox /b\nCOPY --from=c /bin/busybox /c\n"
        ),
        &[],
    );
    let (mut options, layout) = fx.layout_options();
    options.registry.insecure_pull = true;
    options.reproducible = true;
    options.jobs = 4;
    let parallel = run_tokio(kiln_build::build(&options, &Recorder::default()))
        .unwrap_or_else(|e| panic!("{e}"));
    let at_once = most_in_flight(&proxy, "/manifests/");
    assert!(
        (2..=CONCURRENT_PULLS).contains(&at_once),
        "{at_once} manifest requests in flight at once, expected 2..={CONCURRENT_PULLS}: {:#?}",
        proxy.requests()
    );

    fs_err::remove_dir_all(&layout).unwrap();
    options.jobs = 1;
    let sequential = run_tokio(kiln_build::build(&options, &Recorder::default())).unwrap();
    assert_eq!(parallel.digest, sequential.digest, "byte-identical images");
}

/// A stage's base config is fetched beside its layers, not before them: through a
/// proxy adding 100 ms per request, the config's `GET` and the layer's `GET` each
/// arrive before the other is answered, in the sequential stage loop and in the
/// parallel scheduler.
#[test]
fn the_base_config_and_its_layer_are_in_flight_together() {
    let base = kiln_testkit::FixtureImage::busybox();
    let config = kiln_oci::Digest::sha256_of(&base.config).hex().to_string();
    let layer = base.layers[0].digest();
    for jobs in [1, 2] {
        let registry = Registry::start_plain();
        base.push(&registry, "overlap/base:1", None).unwrap();
        let proxy =
            FaultProxy::in_front_of(&registry, Faults::none().shape(Shaping::new(1000, 100)));
        let via = proxy.host_port();
        let fx = Fixture::new(
            &format!("FROM {via}/overlap/base:1\nCOPY small.txt /small.txt\n"),
            &[("small.txt", "small\n")],
        );
        let mut options = fx.options();
        options.registry.insecure_pull = true;
        options.jobs = jobs;
        run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
        let log = proxy.requests();
        let get = |digest: &str| {
            log.iter()
                .find(|r| r.method == "GET" && r.path.ends_with(digest))
                .unwrap_or_else(|| panic!("no GET of {digest}: {log:#?}"))
        };
        let (config, layer) = (get(&config), get(&layer));
        assert!(
            config.arrived < layer.answered && layer.arrived < config.answered,
            "--jobs {jobs}: the layer waited for the config: {log:#?}"
        );
    }
}

/// A base config the registry will not serve fails the build at its `FROM` step,
/// naming the image, although the stage only waits for it once its layers are
/// downloading; no later step runs.
#[test]
fn a_base_config_that_cannot_be_fetched_fails_the_from_step() {
    let base = kiln_testkit::FixtureImage::busybox();
    let config = kiln_oci::Digest::sha256_of(&base.config).hex().to_string();
    let registry = Registry::start_plain();
    base.push(&registry, "overlap/base:1", None).unwrap();
    let refuse = kiln_testkit::FailRule::status(404, usize::MAX)
        .code("BLOB_UNKNOWN")
        .matching(Some("GET"), Some(&config));
    let proxy = FaultProxy::in_front_of(&registry, Faults::none().fail(refuse));
    let via = proxy.host_port();
    let fx = Fixture::new(
        &format!("FROM {via}/overlap/base:1\nRUN echo never > /never\n"),
        &[],
    );
    let mut options = fx.options();
    options.registry.insecure_pull = true;
    let recorder = Recorder::default();
    let err = run_tokio(kiln_build::build(&options, &recorder))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("STEP 1")
            && err.contains(&format!("FROM {via}/overlap/base:1"))
            && err.contains(&format!("pulling base image {via}/overlap/base:1"))
            && err.contains(&config),
        "{err}"
    );
    let steps = recorder.step_lines();
    assert!(
        !steps.iter().any(|s| s.contains("RUN")),
        "a RUN started: {steps:?}"
    );
}
