//! ADD from a URL: one HTTP(S) GET (redirects followed, TLS from kiln-auth's
//! roots), the body streamed to a staging file while its sha256 is computed,
//! `--checksum` verified, the file name taken from the URL path and the
//! mtime from `Last-Modified`, as Docker does. Remote archives are never
//! extracted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kiln_oci::{Digest, Hasher};

/// A downloaded file.
#[derive(Debug, Clone)]
pub struct Downloaded {
    /// Where the body was written.
    pub path: PathBuf,
    /// Name for the destination when it is a directory (last URL path segment).
    pub file_name: String,
    /// `Last-Modified`, seconds since the epoch.
    pub last_modified: Option<i64>,
}

const MAX_REDIRECTS: usize = 10;
const TIMEOUT: Duration = Duration::from_secs(600);

/// Downloads `url` to `dest` on a private runtime (callable from synchronous code
/// running inside another runtime).
pub fn download_blocking(
    url: &str,
    dest: &Path,
    checksum: Option<&str>,
) -> Result<Downloaded, String> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("starting the download runtime: {e}"))?;
                runtime.block_on(download(url, dest, checksum))
            })
            .join()
            .map_err(|_| "the download thread panicked".to_string())?
    })
}

async fn download(url: &str, dest: &Path, checksum: Option<&str>) -> Result<Downloaded, String> {
    let expected = checksum
        .map(|c| {
            c.parse::<Digest>()
                .map_err(|e| format!("--checksum {c:?}: {e}"))
        })
        .transpose()?;
    let shown = display_url(url);
    let mut current: http::Uri = url
        .parse()
        .map_err(|e| format!("ADD {shown}: invalid URL: {e}"))?;
    let host = current.host().unwrap_or_default().to_string();
    let tls = kiln_auth::TlsConfigs::new(
        kiln_auth::TlsOptions::default(),
        &kiln_auth::ProcessEnvironment,
    )
    .and_then(|c| c.client_config(&host))
    .map_err(|e| format!("ADD {shown}: TLS setup: {e}"))?;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let mut response = None;
    for _ in 0..=MAX_REDIRECTS {
        let request = http::Request::get(current.clone())
            .header(
                http::header::USER_AGENT,
                concat!("kiln/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map_err(|e| format!("ADD {shown}: {e}"))?;
        let resp = tokio::time::timeout(TIMEOUT, client.request(request))
            .await
            .map_err(|_| format!("ADD {shown}: no answer within {}s", TIMEOUT.as_secs()))?
            .map_err(|e| format!("ADD {shown}: {}", error_chain(&e)))?;
        if resp.status().is_redirection() {
            let location = resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| format!("ADD {shown}: redirect without a Location"))?;
            current = resolve_location(&current, location)
                .map_err(|e| format!("ADD {shown}: bad redirect: {e}"))?;
            continue;
        }
        response = Some(resp);
        break;
    }
    let response = response.ok_or_else(|| format!("ADD {shown}: too many redirects"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!(
            "ADD {shown}: the server answered HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ));
    }
    let last_modified = response
        .headers()
        .get(http::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date);
    let mut file = fs_err::File::create(dest).map_err(|e| e.to_string())?;
    let mut hasher = Hasher::sha256();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("ADD {shown}: reading the body: {e}"))?;
        if let Ok(data) = frame.into_data() {
            hasher.update(&data);
            file.write_all(&data).map_err(|e| e.to_string())?;
        }
    }
    file.flush().map_err(|e| e.to_string())?;
    let digest = hasher.finish();
    if let Some(expected) = expected.filter(|e| *e != digest) {
        return Err(format!(
            "ADD {shown}: checksum mismatch: expected {expected}, the download is {digest}"
        ));
    }
    let file_name = url_file_name(url);
    Ok(Downloaded {
        path: dest.to_path_buf(),
        file_name,
        last_modified,
    })
}

/// The URL without user info or query (which may carry credentials).
fn display_url(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or(url);
    match without_query.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{rest}")
        }
        None => without_query.to_string(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn resolve_location(base: &http::Uri, location: &str) -> Result<http::Uri, String> {
    if location.contains("://") {
        return location
            .parse()
            .map_err(|e: http::uri::InvalidUri| e.to_string());
    }
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
    let path = if location.starts_with('/') {
        location.to_string()
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{location}")
    };
    format!("{scheme}://{authority}{path}")
        .parse()
        .map_err(|e: http::uri::InvalidUri| e.to_string())
}

/// The last non-empty path segment of the URL, as Docker names ADD downloads.
pub fn url_file_name(url: &str) -> String {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .split_once("://")
        .map_or("", |(_, rest)| rest.split_once('/').map_or("", |(_, p)| p));
    path.rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("__unnamed__")
        .to_string()
}

/// Seconds since the epoch of an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_http_date(text: &str) -> Option<i64> {
    let at = httpdate::parse_http_date(text).ok()?;
    let secs = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_dates_and_display() {
        assert_eq!(url_file_name("http://h/a/b/file.tar.gz?x=1"), "file.tar.gz");
        assert_eq!(url_file_name("http://h/dir/"), "dir");
        assert_eq!(url_file_name("http://h"), "__unnamed__");
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(display_url("https://u:p@h/x?token=s"), "https://h/x");
    }
}
