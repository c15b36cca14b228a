//! rustls configurations against a real TLS docker-registry: which roots make it
//! trusted, per-registry CA, skip-verify, client certificates, and the error messages.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use kiln_auth::tls::{self, ADDITIONAL_CA_BUNDLE, SystemRoots};
use kiln_auth::{ClientCertificate, MapEnvironment, TlsConfigs, TlsError, TlsOptions};
use kiln_testkit::{Registry, RegistryTls};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;

/// `GET /v2/` over TLS with `config`; the status line, or the error.
fn get_v2(config: Arc<ClientConfig>, registry: &Registry) -> Result<String, std::io::Error> {
    let name = ServerName::try_from("127.0.0.1").expect("IP server name");
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let sock = TcpStream::connect(registry.host_port())?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(
        format!(
            "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            registry.host_port()
        )
        .as_bytes(),
    )?;
    let mut response = String::new();
    tls.read_to_string(&mut response)?;
    Ok(response.lines().next().unwrap_or("").to_owned())
}

fn tls_registry() -> Registry {
    Registry::builder().tls(RegistryTls::generate()).start()
}

fn configs(options: TlsOptions, env: &MapEnvironment) -> TlsConfigs {
    TlsConfigs::new(options, env).expect("TLS configs")
}

#[test]
fn unknown_ca_fails_with_an_actionable_message() {
    let registry = tls_registry();
    let configs = configs(TlsOptions::default(), &MapEnvironment::new());
    assert!(configs.base_root_count() > 0, "system roots loaded");
    let err = get_v2(
        configs
            .client_config(&registry.host_port())
            .expect("config"),
        &registry,
    )
    .expect_err("untrusted");
    let explained = tls::diagnose(&registry.host_port(), &err).expect("a certificate problem");
    assert!(
        matches!(explained, TlsError::UnknownAuthority { .. }),
        "{explained}"
    );
    let text = explained.to_string();
    assert!(text.contains(&registry.host_port()), "{text}");
    assert!(text.contains("signed by an unknown authority"), "{text}");
    assert!(
        text.contains(ADDITIONAL_CA_BUNDLE) && text.contains("--registry-certificate"),
        "{text}"
    );
}

#[test]
fn kaniko_additional_ca_bundle_in_ssl_cert_dir_is_trusted() {
    let registry = tls_registry();
    let certs = tempfile::tempdir().expect("tempdir");
    // As in kaniko's image: a bundle file in /kaniko/ssl/certs, the CA appended to it.
    let bundle = certs.path().join("additional-ca-cert-bundle.crt");
    let ca = std::fs::read_to_string(registry.tls().expect("tls").ca_pem_path()).expect("CA");
    std::fs::write(&bundle, format!("# existing content\n{ca}")).expect("write bundle");
    std::fs::write(certs.path().join("README"), "not a certificate").expect("write README");
    let env = MapEnvironment::new().with("SSL_CERT_DIR", certs.path().to_str().expect("utf8"));
    let configs = configs(
        TlsOptions {
            system_roots: SystemRoots::Empty,
            ..TlsOptions::default()
        },
        &env,
    );
    let status = get_v2(
        configs
            .client_config(&registry.host_port())
            .expect("config"),
        &registry,
    )
    .expect("trusted");
    assert_eq!(status, "HTTP/1.1 200 OK");
}

#[test]
fn ssl_cert_file_is_trusted_in_addition_to_system_roots() {
    let registry = tls_registry();
    let ca = registry
        .tls()
        .expect("tls")
        .ca_pem_path()
        .to_str()
        .expect("utf8")
        .to_owned();
    let without = configs(TlsOptions::default(), &MapEnvironment::new()).base_root_count();
    let configs = configs(
        TlsOptions::default(),
        &MapEnvironment::new().with("SSL_CERT_FILE", ca),
    );
    assert_eq!(configs.base_root_count(), without + 1);
    let status = get_v2(
        configs
            .client_config(&registry.host_port())
            .expect("config"),
        &registry,
    )
    .expect("trusted");
    assert_eq!(status, "HTTP/1.1 200 OK");
}

#[test]
fn per_registry_ca_applies_to_that_registry_only() {
    let registry = tls_registry();
    let other = tls_registry();
    let third = tls_registry();
    let mut registry_ca = BTreeMap::new();
    registry_ca.insert(
        registry.host_port(),
        registry.tls().expect("tls").ca_pem_path().to_path_buf(),
    );
    // Keyed by host only: every port of 127.0.0.1 without a host:port entry of its own.
    registry_ca.insert(
        "127.0.0.1".to_owned(),
        other.tls().expect("tls").ca_pem_path().to_path_buf(),
    );
    let configs = configs(
        TlsOptions {
            registry_ca,
            ..TlsOptions::default()
        },
        &MapEnvironment::new(),
    );
    let ok = |r: &Registry| get_v2(configs.client_config(&r.host_port()).expect("config"), r);
    assert_eq!(
        ok(&registry).expect("exact host:port key"),
        "HTTP/1.1 200 OK"
    );
    assert_eq!(ok(&other).expect("host key"), "HTTP/1.1 200 OK");
    let err = ok(&third).expect_err("third registry's CA is trusted nowhere");
    assert!(matches!(
        tls::diagnose(&third.host_port(), &err),
        Some(TlsError::UnknownAuthority { .. })
    ));
}

#[test]
fn skip_verify_accepts_any_certificate_for_that_registry_only() {
    let registry = tls_registry();
    let other = tls_registry();
    let skip: BTreeSet<String> = [registry.host_port()].into();
    let configs = configs(
        TlsOptions {
            skip_verify: skip,
            ..TlsOptions::default()
        },
        &MapEnvironment::new(),
    );
    assert!(configs.skips_verification(&registry.host_port()));
    assert_eq!(
        get_v2(
            configs.client_config(&registry.host_port()).expect("c"),
            &registry
        )
        .expect("ok"),
        "HTTP/1.1 200 OK"
    );
    assert!(
        get_v2(
            configs.client_config(&other.host_port()).expect("c"),
            &other
        )
        .is_err()
    );
}

#[test]
fn client_certificates_are_presented_when_configured() {
    let tls_material = RegistryTls::generate().require_client_certs();
    let client = tls_material.ca().issue_client_cert("kiln");
    let registry = Registry::builder().tls(tls_material).start();
    let ca = registry.tls().expect("tls").ca_pem_path().to_path_buf();
    let mut registry_ca = BTreeMap::new();
    registry_ca.insert(registry.host_port(), ca);

    let without = configs(
        TlsOptions {
            registry_ca: registry_ca.clone(),
            ..TlsOptions::default()
        },
        &MapEnvironment::new(),
    );
    let err = get_v2(
        without.client_config(&registry.host_port()).expect("c"),
        &registry,
    )
    .expect_err("no client cert");
    let explained = tls::diagnose(&registry.host_port(), &err).expect("explained");
    assert!(
        matches!(explained, TlsError::ClientCertificateRequired { .. }),
        "{explained}"
    );
    assert!(explained.to_string().contains("--registry-client-cert"));

    let mut client_certificates = BTreeMap::new();
    client_certificates.insert(
        registry.host_port(),
        ClientCertificate {
            cert: client.cert_path.clone(),
            key: client.key_path.clone(),
        },
    );
    let with = configs(
        TlsOptions {
            registry_ca,
            client_certificates,
            ..TlsOptions::default()
        },
        &MapEnvironment::new(),
    );
    assert_eq!(
        get_v2(
            with.client_config(&registry.host_port()).expect("c"),
            &registry
        )
        .expect("ok"),
        "HTTP/1.1 200 OK"
    );
}

#[test]
fn unreadable_material_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut registry_ca = BTreeMap::new();
    registry_ca.insert("reg.example".to_owned(), dir.path().join("missing-ca.crt"));
    let configs = configs(
        TlsOptions {
            registry_ca,
            ..TlsOptions::default()
        },
        &MapEnvironment::new(),
    );
    let text = configs
        .client_config("reg.example")
        .expect_err("missing CA")
        .to_string();
    assert!(text.contains("missing-ca.crt"), "{text}");

    let not_pem = dir.path().join("key.pem");
    std::fs::write(&not_pem, "nothing here").expect("write");
    let mut client_certificates = BTreeMap::new();
    let tls_material = RegistryTls::generate();
    client_certificates.insert(
        "reg.example".to_owned(),
        ClientCertificate {
            cert: tls_material.server().cert_path.clone(),
            key: not_pem,
        },
    );
    let configs = self::configs(
        TlsOptions {
            client_certificates,
            ..TlsOptions::default()
        },
        &MapEnvironment::new(),
    );
    let text = configs
        .client_config("reg.example")
        .expect_err("bad key")
        .to_string();
    assert!(
        text.contains("key.pem") && text.contains("client key"),
        "{text}"
    );

    let env = MapEnvironment::new().with(
        "SSL_CERT_FILE",
        dir.path().join("nope.crt").to_str().expect("utf8"),
    );
    let text = TlsConfigs::new(TlsOptions::default(), &env)
        .expect_err("missing SSL_CERT_FILE")
        .to_string();
    assert!(
        text.contains("nope.crt") && text.contains("SSL_CERT_FILE"),
        "{text}"
    );
}

#[test]
fn certificate_for_another_name_is_reported_as_such() {
    let registry = tls_registry();
    let ca = registry
        .tls()
        .expect("tls")
        .ca_pem_path()
        .to_str()
        .expect("utf8")
        .to_owned();
    let configs = configs(
        TlsOptions::default(),
        &MapEnvironment::new().with("SSL_CERT_FILE", ca),
    );
    let config = configs.client_config("kiln.invalid").expect("config");
    let name = ServerName::try_from("kiln.invalid").expect("DNS name");
    let conn = rustls::ClientConnection::new(config, name).expect("connection");
    let sock = TcpStream::connect(registry.host_port()).expect("connect");
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let err = tls
        .write_all(b"GET /v2/ HTTP/1.1\r\n\r\n")
        .and_then(|()| tls.flush())
        .and_then(|()| {
            let mut buf = [0u8; 1];
            tls.read(&mut buf).map(|_| ())
        });
    let err = err.expect_err("name mismatch");
    let explained = tls::diagnose("kiln.invalid", &err).expect("explained");
    assert!(
        matches!(explained, TlsError::WrongName { .. }),
        "{explained}"
    );
    assert!(explained.to_string().contains("kiln.invalid"));
}
