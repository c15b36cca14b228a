//! `s3://BUCKET/KEY` with kaniko's environment: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or
//! `AWS_DEFAULT_REGION`; `us-east-1` when neither), `S3_ENDPOINT` and
//! `S3_FORCE_PATH_STYLE`.

use super::connector::KilnConnector;
use super::{ObjectSource, Vocabulary, host_key, tls};
use crate::ContextError;

pub(super) const VOCABULARY: Vocabulary = Vocabulary {
    name: "the S3 store",
    bucket: "bucket",
    credentials: "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN)",
    endpoint: "S3_ENDPOINT",
};

pub(super) fn store(
    source: &ObjectSource,
    env: &dyn kiln_auth::Environment,
) -> Result<object_store::aws::AmazonS3, ContextError> {
    let mut builder = object_store::aws::AmazonS3Builder::new().with_bucket_name(&source.bucket);
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
            return Err(source.error(
                "reading credentials",
                "no AWS credentials in the environment".into(),
                "; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ));
        }
    }
    let host_key = match env.non_empty("S3_ENDPOINT") {
        Some(e) => {
            let url = url::Url::parse(&e).map_err(|err| {
                source.error(
                    "reading S3_ENDPOINT",
                    format!("{e:?} is not a URL: {err}"),
                    "",
                )
            })?;
            let force_path_style = env.non_empty("S3_FORCE_PATH_STYLE").as_deref() == Some("true");
            builder = builder
                .with_endpoint(&e)
                .with_allow_http(url.scheme() == "http")
                .with_virtual_hosted_style_request(!force_path_style);
            host_key(&url)
        }
        None => "s3.amazonaws.com".to_string(),
    };
    let tls = tls(source, env, &host_key)?;
    builder
        .with_http_connector(KilnConnector { tls, store: "S3" })
        .build()
        .map_err(|e| source.error("configuring the S3 client", e.to_string(), ""))
}
