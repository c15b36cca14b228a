//! A throwaway certificate authority (rcgen) and the TLS material a registry needs.
//!
//! The CA has `basicConstraints=critical,CA:TRUE` and `keyUsage=keyCertSign,cRLSign`;
//! server certificates carry `subjectAltName=IP:127.0.0.1,DNS:localhost` and
//! `extendedKeyUsage=serverAuth`; client certificates carry `clientAuth`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use crate::registry::TlsFiles;

/// A certificate authority whose files live in a temp dir (removed on drop).
pub struct TestCa {
    cert: Certificate,
    key: KeyPair,
    dir: tempfile::TempDir,
    pem_path: PathBuf,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("pem_path", &self.pem_path)
            .finish_non_exhaustive()
    }
}

/// A certificate and its private key, as PEM files (and in memory).
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// PEM certificate file.
    pub cert_path: PathBuf,
    /// PEM PKCS#8 private key file.
    pub key_path: PathBuf,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
}

fn validity(params: &mut CertificateParams) {
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2049, 1, 1);
}

impl TestCa {
    /// Generates a new CA (ECDSA P-256) named `common_name`.
    pub fn new(common_name: &str) -> TestCa {
        let key = KeyPair::generate().expect("generating CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "kiln testkit");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params);
        let cert = params.self_signed(&key).expect("self-signing CA");
        let dir = tempfile::Builder::new()
            .prefix("kiln-ca-")
            .tempdir()
            .expect("creating CA temp dir");
        let pem_path = dir.path().join("ca.crt");
        fs_err::write(&pem_path, cert.pem()).expect("writing CA PEM");
        TestCa {
            cert,
            key,
            dir,
            pem_path,
        }
    }

    /// The CA certificate as a PEM file (give it to `--cacert`, `SSL_CERT_FILE`, ...).
    pub fn pem_path(&self) -> &Path {
        &self.pem_path
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// Issues a server certificate for `IP:127.0.0.1, DNS:localhost` (plus `extra_dns`).
    pub fn issue_server_cert(&self, name: &str, extra_dns: &[&str]) -> CertFiles {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let mut sans = vec![
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::DnsName("localhost".try_into().expect("DNS name")),
        ];
        for dns in extra_dns {
            sans.push(SanType::DnsName((*dns).try_into().expect("DNS name")));
        }
        params.subject_alt_names = sans;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, name)
    }

    /// Issues a client certificate (`extendedKeyUsage=clientAuth`) with CN `common_name`.
    pub fn issue_client_cert(&self, common_name: &str) -> CertFiles {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, &format!("client-{common_name}"))
    }

    fn issue(&self, mut params: CertificateParams, name: &str) -> CertFiles {
        validity(&mut params);
        let key = KeyPair::generate().expect("generating leaf key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signing leaf certificate");
        let cert_path = self.dir.path().join(format!("{name}.crt"));
        let key_path = self.dir.path().join(format!("{name}.key"));
        let cert_pem = cert.pem();
        let key_pem = key.serialize_pem();
        fs_err::write(&cert_path, &cert_pem).expect("writing certificate PEM");
        fs_err::write(&key_path, &key_pem).expect("writing key PEM");
        CertFiles {
            cert_path,
            key_path,
            cert_pem,
            key_pem,
        }
    }
}

/// Everything a TLS registry and its clients need.
#[derive(Debug, Clone)]
pub struct RegistryTls {
    ca: Arc<TestCa>,
    server: CertFiles,
    client_cas: Option<PathBuf>,
    cert_dir: PathBuf,
}

impl RegistryTls {
    /// Generates a CA and a server certificate signed by it.
    pub fn generate() -> RegistryTls {
        RegistryTls::with_ca(Arc::new(TestCa::new("kiln testkit CA")))
    }

    /// A server certificate signed by an existing CA (so several servers share one CA).
    pub fn with_ca(ca: Arc<TestCa>) -> RegistryTls {
        let server = ca.issue_server_cert("registry", &[]);
        let cert_dir = ca.dir.path().join("certs.d-registry");
        fs_err::create_dir_all(&cert_dir).expect("creating cert dir");
        fs_err::write(cert_dir.join("ca.crt"), ca.pem()).expect("writing cert dir CA");
        RegistryTls {
            ca,
            server,
            client_cas: None,
            cert_dir,
        }
    }

    /// Makes the registry require client certificates signed by this CA
    /// (`http.tls.clientcas`).
    pub fn require_client_certs(mut self) -> RegistryTls {
        self.client_cas = Some(self.ca.pem_path.clone());
        self
    }

    /// The CA that signed the server certificate.
    pub fn ca(&self) -> &Arc<TestCa> {
        &self.ca
    }

    /// The CA certificate PEM file.
    pub fn ca_pem_path(&self) -> &Path {
        self.ca.pem_path()
    }

    /// A directory holding `ca.crt`, the layout skopeo/buildah/containers expect for
    /// `--cert-dir` / `--dest-cert-dir` / `--src-cert-dir`.
    pub fn cert_dir(&self) -> &Path {
        &self.cert_dir
    }

    /// The server certificate and key.
    pub fn server(&self) -> &CertFiles {
        &self.server
    }

    /// True when the registry demands a client certificate.
    pub fn requires_client_certs(&self) -> bool {
        self.client_cas.is_some()
    }

    pub(crate) fn files(&self) -> TlsFiles {
        TlsFiles {
            certificate: self.server.cert_path.clone(),
            key: self.server.key_path.clone(),
            client_cas: self.client_cas.clone(),
        }
    }
}
