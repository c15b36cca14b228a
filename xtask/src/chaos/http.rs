//! A minimal HTTP/1.1 client over a plain TCP socket, for reading the test
//! registry on 127.0.0.1 directly (never through kiln's own client): one
//! request per connection, `Content-Length` or chunked bodies.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A response: status, headers (names lower-cased), body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Media types a manifest GET accepts.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Sends `method path` to `host_port` with `headers`; a HEAD response has no body.
pub fn request(
    method: &str,
    host_port: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response> {
    let what = || format!("{method} http://{host_port}{path}");
    let mut stream = TcpStream::connect(host_port).with_context(what)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).with_context(what)?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).with_context(what)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("{}: bad status line {line:?}", what()))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).with_context(what)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if method == "HEAD" {
        return Ok(response);
    }
    if response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            line.clear();
            reader.read_line(&mut line).with_context(what)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .with_context(|| format!("{}: bad chunk size {line:?}", what()))?;
            if size == 0 {
                break;
            }
            let start = response.body.len();
            response.body.resize(start + size, 0);
            reader
                .read_exact(&mut response.body[start..])
                .with_context(what)?;
            line.clear();
            reader.read_line(&mut line).with_context(what)?;
        }
    } else if let Some(len) = response.header("content-length") {
        let len: usize = len.parse().with_context(what)?;
        response.body.resize(len, 0);
        reader.read_exact(&mut response.body).with_context(what)?;
    } else {
        reader.read_to_end(&mut response.body).with_context(what)?;
    }
    Ok(response)
}

/// GET, failing unless the status is 200.
pub fn get_ok(host_port: &str, path: &str, headers: &[(&str, &str)]) -> Result<Response> {
    let response = request("GET", host_port, path, headers)?;
    if response.status != 200 {
        bail!(
            "GET http://{host_port}{path}: status {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
    }
    Ok(response)
}
