//! Object-store contexts, kaniko's schemes: `s3://BUCKET/KEY`,
//! `gs://BUCKET/KEY` and Azure Blob Storage URLs
//! (`https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB`). The object is a
//! tar archive, any compression kiln reads, fetched with the `object_store`
//! crate and handed on as a blocking reader fed by a bounded channel, so it
//! streams and is never held in memory.
//!
//! Each store reads kaniko's environment (see [`s3`], [`gcs`], [`azure`]);
//! TLS comes from kiln-auth as everywhere else ([`connector`]). Errors tell a
//! missing bucket, a missing object and refused credentials apart where the
//! store says which, and name the variables to fix; no credential value ever
//! reaches an error or a log.

mod azure;
mod connector;
mod gcs;
mod reader;
mod s3;

use std::io::Read;
use std::sync::Arc;
use std::sync::mpsc::sync_channel;

use futures_util::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::ContextError;
use crate::error::chain;
use reader::ChannelReader;

/// Chunks in flight between the download thread and the reader.
const QUEUE: usize = 8;

/// Which store an [`ObjectSource`] lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Store {
    S3,
    Gcs,
    /// Azure Blob Storage; the account is the first label of `host`.
    Azure {
        account: String,
        host: String,
    },
}

/// An object in a store, to build from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSource {
    store: Store,
    /// The bucket (S3, GCS) or container (Azure).
    bucket: String,
    /// The object's key (blob name), percent-decoded.
    key: String,
}

/// What a store calls things and which variables configure it, for errors.
struct Vocabulary {
    /// The store's name in messages.
    name: &'static str,
    /// "bucket" or "container".
    bucket: &'static str,
    /// The variables holding credentials, as a phrase.
    credentials: &'static str,
    /// The variable overriding the endpoint.
    endpoint: &'static str,
}

impl ObjectSource {
    /// Parses `s3://BUCKET/KEY`, `gs://BUCKET/KEY` or an Azure Blob Storage
    /// URL (`https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB`, and the
    /// China, US Government and Germany clouds' hosts, as kaniko);
    /// `Ok(None)` for anything else.
    pub fn parse(input: &str) -> Result<Option<ObjectSource>, ContextError> {
        if let Some(rest) = input.strip_prefix("s3://") {
            return bucket_and_key(input, rest, Store::S3, "s3://BUCKET/KEY").map(Some);
        }
        if let Some(rest) = input.strip_prefix("gs://") {
            return bucket_and_key(input, rest, Store::Gcs, "gs://BUCKET/KEY").map(Some);
        }
        azure::parse(input)
    }

    /// The URL as the user wrote it (for Azure without any query).
    pub fn url(&self) -> String {
        match &self.store {
            Store::S3 => format!("s3://{}/{}", self.bucket, self.key),
            Store::Gcs => format!("gs://{}/{}", self.bucket, self.key),
            Store::Azure { host, .. } => format!("https://{host}/{}/{}", self.bucket, self.key),
        }
    }

    /// Starts the download and returns the object's bytes as a blocking
    /// reader. The first chunk (or the error) has arrived when this returns.
    pub fn open(
        &self,
        env: &dyn kiln_auth::Environment,
    ) -> Result<impl Read + Send + use<>, ContextError> {
        let store: Arc<dyn ObjectStore> = match &self.store {
            Store::S3 => Arc::new(s3::store(self, env)?),
            Store::Gcs => Arc::new(gcs::store(self, env)?),
            Store::Azure { account, host } => Arc::new(azure::store(self, account, host, env)?),
        };
        let path = object_store::path::Path::from(self.key.as_str());
        let (tx, rx) = sync_channel::<Result<bytes::Bytes, ContextError>>(QUEUE);
        let me = self.clone();
        let endpoint_set = env.non_empty(self.vocabulary().endpoint).is_some();
        std::thread::Builder::new()
            .name("kiln-object-context".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(me.error("starting the download", e.to_string(), "")));
                        return;
                    }
                };
                runtime.block_on(async {
                    let result = match store.get(&path).await {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = tx.send(Err(me.classify(&e, endpoint_set)));
                            return;
                        }
                    };
                    let mut stream = result.into_stream();
                    while let Some(chunk) = stream.next().await {
                        let item = chunk.map_err(|e| me.classify(&e, endpoint_set));
                        let failed = item.is_err();
                        if tx.send(item).is_err() || failed {
                            return;
                        }
                    }
                });
            })
            .map_err(|e| self.error("starting the download thread", e.to_string(), ""))?;
        // Surface "no such bucket/object" and credential errors here, as errors
        // of this call rather than as I/O errors deep in the unpacker.
        let reader = ChannelReader::start(rx)?;
        tracing::info!(
            url = %self.url(),
            store = self.vocabulary().name,
            "streaming the context archive"
        );
        Ok(reader)
    }

    fn vocabulary(&self) -> Vocabulary {
        match self.store {
            Store::S3 => s3::VOCABULARY,
            Store::Gcs => gcs::VOCABULARY,
            Store::Azure { .. } => azure::VOCABULARY,
        }
    }

    fn error(&self, what: &'static str, reason: String, hint: &str) -> ContextError {
        ContextError::Object {
            url: self.url(),
            what,
            reason,
            hint: hint.to_string(),
        }
    }

    /// A failed request, told apart by the codes each store sends: a missing
    /// bucket (container), a missing object, refused credentials.
    fn classify(&self, e: &object_store::Error, endpoint_set: bool) -> ContextError {
        let v = self.vocabulary();
        let text = chain(e);
        let has = |codes: &[&str]| codes.iter().any(|c| text.contains(c));
        let (reason, hint) = if has(&["NoSuchBucket", "ContainerNotFound"]) {
            (
                format!("{} {:?} does not exist", v.bucket, self.bucket),
                format!("; check the {} name (and {})", v.bucket, v.endpoint),
            )
        } else if has(&["NoSuchKey", "BlobNotFound"]) {
            (
                format!("no object {:?} in {} {:?}", self.key, v.bucket, self.bucket),
                "; check the key".to_string(),
            )
        } else if matches!(e, object_store::Error::NotFound { .. }) {
            // The store did not say which (GCS emulators send an empty 404).
            (
                format!(
                    "no object {:?} in {} {:?}, or no such {}",
                    self.key, v.bucket, self.bucket, v.bucket
                ),
                format!("; check the {} name and the key", v.bucket),
            )
        } else if has(&[
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "AccessDenied",
            "AuthenticationFailed",
            "AuthorizationFailure",
        ]) || matches!(
            e,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        ) {
            (
                format!("{} refused the credentials", v.name),
                format!("; check {}", v.credentials),
            )
        } else {
            (
                text,
                if endpoint_set {
                    format!("; check {}", v.endpoint)
                } else {
                    String::new()
                },
            )
        };
        self.error("downloading", reason, &hint)
    }
}

/// `BUCKET/KEY` of an `s3://` or `gs://` URL.
fn bucket_and_key(
    input: &str,
    rest: &str,
    store: Store,
    form: &str,
) -> Result<ObjectSource, ContextError> {
    match rest.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(ObjectSource {
            store,
            bucket: bucket.to_string(),
            key: key.to_string(),
        }),
        _ => Err(ContextError::Invalid {
            input: crate::redact_url(input),
            reason: format!(
                "an object-store context is {form} (KEY: a tar archive, maybe compressed)"
            ),
        }),
    }
}

/// kiln-auth's TLS configuration for `host_key` (`HOST[:PORT]`), as an error
/// of `source` naming the variables that set it.
fn tls(
    source: &ObjectSource,
    env: &dyn kiln_auth::Environment,
    host_key: &str,
) -> Result<Arc<rustls::ClientConfig>, ContextError> {
    kiln_auth::TlsConfigs::new(kiln_auth::TlsOptions::default(), env)
        .and_then(|c| c.client_config(host_key))
        .map_err(|e| {
            source.error(
                "setting up TLS",
                e.to_string(),
                "; check SSL_CERT_FILE and SSL_CERT_DIR",
            )
        })
}

/// `HOST[:PORT]` of a URL, the key kiln-auth's TLS settings are looked up by.
fn host_key(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}
