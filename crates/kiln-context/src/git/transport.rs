//! How gitoxide connects: kiln-auth's rustls configuration for HTTPS, and the
//! credentials answered to the server's challenge.

use std::sync::{Arc, Mutex};

use gix::protocol::transport::client::blocking_io::http;

use super::GitCredentials;

/// Transport options for an HTTPS repository: gitoxide's reqwest client built
/// with `tls` (kiln-auth's `ClientConfig` for the host) instead of its own roots.
pub(crate) fn http_options(tls: Arc<rustls::ClientConfig>) -> http::Options {
    let backend = http::reqwest::Options {
        // No overall timeout (reqwest's blocking default is 30 s): a server may
        // take longer than that to send a large pack; connects still time out.
        configure_client: Some(Box::new(move |builder| {
            Ok(builder
                .tls_backend_preconfigured((*tls).clone())
                .timeout(None))
        })),
        configure_request: None,
    };
    http::Options {
        backend: Some(Arc::new(Mutex::new(backend))),
        ..http::Options::default()
    }
}

/// The answer to gitoxide's credential requests: the given user name and
/// password, or nothing (the server then refuses, and the error says which
/// variables to set).
pub(crate) fn credentials_helper(
    credentials: GitCredentials,
) -> impl FnMut(
    gix::credentials::helper::Action,
) -> gix::Result<Option<gix::credentials::protocol::Outcome>>
+ 'static {
    move |action| match action {
        gix::credentials::helper::Action::Get(context) => {
            if credentials.is_empty() {
                return Ok(None);
            }
            Ok(Some(gix::credentials::protocol::Outcome {
                credentials: gix::sec::identity::Credentials::UsernamePassword {
                    username: credentials.username.clone().unwrap_or_default(),
                    password: credentials
                        .password
                        .as_ref()
                        .map(|p| p.expose().to_string())
                        .unwrap_or_default(),
                    oauth_refresh_token: None,
                },
                next: context.into(),
            }))
        }
        _ => Ok(None),
    }
}
