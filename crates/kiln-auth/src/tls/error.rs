//! TLS material and handshake errors, each naming the file or registry.

use std::path::PathBuf;

/// Where to tell users to put a CA, as in kaniko's image.
pub const ADDITIONAL_CA_BUNDLE: &str = "/kaniko/ssl/certs/additional-ca-cert-bundle.crt";

/// A TLS setup or certificate failure.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file cannot be read or parsed.
    #[error("reading {what} {path}: {reason}")]
    Pem {
        /// "CA certificate", "client certificate", "client key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A PEM file has no certificate in it.
    #[error("{what} {path} contains no PEM certificate")]
    NoCertificate {
        /// What the file was for.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the configuration (e.g. a key that does not match the cert).
    #[error("building the TLS configuration for {registry}: {source}")]
    Config {
        /// The registry.
        registry: String,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The server's certificate chains to no trusted CA.
    #[error(
        "TLS certificate of registry {registry} is signed by an unknown authority. Trust its CA by appending the CA's PEM to {ADDITIONAL_CA_BUNDLE} (SSL_CERT_DIR=/kaniko/ssl/certs), by pointing SSL_CERT_FILE at it, or with --registry-certificate {registry}=/path/to/ca.crt; --skip-tls-verify-registry {registry} disables verification"
    )]
    UnknownAuthority {
        /// The registry.
        registry: String,
    },
    /// The certificate does not name the host we connected to.
    #[error("TLS certificate of registry {registry} is not valid for that name: {detail}")]
    WrongName {
        /// The registry.
        registry: String,
        /// rustls' detail.
        detail: String,
    },
    /// The certificate is expired or not yet valid.
    #[error(
        "TLS certificate of registry {registry} is expired or not yet valid (check the clock): {detail}"
    )]
    Expired {
        /// The registry.
        registry: String,
        /// rustls' detail.
        detail: String,
    },
    /// The registry demanded a client certificate we did not send or it refused.
    #[error(
        "registry {registry} requires a client certificate ({detail}); pass --registry-client-cert {registry}=/path/client.crt,/path/client.key"
    )]
    ClientCertificateRequired {
        /// The registry.
        registry: String,
        /// The alert received.
        detail: String,
    },
    /// Another certificate problem.
    #[error("TLS certificate of registry {registry} was rejected: {detail}")]
    BadCertificate {
        /// The registry.
        registry: String,
        /// rustls' detail.
        detail: String,
    },
}
