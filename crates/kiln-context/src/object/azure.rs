//! Azure Blob Storage URLs as kaniko takes them,
//! `https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB` (and the China, US
//! Government and Germany clouds' `blob.core.*` hosts): the account is the
//! host's first label, its key `AZURE_STORAGE_ACCESS_KEY` (Shared Key
//! signing). kiln also reads `AZURE_STORAGE_ENDPOINT`, the account's blob
//! endpoint URL, to reach an emulator such as Azurite
//! (`http://127.0.0.1:10000/ACCOUNT`).

use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};

use super::connector::KilnConnector;
use super::{ObjectSource, Store, Vocabulary, host_key, tls};
use crate::ContextError;

pub(super) const VOCABULARY: Vocabulary = Vocabulary {
    name: "Azure Blob Storage",
    bucket: "container",
    credentials: "AZURE_STORAGE_ACCESS_KEY (the access key of the storage account named in the URL's host)",
    endpoint: "AZURE_STORAGE_ENDPOINT",
};

/// The blob-service hosts kaniko recognises, after `ACCOUNT.`.
const HOST_SUFFIXES: [&str; 4] = [
    ".blob.core.windows.net",
    ".blob.core.chinacloudapi.cn",
    ".blob.core.usgovcloudapi.net",
    ".blob.core.cloudapi.de",
];

/// An Azure Blob URL, or `Ok(None)` for any other input.
pub(super) fn parse(input: &str) -> Result<Option<ObjectSource>, ContextError> {
    if !input.starts_with("https://") {
        return Ok(None);
    }
    let Ok(url) = url::Url::parse(input) else {
        return Ok(None);
    };
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let Some(account) = HOST_SUFFIXES
        .iter()
        .find_map(|suffix| host.strip_suffix(suffix))
    else {
        return Ok(None);
    };
    let invalid = |reason: &str| ContextError::Invalid {
        input: format!("https://{host}{}", url.path()),
        reason: reason.to_string(),
    };
    if account.is_empty() || account.contains('.') {
        return Err(invalid("the host must be ACCOUNT.blob.core.…"));
    }
    if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
        // A SAS token or user info: never echoed, and not how kaniko
        // authenticates either.
        return Err(invalid(
            "credentials in the URL (a SAS token or user info) are not supported; \
             give the account key in AZURE_STORAGE_ACCESS_KEY",
        ));
    }
    let path = url.path().trim_start_matches('/');
    let Some((container, blob)) = path
        .split_once('/')
        .filter(|(c, b)| !c.is_empty() && !b.is_empty())
    else {
        return Err(invalid(
            "an Azure Blob context is https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB (BLOB: a tar archive, maybe compressed)",
        ));
    };
    let key = object_store::path::Path::from_url_path(blob)
        .map_err(|e| invalid(&format!("the blob name is not valid: {e}")))?;
    Ok(Some(ObjectSource {
        store: Store::Azure {
            account: account.to_string(),
            host,
        },
        bucket: container.to_string(),
        key: key.to_string(),
    }))
}

pub(super) fn store(
    source: &ObjectSource,
    account: &str,
    host: &str,
    env: &dyn kiln_auth::Environment,
) -> Result<MicrosoftAzure, ContextError> {
    let Some(key) = env.non_empty("AZURE_STORAGE_ACCESS_KEY") else {
        return Err(source.error(
            "reading credentials",
            format!("no access key for storage account {account:?} in the environment"),
            "; set AZURE_STORAGE_ACCESS_KEY",
        ));
    };
    let endpoint = env
        .non_empty("AZURE_STORAGE_ENDPOINT")
        .unwrap_or_else(|| format!("https://{host}"));
    let url = url::Url::parse(&endpoint).map_err(|err| {
        source.error(
            "reading AZURE_STORAGE_ENDPOINT",
            format!("{endpoint:?} is not a URL: {err}"),
            "",
        )
    })?;
    let tls = tls(source, env, &host_key(&url))?;
    MicrosoftAzureBuilder::new()
        .with_account(account)
        .with_container_name(&source.bucket)
        .with_access_key(key)
        .with_endpoint(endpoint.trim_end_matches('/').to_string())
        .with_allow_http(url.scheme() == "http")
        .with_http_connector(KilnConnector {
            tls,
            store: "MicrosoftAzure",
        })
        .build()
        .map_err(|e| {
            // object_store's message for a key that is not base64 names the
            // decoding error only, never the key.
            source.error(
                "configuring the Azure client",
                crate::error::chain(&e),
                "; check AZURE_STORAGE_ACCESS_KEY (the account key, base64)",
            )
        })
}
