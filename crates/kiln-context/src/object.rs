//! Object-store contexts, kaniko's schemes: `s3://BUCKET/KEY` (so far the only
//! one; `gs://` and Azure Blob URLs are refused with an error saying so). The
//! object is a tar archive, any compression kiln reads, fetched with the
//! `object_store` crate and handed on as a blocking reader fed by a bounded
//! channel, so it streams and is never held in memory.
//!
//! Configuration is kaniko's environment: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or
//! `AWS_DEFAULT_REGION`), `S3_ENDPOINT` and `S3_FORCE_PATH_STYLE`; TLS from
//! kiln-auth as everywhere else.

use crate::error::chain;
use std::io::Read;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use object_store::client::{ClientOptions, HttpClient, HttpConnector};

use crate::ContextError;

/// Chunks in flight between the download thread and the reader.
const QUEUE: usize = 8;

/// An object in a store, to build from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSource {
    bucket: String,
    key: String,
}

impl ObjectSource {
    /// Parses `s3://BUCKET/KEY`; `Ok(None)` for other schemes.
    pub fn parse(input: &str) -> Result<Option<ObjectSource>, ContextError> {
        let Some(rest) = input.strip_prefix("s3://") else {
            return Ok(None);
        };
        match rest.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                Ok(Some(ObjectSource {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                }))
            }
            _ => Err(ContextError::Invalid {
                input: input.to_string(),
                reason: "an S3 context is s3://BUCKET/KEY (KEY: a tar archive, maybe compressed)"
                    .into(),
            }),
        }
    }

    /// `s3://BUCKET/KEY`.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// Starts the download and returns the object's bytes as a blocking
    /// reader. The first chunk (or the error) has arrived when this returns.
    pub fn open(
        &self,
        env: &dyn kiln_auth::Environment,
    ) -> Result<impl Read + Send + use<>, ContextError> {
        let store = self.store(env)?;
        let path = object_store::path::Path::from(self.key.as_str());
        let (tx, rx) = sync_channel::<Result<bytes::Bytes, ContextError>>(QUEUE);
        let me = self.clone();
        let endpoint = env.non_empty("S3_ENDPOINT");
        std::thread::Builder::new()
            .name("kiln-s3-context".into())
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
                            let _ = tx.send(Err(me.classify(&e, endpoint.as_deref())));
                            return;
                        }
                    };
                    let mut stream = result.into_stream();
                    while let Some(chunk) = stream.next().await {
                        let item = chunk.map_err(|e| me.classify(&e, endpoint.as_deref()));
                        let failed = item.is_err();
                        if tx.send(item).is_err() || failed {
                            return;
                        }
                    }
                });
            })
            .map_err(|e| self.error("starting the download thread", e.to_string(), ""))?;
        let mut reader = ChannelReader {
            rx,
            current: bytes::Bytes::new(),
            done: false,
        };
        // Surface "no such bucket/object" and credential errors here, as errors
        // of this call rather than as I/O errors deep in the unpacker.
        match reader.rx.recv() {
            Ok(Ok(first)) => reader.current = first,
            Ok(Err(e)) => return Err(e),
            Err(_) => reader.done = true,
        }
        tracing::info!(url = %self.url(), "streaming the context archive from S3");
        Ok(reader)
    }

    fn store(
        &self,
        env: &dyn kiln_auth::Environment,
    ) -> Result<object_store::aws::AmazonS3, ContextError> {
        let mut builder = object_store::aws::AmazonS3Builder::new().with_bucket_name(&self.bucket);
        let region = env
            .non_empty("AWS_REGION")
            .or_else(|| env.non_empty("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        builder = builder.with_region(region);
        match (
            env.non_empty("AWS_ACCESS_KEY_ID"),
            env.non_empty("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Some(id), Some(secret)) => {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(secret);
                if let Some(token) = env.non_empty("AWS_SESSION_TOKEN") {
                    builder = builder.with_token(token);
                }
            }
            _ => {
                return Err(self.error(
                    "reading credentials",
                    "no AWS credentials in the environment".into(),
                    "; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                ));
            }
        }
        let endpoint = env.non_empty("S3_ENDPOINT");
        let host_key = match &endpoint {
            Some(e) => {
                let url = url::Url::parse(e).map_err(|err| {
                    self.error(
                        "reading S3_ENDPOINT",
                        format!("{e:?} is not a URL: {err}"),
                        "",
                    )
                })?;
                let host = url.host_str().unwrap_or_default().to_string();
                let force_path_style =
                    env.non_empty("S3_FORCE_PATH_STYLE").as_deref() == Some("true");
                builder = builder
                    .with_endpoint(e)
                    .with_allow_http(url.scheme() == "http")
                    .with_virtual_hosted_style_request(!force_path_style);
                match url.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host,
                }
            }
            None => "s3.amazonaws.com".to_string(),
        };
        let tls = kiln_auth::TlsConfigs::new(kiln_auth::TlsOptions::default(), env)
            .and_then(|c| c.client_config(&host_key))
            .map_err(|e| {
                self.error(
                    "setting up TLS",
                    e.to_string(),
                    "; check SSL_CERT_FILE and SSL_CERT_DIR",
                )
            })?;
        builder
            .with_http_connector(KilnConnector { tls })
            .build()
            .map_err(|e| self.error("configuring the S3 client", e.to_string(), ""))
    }

    fn error(&self, what: &'static str, reason: String, hint: &str) -> ContextError {
        ContextError::Object {
            url: self.url(),
            what,
            reason,
            hint: hint.to_string(),
        }
    }

    fn classify(&self, e: &object_store::Error, endpoint: Option<&str>) -> ContextError {
        let text = chain(e);
        let (reason, hint) = if text.contains("NoSuchBucket") {
            (
                format!("bucket {:?} does not exist", self.bucket),
                "; check the bucket name (and S3_ENDPOINT, AWS_REGION)",
            )
        } else if matches!(e, object_store::Error::NotFound { .. }) || text.contains("NoSuchKey") {
            (
                format!("no object {:?} in bucket {:?}", self.key, self.bucket),
                "; check the key",
            )
        } else if text.contains("InvalidAccessKeyId")
            || text.contains("SignatureDoesNotMatch")
            || text.contains("403")
            || text.contains("AccessDenied")
        {
            (
                "the store refused the credentials".to_string(),
                "; check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN)",
            )
        } else {
            (
                text,
                if endpoint.is_some() {
                    "; check S3_ENDPOINT"
                } else {
                    ""
                },
            )
        };
        self.error("downloading", reason, hint)
    }
}

/// object_store's HTTP client, built with kiln-auth's rustls configuration.
#[derive(Debug)]
struct KilnConnector {
    tls: Arc<rustls::ClientConfig>,
}

impl HttpConnector for KilnConnector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured((*self.tls).clone())
            .build()
            .map_err(|e| object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            })?;
        Ok(HttpClient::new(client))
    }
}

struct ChannelReader {
    rx: Receiver<Result<bytes::Bytes, ContextError>>,
    current: bytes::Bytes,
    done: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => self.current = chunk,
                Ok(Err(e)) => return Err(std::io::Error::other(e.to_string())),
                Err(_) => self.done = true,
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.split_off(n);
        Ok(n)
    }
}
