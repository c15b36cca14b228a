//! The blob upload state machine: `POST` starts a session (or a mount answers 202 with
//! one), then either one `PUT ?digest=` with the whole blob (monolithic), or `PATCH`es with
//! `Content-Range` followed by an empty `PUT ?digest=` (chunked), or one `PATCH` of
//! unknown length, streaming a blob while it is written, and the empty `PUT`. Every answer's
//! `Location` (relative or absolute) is where the next request goes. A failed attempt is
//! restarted from a fresh `POST`, since a half-received request leaves the session in an
//! unknown state.

use std::path::PathBuf;

use bytes::Bytes;
use http::header::{CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;
use kiln_oci::Digest;
use url::Url;

use crate::body::RequestBody;
use crate::challenge::Scope;
use crate::error::{Ctx, Error, ErrorKind};
use crate::progress::BlobMeter;
use crate::push::BlobToPush;
use crate::session::{Endpoint, Req, Target, drain};

/// Where a blob's bytes come from; re-read for every attempt.
#[derive(Debug, Clone)]
pub enum BlobSource {
    File(PathBuf),
    Bytes(Bytes),
}

impl BlobSource {
    /// Bytes `offset..offset + len`; a file range reports its progress to `meter`.
    pub(crate) fn range(&self, offset: u64, len: u64, meter: Option<&BlobMeter>) -> RequestBody {
        match self {
            BlobSource::File(path) => RequestBody::File {
                path: path.clone(),
                offset,
                len,
                meter: meter.cloned(),
            },
            BlobSource::Bytes(b) => {
                RequestBody::Bytes(b.slice(offset as usize..(offset + len) as usize))
            }
        }
    }
}

/// The upload URL a session answer points to.
pub(crate) fn location(ctx: &Ctx, resp: &Response<Incoming>, base: &Url) -> Result<Url, Error> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ctx.protocol(format!(
                "HTTP {} without a Location header",
                resp.status().as_u16()
            ))
        })?;
    resolve_location(base, loc).map_err(|e| ctx.protocol(format!("bad upload Location: {e}")))
}

/// A `Location` value resolved against the URL of the request it answered: absolute
/// (`http://host/v2/…`), absolute-path (`/v2/…`) or relative (`uuid?_state=…`).
fn resolve_location(base: &Url, location: &str) -> Result<Url, url::ParseError> {
    base.join(location)
}

/// Starts an upload session (`POST …/blobs/uploads/`).
pub(crate) async fn start(
    ep: &Endpoint,
    ctx: &Ctx,
    repository: &str,
    scopes: &[Scope],
) -> Result<Url, Error> {
    let req = Req::new(
        Method::POST,
        Target::Path(format!("v2/{repository}/blobs/uploads/")),
        scopes.to_vec(),
        &[StatusCode::ACCEPTED],
    );
    let resp = ep.call(ctx, &req).await?;
    let base = ep
        .base_url(ctx)
        .await?
        .join(&format!("v2/{repository}/blobs/uploads/"))
        .map_err(|e| ctx.protocol(e.to_string()))?;
    let url = location(ctx, &resp, &base)?;
    drain(resp).await;
    Ok(url)
}

/// Cancels the session at `url` (`DELETE`); one the registry no longer knows is gone
/// already.
pub(crate) async fn cancel(
    ep: &Endpoint,
    ctx: &Ctx,
    url: Url,
    scopes: &[Scope],
) -> Result<(), Error> {
    let req = Req::new(
        Method::DELETE,
        Target::Url(url),
        scopes.to_vec(),
        &[
            StatusCode::NO_CONTENT,
            StatusCode::OK,
            StatusCode::NOT_FOUND,
        ],
    );
    let resp = ep.call(ctx, &req).await?;
    drain(resp).await;
    Ok(())
}

/// Uploads `source` into the session at `url`; `chunk` splits it into PATCHes.
pub(crate) async fn send(
    ep: &Endpoint,
    ctx: &Ctx,
    mut url: Url,
    blob: &BlobToPush,
    chunk: Option<u64>,
    scopes: &[Scope],
    meter: Option<&BlobMeter>,
) -> Result<(), Error> {
    let (descriptor, source) = (&blob.descriptor, &blob.source);
    let size = descriptor.size;
    let final_body = match chunk {
        Some(chunk) if chunk > 0 && size > chunk => {
            let mut offset = 0;
            while offset < size {
                let len = chunk.min(size - offset);
                let body = source.range(offset, len, meter);
                url = patch(ep, ctx, &url, offset, body, scopes).await?;
                offset += len;
            }
            RequestBody::Empty
        }
        _ => source.range(0, size, meter),
    };
    close(ep, ctx, url, &descriptor.digest, final_body, scopes).await?;
    if let Some(meter) = meter {
        meter.report(size);
    }
    Ok(())
}

/// One `PATCH` of a session: `body` is the bytes at `offset`, with a `Content-Range`
/// when its length is known; a body of unknown length (a blob streamed as it is
/// written, from offset 0) goes without one, as `docker push` sends a blob. Returns
/// where the session's next request goes.
pub(crate) async fn patch(
    ep: &Endpoint,
    ctx: &Ctx,
    url: &Url,
    offset: u64,
    body: RequestBody,
    scopes: &[Scope],
) -> Result<Url, Error> {
    let mut req = Req::new(
        Method::PATCH,
        Target::Url(url.clone()),
        scopes.to_vec(),
        &[StatusCode::ACCEPTED],
    )
    .header(CONTENT_TYPE, HeaderValue::from_static(OCTETS));
    if let Some(len) = body.len() {
        let range = HeaderValue::from_str(&format!("{}-{}", offset, offset + len - 1))
            .map_err(|e| ctx.protocol(e.to_string()))?;
        req = req.header(CONTENT_RANGE, range);
    }
    let resp = ep.call(ctx, &req.body(body)).await?;
    let next = location(ctx, &resp, url)?;
    drain(resp).await;
    Ok(next)
}

/// The closing `PUT ?digest=` of a session, with the last bytes (possibly none).
pub(crate) async fn close(
    ep: &Endpoint,
    ctx: &Ctx,
    mut url: Url,
    digest: &Digest,
    body: RequestBody,
    scopes: &[Scope],
) -> Result<(), Error> {
    url.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    let body = if body.len() == Some(0) {
        RequestBody::Empty
    } else {
        body
    };
    let req = Req::new(
        Method::PUT,
        Target::Url(url),
        scopes.to_vec(),
        &[StatusCode::CREATED, StatusCode::NO_CONTENT],
    )
    .header(CONTENT_TYPE, HeaderValue::from_static(OCTETS))
    .body(body);
    let resp = ep.call(ctx, &req).await?;
    check_digest_header(ctx, &resp, digest)?;
    drain(resp).await;
    Ok(())
}

const OCTETS: &str = "application/octet-stream";

/// Checks `Docker-Content-Digest`, when the registry sent one.
pub(crate) fn check_digest_header(
    ctx: &Ctx,
    resp: &Response<Incoming>,
    expected: &Digest,
) -> Result<(), Error> {
    if let Some(v) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        && v != expected.to_string()
    {
        return Err(ctx.err(ErrorKind::DigestMismatch {
            expected: expected.to_string(),
            actual: v.to_string(),
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_absolute_and_relative() {
        let base = Url::parse("https://reg:5000/v2/a/b/blobs/uploads/").unwrap();
        let abs =
            resolve_location(&base, "https://other:443/v2/a/b/blobs/uploads/u1?_state=x").unwrap();
        assert_eq!(
            abs.as_str(),
            "https://other/v2/a/b/blobs/uploads/u1?_state=x"
        );
        let path = resolve_location(&base, "/v2/a/b/blobs/uploads/u2?_state=y%3D").unwrap();
        assert_eq!(
            path.as_str(),
            "https://reg:5000/v2/a/b/blobs/uploads/u2?_state=y%3D"
        );
        let rel = resolve_location(&base, "u3?_state=z").unwrap();
        assert_eq!(
            rel.as_str(),
            "https://reg:5000/v2/a/b/blobs/uploads/u3?_state=z"
        );
        let mut with_digest = rel.clone();
        with_digest
            .query_pairs_mut()
            .append_pair("digest", "sha256:ab");
        assert_eq!(with_digest.query(), Some("_state=z&digest=sha256%3Aab"));
    }
}
