//! What a client presents to a registry.

use crate::secret::Secret;

/// Credentials for one registry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Credential {
    /// No credentials: pull public images, or get an anonymous token.
    #[default]
    Anonymous,
    /// User name and password (HTTP Basic, or the token realm's Basic / OAuth2 password grant).
    Basic {
        /// User name (not secret).
        username: String,
        /// Password or access token.
        password: Secret,
    },
    /// An OAuth2 refresh token (`identitytoken` in config.json, `<token>` from helpers),
    /// exchanged at the realm with `grant_type=refresh_token`.
    IdentityToken(Secret),
    /// A bearer token sent as is (`registrytoken`).
    RegistryToken(Secret),
}

impl Credential {
    /// True for [`Credential::Anonymous`].
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Credential::Anonymous)
    }

    /// A short description for logs: the kind and the user name, never the secret.
    pub fn describe(&self) -> String {
        match self {
            Credential::Anonymous => "anonymous".to_owned(),
            Credential::Basic { username, .. } => format!("basic auth as {username}"),
            Credential::IdentityToken(_) => "identity token".to_owned(),
            Credential::RegistryToken(_) => "registry token".to_owned(),
        }
    }
}
