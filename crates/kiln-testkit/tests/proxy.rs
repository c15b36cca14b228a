//! The fault proxy forwards transparently, and injects each fault exactly as configured.

use std::process::Command;

use kiln_testkit::proxy::RequestMatch;
use kiln_testkit::{FailRule, FaultProxy, Faults, FixtureImage, Registry, TruncateRule};

/// Runs curl; returns (exit code, HTTP status, body bytes, headers).
fn curl(args: &[&str]) -> (i32, String, Vec<u8>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = dir.path().join("body");
    let headers = dir.path().join("headers");
    let out = Command::new("curl")
        .args(["-s", "-w", "%{http_code}", "-o"])
        .arg(&body)
        .arg("-D")
        .arg(&headers)
        .args(args)
        .output()
        .expect("needs curl: run .ci/install-deps");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf8"),
        std::fs::read(&body).unwrap_or_default(),
        std::fs::read_to_string(&headers).unwrap_or_default(),
    )
}

#[test]
fn transparent_proxy_carries_a_skopeo_push_and_counts() {
    let registry = Registry::start_plain();
    let proxy = FaultProxy::in_front_of(&registry, Faults::none());
    let image = FixtureImage::busybox();
    image
        .push_to_host(&proxy.host_port(), None, "via/proxy:1", None)
        .expect("push through proxy");
    assert!(proxy.request_count() >= 4, "{:?}", proxy.requests());
    assert!(proxy.requests().iter().all(|r| r.fault.is_none()));
    // The image landed in the registry behind it.
    let manifest = format!(
        "{}/v2/via/proxy/manifests/{}",
        registry.url(),
        image.manifest_digest()
    );
    assert_eq!(
        curl(&[
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &manifest
        ])
        .1,
        "200"
    );
}

#[test]
fn first_requests_fail_with_500_then_pass() {
    let registry = Registry::start_plain();
    let proxy = FaultProxy::in_front_of(&registry, Faults::none().fail(FailRule::status(500, 2)));
    let url = format!("{}/v2/", proxy.url());
    assert_eq!(curl(&[&url]).1, "500");
    assert_eq!(curl(&[&url]).1, "500");
    assert_eq!(curl(&[&url]).1, "200");
    assert_eq!(proxy.request_count(), 3);
    let faults: Vec<_> = proxy.requests().iter().map(|r| r.fault).collect();
    assert_eq!(faults, [Some("fail"), Some("fail"), None]);
}

#[test]
fn rate_limit_carries_retry_after_and_matches_only_its_requests() {
    let registry = Registry::start_plain();
    let rule = FailRule::status(429, 1)
        .retry_after("2")
        .matching(Some("GET"), Some("/tags/list"));
    let proxy = FaultProxy::in_front_of(&registry, Faults::none().fail(rule));
    // Not matching: forwarded.
    assert_eq!(curl(&[&format!("{}/v2/", proxy.url())]).1, "200");
    let (_, status, _, headers) = curl(&[&format!("{}/v2/a/tags/list", proxy.url())]);
    assert_eq!(status, "429");
    assert!(
        headers.to_ascii_lowercase().contains("retry-after: 2"),
        "{headers}"
    );
    // Only once.
    assert_eq!(curl(&[&format!("{}/v2/a/tags/list", proxy.url())]).1, "404");
    assert_eq!(
        RequestMatch::default(),
        RequestMatch {
            method: None,
            path_contains: None
        }
    );
}

#[test]
fn first_connections_are_dropped() {
    let registry = Registry::start_plain();
    let proxy = FaultProxy::in_front_of(&registry, Faults::none().drop_connections(2));
    let url = format!("{}/v2/", proxy.url());
    let (code, ..) = curl(&[&url]);
    assert!(
        code == 52 || code == 56,
        "curl exit {code}: empty reply / recv failure expected"
    );
    assert_ne!(curl(&[&url]).0, 0);
    let (code, status, body, _) = curl(&[&url]);
    assert_eq!(
        (code, status.as_str(), body.as_slice()),
        (0, "200", b"{}".as_slice())
    );
    assert_eq!(proxy.connection_count(), 3);
    assert_eq!(
        proxy.request_count(),
        1,
        "dropped connections carry no request"
    );
}

#[test]
fn blob_bodies_are_truncated_and_the_connection_aborted() {
    let registry = Registry::start_plain();
    let image = FixtureImage::busybox();
    image.push(&registry, "t/busybox:1", None).expect("push");
    let layer = &image.layers[0];
    let rule = TruncateRule::first(1, 1000).matching(Some("GET"), Some("/blobs/"));
    let proxy = FaultProxy::in_front_of(&registry, Faults::none().truncate(rule));
    let url = format!("{}/v2/t/busybox/blobs/{}", proxy.url(), layer.digest());
    let (code, status, body, _) = curl(&["-L", &url]);
    assert_eq!(code, 18, "curl: partial file");
    assert_eq!(status, "200");
    assert_eq!(body.len(), 1000);
    assert_eq!(body, layer.blob[..1000]);
    let (code, _, body, _) = curl(&["-L", &url]);
    assert_eq!(code, 0);
    assert_eq!(body, layer.blob, "second fetch is intact");
}

#[test]
fn stopped_proxy_refuses_connections() {
    let registry = Registry::start_plain();
    let mut proxy = FaultProxy::in_front_of(&registry, Faults::none());
    let url = format!("{}/v2/", proxy.url());
    assert_eq!(curl(&[&url]).1, "200");
    proxy.stop();
    assert_eq!(curl(&[&url]).0, 7, "connection refused");
}

/// A shaped proxy is never faster than its limits: a blob download takes at
/// least size / rate plus the latency, and a monolithic upload at least
/// size / rate (lower bounds only: the machine may always be slower).
#[test]
fn shaping_limits_bandwidth_and_adds_latency() {
    use kiln_testkit::Shaping;
    use std::time::{Duration, Instant};
    let registry = Registry::start_plain();
    let image = FixtureImage::busybox();
    image.push(&registry, "t/busybox:1", None).expect("push");
    let layer = &image.layers[0];
    let shaping = Shaping::new(2, 150);
    let proxy = FaultProxy::in_front_of(&registry, Faults::none().shape(shaping));
    let size = layer.blob.len() as f64;
    let floor = Duration::from_secs_f64(size / shaping.bytes_per_sec as f64);
    assert!(
        floor > Duration::from_millis(100),
        "layer too small: {size}"
    );

    let url = format!("{}/v2/t/busybox/blobs/{}", proxy.url(), layer.digest());
    let started = Instant::now();
    let (code, status, body, _) = curl(&["-L", &url]);
    let took = started.elapsed();
    assert_eq!((code, status.as_str()), (0, "200"));
    assert_eq!(body, layer.blob, "the shaped body is intact");
    assert!(
        took >= floor + shaping.latency,
        "{took:?} < {floor:?} + latency"
    );
    assert_eq!(proxy.max_concurrent_blob_gets(), 1);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob");
    // another blob (the registry has this one): the bytes reversed
    let mut other = layer.blob.clone();
    other.reverse();
    std::fs::write(&file, &other).unwrap();
    let digest = kiln_testkit::image::sha256_digest(&other);
    let start = format!("{}/v2/t/up/blobs/uploads/", proxy.url());
    let (code, status, _, headers) = curl(&["-X", "POST", &start]);
    assert_eq!((code, status.as_str()), (0, "202"), "{headers}");
    let location = headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
        .expect("upload location")
        .trim()
        .to_owned();
    let url = format!("{location}&digest={digest}");
    let started = Instant::now();
    let (code, status, _, headers) = curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", file.display()),
        &url,
    ]);
    let took = started.elapsed();
    assert_eq!((code, status.as_str()), (0, "201"), "{headers}");
    assert!(took >= floor, "{took:?} < {floor:?}");
}
