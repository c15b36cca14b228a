//! HTTPS registries: a private CA trusted per registry, the unknown-authority error naming
//! the registry when it is not, skip-verify, and plain HTTP refused unless insecure.

mod common;

use common::*;
use kiln_registry::{Client, ErrorKind, RepoRef};
use kiln_testkit::{Registry, RegistryTls};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_ca_round_trip_and_unknown_ca_error() {
    let tls = RegistryTls::generate();
    let ca_pem = tls.ca_pem_path().to_path_buf();
    let reg = Registry::builder().tls(tls).start();
    let host = reg.host_port();
    let dir = tempfile::tempdir().unwrap();
    let img = test_image(dir.path(), &[10_000, 20_000], 20, "amd64");

    let trusted = Client::new(options(&host, false, Some(&ca_pem), None));
    trusted
        .push_image(&img.image, &[target(&host, "secure/app", "v1")])
        .await
        .unwrap();
    assert_pulls_back(
        &trusted,
        &RepoRef::new(&host, "secure/app"),
        "v1",
        &img,
        dir.path(),
    )
    .await;
    let cert_dir = reg.tls().unwrap().cert_dir().to_string_lossy().into_owned();
    let raw = skopeo_inspect(
        &format!("{host}/secure/app:v1"),
        false,
        &["--cert-dir", &cert_dir],
    );
    assert_eq!(raw, img.image.manifest.to_vec());

    // Without the CA: an unknown-authority error naming the registry, not retried.
    let untrusted = Client::new(options(&host, false, None, None));
    let err = untrusted
        .push_image(&img.image, &[target(&host, "secure/app", "v2")])
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::UnknownAuthority { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&host) && err.to_string().contains("unknown authority"),
        "{err}"
    );
    assert_eq!(err.attempts(), 1, "{err}");

    // Marked insecure (HTTPS then HTTP) but serving TLS: still the certificate message.
    let insecure = Client::new(options(&host, true, None, None));
    let err = insecure
        .blob_exists(&RepoRef::new(&host, "secure/app"), &img.digest)
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::UnknownAuthority { .. }),
        "{err:?}"
    );

    // Skip-verify for that registry works without the CA.
    let mut opts = options(&host, false, None, None);
    opts.skip_tls_verify_registries.insert(host.clone());
    let skipping = Client::new(opts);
    skipping
        .push_image(&img.image, &[target(&host, "secure/app", "v2")])
        .await
        .unwrap();
    assert_pulls_back(
        &skipping,
        &RepoRef::new(&host, "secure/app"),
        "v2",
        &img,
        dir.path(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_only_when_the_registry_is_insecure() {
    let reg = Registry::start_plain();
    let host = reg.host_port();
    let strict = Client::new(options(&host, false, None, None));
    let err = strict
        .blob_exists(
            &RepoRef::new(&host, "x"),
            &kiln_oci::Digest::sha256_of(b"x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("--insecure-registry"), "{err}");
    assert_eq!(err.attempts(), 1, "a TLS failure is not retried: {err}");

    // kaniko's --insecure-pull: pulls may use HTTP, pushes may not.
    let mut opts = options(&host, false, None, None);
    opts.insecure_pull = true;
    let client = Client::new(opts);
    let dir = tempfile::tempdir().unwrap();
    let img = test_image(dir.path(), &[100], 21, "amd64");
    assert!(
        client
            .push_image(&img.image, &[target(&host, "ip/app", "v1")])
            .await
            .is_err()
    );
    plain_client(&host)
        .push_image(&img.image, &[target(&host, "ip/app", "v1")])
        .await
        .unwrap();
    assert_pulls_back(
        &client,
        &RepoRef::new(&host, "ip/app"),
        "v1",
        &img,
        dir.path(),
    )
    .await;
}
