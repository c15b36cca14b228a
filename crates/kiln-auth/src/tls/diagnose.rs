//! Turning a handshake failure buried in an error chain into an actionable message.

use rustls::{AlertDescription, CertificateError};

use super::error::TlsError;

/// Finds a rustls error in `error`'s chain (looking inside `std::io::Error`s, where
/// hyper and tokio-rustls put it) and explains it for `registry`. `None` when the chain
/// holds no certificate problem.
pub fn diagnose(registry: &str, error: &(dyn std::error::Error + 'static)) -> Option<TlsError> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return explain(registry, tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                return explain(registry, tls);
            }
            current = inner.source();
            continue;
        }
        current = e.source();
    }
    None
}

/// Explains one rustls error for `registry`.
pub fn explain(registry: &str, error: &rustls::Error) -> Option<TlsError> {
    let registry = registry.to_owned();
    let detail = error.to_string();
    match error {
        rustls::Error::InvalidCertificate(cert) => Some(match cert {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                TlsError::UnknownAuthority { registry }
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsError::WrongName { registry, detail }
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsError::Expired { registry, detail },
            _ => TlsError::BadCertificate { registry, detail },
        }),
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA,
        ) => Some(TlsError::ClientCertificateRequired { registry, detail }),
        _ => None,
    }
}
