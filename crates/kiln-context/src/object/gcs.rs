//! `gs://BUCKET/KEY` as kaniko reads it: Google's application default
//! credentials (`GOOGLE_APPLICATION_CREDENTIALS`, a service-account or
//! authorized-user JSON file; else gcloud's well-known file or the metadata
//! server, as object_store finds them), and `STORAGE_EMULATOR_HOST`
//! (`HOST:PORT` or a URL) for an emulator, which, as Google's own clients
//! do, is spoken to without credentials.

use std::sync::Arc;

use object_store::StaticCredentialProvider;
use object_store::client::ClientOptions;
use object_store::gcp::{GcpCredential, GoogleCloudStorage, GoogleCloudStorageBuilder};

use super::connector::KilnConnector;
use super::{ObjectSource, Vocabulary, host_key, tls};
use crate::ContextError;

pub(super) const VOCABULARY: Vocabulary = Vocabulary {
    name: "Google Cloud Storage",
    bucket: "bucket",
    credentials: "GOOGLE_APPLICATION_CREDENTIALS (a service-account key file with access to the bucket)",
    endpoint: "STORAGE_EMULATOR_HOST",
};

pub(super) fn store(
    source: &ObjectSource,
    env: &dyn kiln_auth::Environment,
) -> Result<GoogleCloudStorage, ContextError> {
    let mut builder = GoogleCloudStorageBuilder::new().with_bucket_name(&source.bucket);
    let host_key = match env.non_empty("STORAGE_EMULATOR_HOST") {
        Some(emulator) => {
            let base = if emulator.contains("://") {
                emulator.trim_end_matches('/').to_string()
            } else {
                format!("http://{}", emulator.trim_end_matches('/'))
            };
            let url = url::Url::parse(&base).map_err(|err| {
                source.error(
                    "reading STORAGE_EMULATOR_HOST",
                    format!("{emulator:?} is not HOST:PORT or a URL: {err}"),
                    "",
                )
            })?;
            builder = builder
                .with_base_url(&base)
                .with_skip_signature(true)
                .with_credentials(Arc::new(StaticCredentialProvider::new(GcpCredential {
                    bearer: String::new(),
                })))
                .with_client_options(ClientOptions::new().with_allow_http(url.scheme() == "http"));
            host_key(&url)
        }
        None => {
            if let Some(path) = env.non_empty("GOOGLE_APPLICATION_CREDENTIALS") {
                builder = builder.with_application_credentials(path);
            }
            "storage.googleapis.com".to_string()
        }
    };
    let tls = tls(source, env, &host_key)?;
    builder
        .with_http_connector(KilnConnector {
            tls,
            store: "GCS",
        })
        .build()
        .map_err(|e| {
            // The file's path and what is wrong with it; object_store never
            // quotes a key's value.
            source.error(
                "reading the Google credentials",
                crate::error::chain(&e),
                "; check GOOGLE_APPLICATION_CREDENTIALS (a service-account or authorized-user JSON file)",
            )
        })
}
