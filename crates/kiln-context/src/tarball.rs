//! `--context https://…/context.tar.gz`: one GET (redirects followed, kiln-auth's
//! TLS), whose body is handed on as a reader, so the tarball streams into the
//! build directory and is never held in memory.

use crate::error::chain;
use std::io::Read;
use std::time::Duration;

use crate::ContextError;
use crate::git::source::redact;

/// An archive over HTTP(S) to build from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarball {
    url: url::Url,
}

impl HttpTarball {
    /// An `http(s)://` context that is not a git repository (see
    /// [`crate::GitSource::parse`], which is asked first).
    pub fn parse(input: &str) -> Result<HttpTarball, ContextError> {
        let url = url::Url::parse(input).map_err(|e| ContextError::Invalid {
            input: redact(input),
            reason: format!("not a valid URL: {e}"),
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ContextError::Invalid {
                input: redact(input),
                reason: "an archive context needs an http:// or https:// URL with a host".into(),
            });
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ContextError::Invalid {
                input: redact(input),
                reason: "user info in an archive URL is not supported (kaniko sends none either)"
                    .into(),
            });
        }
        Ok(HttpTarball { url })
    }

    /// The URL as shown.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// Sends the GET and returns the body as a blocking reader. Must not be
    /// called on an async runtime's thread (reqwest's blocking client).
    pub fn open(
        &self,
        env: &dyn kiln_auth::Environment,
    ) -> Result<impl Read + Send + use<>, ContextError> {
        let fail = |what: &'static str, reason: String, hint: &str| ContextError::Fetch {
            url: self.url.to_string(),
            what,
            reason,
            hint: hint.to_string(),
        };
        let host = self.url.host_str().unwrap_or_default();
        let key = match self.url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let tls = kiln_auth::TlsConfigs::new(kiln_auth::TlsOptions::default(), env)
            .and_then(|c| c.client_config(&key))
            .map_err(|e| {
                fail(
                    "setting up TLS",
                    e.to_string(),
                    "; check SSL_CERT_FILE and SSL_CERT_DIR",
                )
            })?;
        let client = reqwest::blocking::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .connect_timeout(Duration::from_secs(30))
            .timeout(None)
            .build()
            .map_err(|e| fail("setting up the HTTP client", chain(&e), ""))?;
        let response = client.get(self.url.clone()).send().map_err(|e| {
            let reason = chain(&e);
            let hint = if reason.contains("certificate") || reason.contains("UnknownIssuer") {
                "; trust the server's CA with SSL_CERT_FILE or SSL_CERT_DIR"
            } else {
                "; check the URL's host and port"
            };
            fail("downloading", reason, hint)
        })?;
        let status = response.status();
        if !status.is_success() {
            let hint = match status.as_u16() {
                404 => "; check the URL's path",
                401 | 403 => "; the server wants credentials, which archive contexts do not send",
                _ => "",
            };
            return Err(fail(
                "downloading",
                format!("the server answered HTTP {status}"),
                hint,
            ));
        }
        tracing::info!(url = %self.url, size = response.content_length(), "streaming the context archive");
        Ok(response)
    }
}
