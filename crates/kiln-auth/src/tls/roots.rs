//! Trust anchors: the system bundle, `$SSL_CERT_FILE`, every file in `$SSL_CERT_DIR`.

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::error::TlsError;
use crate::env::Environment;

/// System CA bundles, first existing wins (Debian/Ubuntu, kaniko's image, RHEL, SUSE, Alpine).
pub const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/kaniko/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Which system roots to start from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SystemRoots {
    /// The first of [`SYSTEM_BUNDLES`] that exists, else the Mozilla roots compiled in
    /// (webpki-roots), so a `FROM scratch` image still trusts public registries.
    #[default]
    Auto,
    /// This bundle file.
    Bundle(PathBuf),
    /// None: only `SSL_CERT_FILE`, `SSL_CERT_DIR` and per-registry CAs.
    Empty,
}

/// Reads every certificate in a PEM file.
pub fn read_pem_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_err = |reason: String| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let bytes = fs_err::read(path).map_err(|e| pem_err(e.to_string()))?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(e.to_string()))
}

/// Builds the base root store.
pub fn base_roots(system: &SystemRoots, env: &dyn Environment) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    match system {
        SystemRoots::Auto => match SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.is_file()) {
            Some(bundle) => add_file(&mut store, bundle, "system CA bundle")?,
            None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        },
        SystemRoots::Bundle(path) => add_file(&mut store, path, "system CA bundle")?,
        SystemRoots::Empty => {}
    }
    if let Some(file) = env.non_empty("SSL_CERT_FILE") {
        add_file(&mut store, Path::new(&file), "SSL_CERT_FILE")?;
    }
    if let Some(dirs) = env.non_empty("SSL_CERT_DIR") {
        for dir in dirs.split(':').filter(|d| !d.is_empty()) {
            add_dir(&mut store, Path::new(dir))?;
        }
    }
    Ok(store)
}

fn add_file(store: &mut RootCertStore, path: &Path, what: &'static str) -> Result<(), TlsError> {
    let certs = read_pem_certs(path, what)?;
    let (added, ignored) = store.add_parsable_certificates(certs);
    tracing::debug!(path = %path.display(), added, ignored, "loaded CA certificates");
    Ok(())
}

/// Every regular file (symlinks followed) in `dir` that holds PEM certificates; files
/// without any (keys, READMEs) are skipped. A missing directory is skipped too, as
/// OpenSSL does.
fn add_dir(store: &mut RootCertStore, dir: &Path) -> Result<(), TlsError> {
    let entries = match fs_err::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(TlsError::Pem {
                what: "SSL_CERT_DIR",
                path: dir.to_path_buf(),
                reason: e.to_string(),
            });
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    for path in paths {
        let Ok(bytes) = fs_err::read(&path) else {
            continue;
        };
        let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
            .filter_map(Result::ok)
            .collect();
        if !certs.is_empty() {
            let (added, ignored) = store.add_parsable_certificates(certs);
            tracing::debug!(path = %path.display(), added, ignored, "loaded CA certificates from SSL_CERT_DIR");
        }
    }
    Ok(())
}
