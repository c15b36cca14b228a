//! TLS and htpasswd registries behave as clients expect: curl exits 60 without the CA,
//! gets 401 without or with wrong credentials, and 200 with them.

use std::process::Command;

use kiln_testkit::{Registry, RegistryTls};

/// Runs curl, returns (exit code, HTTP status).
fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("needs curl: run .ci/install-deps");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf8"),
    )
}

#[test]
fn tls_registry_is_trusted_only_with_its_ca() {
    let registry = Registry::start_tls();
    let url = format!("{}/v2/", registry.url());
    assert!(url.starts_with("https://127.0.0.1:"));
    let (code, _) = curl(&[&url]);
    assert_eq!(code, 60, "curl must reject the unknown CA");
    let ca = registry
        .tls()
        .expect("tls")
        .ca_pem_path()
        .to_str()
        .expect("utf8 path")
        .to_owned();
    assert_eq!(curl(&["--cacert", &ca, &url]), (0, "200".to_owned()));
    // DNS:localhost is in the SAN too.
    let by_name = url.replace("127.0.0.1", "localhost");
    assert_eq!(curl(&["--cacert", &ca, &by_name]), (0, "200".to_owned()));
}

#[test]
fn ca_has_critical_ca_constraints_and_server_cert_has_sans() {
    let tls = RegistryTls::generate();
    let text = |path: &std::path::Path| {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(path)
            .output()
            .expect("needs openssl: run .ci/install-deps");
        String::from_utf8(out.stdout).expect("utf8")
    };
    let ca = text(tls.ca_pem_path());
    assert!(ca.contains("X509v3 Basic Constraints: critical"), "{ca}");
    assert!(ca.contains("CA:TRUE"), "{ca}");
    assert!(ca.contains("Certificate Sign, CRL Sign"), "{ca}");
    let server = text(&tls.server().cert_path);
    assert!(server.contains("IP Address:127.0.0.1"), "{server}");
    assert!(server.contains("DNS:localhost"), "{server}");
    assert!(server.contains("TLS Web Server Authentication"), "{server}");
}

#[test]
fn client_certificates_are_required_when_asked() {
    let tls = RegistryTls::generate().require_client_certs();
    let client = tls.ca().issue_client_cert("kiln-client");
    let registry = Registry::builder().tls(tls).start();
    let url = format!("{}/v2/", registry.url());
    let ca = registry
        .tls()
        .expect("tls")
        .ca_pem_path()
        .to_str()
        .expect("utf8")
        .to_owned();
    let (code, _) = curl(&["--cacert", &ca, &url]);
    assert_ne!(code, 0, "handshake without a client certificate must fail");
    let cert = client.cert_path.to_str().expect("utf8");
    let key = client.key_path.to_str().expect("utf8");
    assert_eq!(
        curl(&["--cacert", &ca, "--cert", cert, "--key", key, &url]),
        (0, "200".to_owned())
    );
}

#[test]
fn htpasswd_registry_checks_bcrypt_credentials() {
    let registry = Registry::start_htpasswd("alice", "s3cret");
    let url = format!("{}/v2/", registry.url());
    assert_eq!(curl(&[&url]).1, "401");
    assert_eq!(curl(&["-u", "alice:wrong", &url]).1, "401");
    assert_eq!(curl(&["-u", "alice:s3cret", &url]).1, "200");
    assert_eq!(registry.htpasswd_credentials(), Some(("alice", "s3cret")));
}

#[test]
fn tls_and_htpasswd_combine() {
    let registry = Registry::builder()
        .tls(RegistryTls::generate())
        .htpasswd("bob", "pw")
        .start();
    let url = format!("{}/v2/", registry.url());
    let ca = registry
        .tls()
        .expect("tls")
        .ca_pem_path()
        .to_str()
        .expect("utf8")
        .to_owned();
    assert_eq!(curl(&["--cacert", &ca, &url]), (0, "401".to_owned()));
    assert_eq!(
        curl(&["--cacert", &ca, "-u", "bob:pw", &url]),
        (0, "200".to_owned())
    );
    let image = kiln_testkit::FixtureImage::busybox();
    image
        .push(&registry, "b/busybox:1", Some(("bob", "pw")))
        .expect("skopeo push over TLS with htpasswd");
}
