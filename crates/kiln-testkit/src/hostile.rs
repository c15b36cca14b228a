//! A registry that lies: a hyper server on 127.0.0.1 that speaks just enough of the
//! distribution API (`/v2/`, manifests and blobs by tag or digest) to serve one small,
//! valid busybox image, except for the one lie its repository name asks for.
//!
//! Each [`Lie`] has its own repository (`HOST:PORT/<lie>:1`, see
//! [`HostileRegistry::reference`]), so one server serves every case and a client sees
//! only the lie it pulls. The lies cost the server almost nothing: huge and endless
//! bodies are generated chunk by chunk, never held in memory.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use crate::image::{
    FixtureImage, FixtureLayer, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, sha256_digest,
};
use crate::server::BackgroundServer;

/// 100 MiB: the size of the huge documents.
pub const HUGE: u64 = 100 << 20;

/// One way to lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lie {
    /// The manifest is 100 MiB of JSON-looking bytes, chunked, with no `Content-Length`.
    HugeManifest,
    /// The manifest is honest; its config descriptor says 100 MiB and the config is that.
    HugeConfig,
    /// The config descriptor says the config's real size, but the body never ends.
    EndlessConfig,
    /// A layer whose bytes do not match its digest (same size, a few bytes changed).
    BadDigest,
    /// A small gzip layer (a few hundred KiB) inflating to a tar entry that claims
    /// 1 TiB and ends after 256 MiB of zeros; its digest and size are right.
    DecompressionBomb,
    /// The config blob redirects to itself, forever.
    EndlessRedirects,
    /// The manifest announces a `Content-Length` and closes the connection short of it.
    ShortBody,
    /// The manifest announces a `Content-Length`, sends part of it and then nothing,
    /// holding the connection open.
    StalledBody,
    /// Every request needs a bearer token, and the token endpoint answers garbage.
    GarbageToken,
}

impl Lie {
    /// Every lie.
    pub const ALL: &'static [Lie] = &[
        Lie::HugeManifest,
        Lie::HugeConfig,
        Lie::EndlessConfig,
        Lie::BadDigest,
        Lie::DecompressionBomb,
        Lie::EndlessRedirects,
        Lie::ShortBody,
        Lie::StalledBody,
        Lie::GarbageToken,
    ];

    /// The repository that tells it.
    pub fn repo(self) -> &'static str {
        match self {
            Lie::HugeManifest => "huge-manifest",
            Lie::HugeConfig => "huge-config",
            Lie::EndlessConfig => "endless-config",
            Lie::BadDigest => "bad-digest",
            Lie::DecompressionBomb => "decompression-bomb",
            Lie::EndlessRedirects => "endless-redirects",
            Lie::ShortBody => "short-body",
            Lie::StalledBody => "stalled-body",
            Lie::GarbageToken => "garbage-token",
        }
    }
}

struct Content {
    honest: FixtureImage,
    /// The manifest with a 100 MiB config descriptor, and that config's digest.
    huge_config_manifest: Vec<u8>,
    huge_config_digest: String,
    /// The manifest whose layer is the bomb, its config, and the bomb.
    bomb_manifest: Vec<u8>,
    bomb_config: Vec<u8>,
    bomb: Vec<u8>,
}

struct State {
    content: Content,
    port: u16,
    requests: AtomicUsize,
}

/// The running server; stops on drop.
pub struct HostileRegistry {
    port: u16,
    state: Arc<State>,
    _server: BackgroundServer,
}

impl std::fmt::Debug for HostileRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostileRegistry")
            .field("port", &self.port)
            .finish()
    }
}

impl HostileRegistry {
    /// Starts the server on a free 127.0.0.1 port.
    pub fn start() -> HostileRegistry {
        let (listener, port) = crate::server::bind_free();
        let honest = FixtureImage::busybox();
        let huge_config_digest = sha256_of_generated(HUGE);
        let huge_config_manifest = manifest_json(&huge_config_digest, HUGE, &honest.layers);
        let bomb_layer = decompression_bomb();
        // The diff_id of a layer that never ends cannot be known; the config names
        // the compressed bytes' digest, which is certainly not it.
        let bomb_config = config_json(&[bomb_layer.diff_id.as_str()]);
        let bomb_manifest = manifest_json(
            &sha256_digest(&bomb_config),
            bomb_config.len() as u64,
            std::slice::from_ref(&bomb_layer),
        );
        let state = Arc::new(State {
            content: Content {
                honest,
                huge_config_manifest,
                huge_config_digest,
                bomb_manifest,
                bomb_config,
                bomb: bomb_layer.blob,
            },
            port,
            requests: AtomicUsize::new(0),
        });
        let served = state.clone();
        let server = BackgroundServer::spawn("kiln-hostile-registry", async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = served.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(&state, &req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HostileRegistry {
            port,
            state,
            _server: server,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT/<lie>:1`, the image that tells `lie`.
    pub fn reference(&self, lie: Lie) -> String {
        format!("{}/{}:1", self.host_port(), lie.repo())
    }

    /// Requests answered so far.
    pub fn request_count(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}

/// A response body: whole, generated, or stalling.
enum Lying {
    Whole(Option<Bytes>),
    /// `remaining` bytes of a repeated chunk (`u64::MAX`: without end).
    Generated {
        chunk: Bytes,
        remaining: u64,
    },
    /// Sends `first`, then waits (an hour) and fails.
    Stall {
        first: Option<Bytes>,
        wait: Pin<Box<tokio::time::Sleep>>,
    },
    /// Sends `first`, then fails: the connection is closed short of its length.
    Cut(Option<Bytes>),
}

impl Body for Lying {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Lying::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Lying::Generated { chunk, remaining } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let n = (*remaining).min(chunk.len() as u64) as usize;
                *remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk.slice(..n)))))
            }
            Lying::Stall { first, wait } => {
                if let Some(bytes) = first.take() {
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                match wait.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err("stall over".into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
            Lying::Cut(first) => match first.take() {
                Some(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                None => Poll::Ready(Some(Err(
                    "cut short by kiln-testkit's hostile registry".into()
                ))),
            },
        }
    }
}

type Answer = Response<Lying>;

fn whole(status: u16, content_type: &str, body: Vec<u8>) -> Answer {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .header("Docker-Content-Digest", sha256_digest(&body))
        .header(hyper::header::CONTENT_LENGTH, body.len())
        .body(Lying::Whole(Some(Bytes::from(body))))
        .expect("response")
}

fn not_found() -> Answer {
    whole(
        404,
        "application/json",
        br#"{"errors":[{"code":"NOT_FOUND","message":"no such thing"}]}"#.to_vec(),
    )
}

fn answer(state: &State, req: &Request<hyper::body::Incoming>) -> Answer {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let content = &state.content;
    if path == "/v2/" || path == "/v2" {
        return whole(200, "application/json", b"{}".to_vec());
    }
    if path == "/token" {
        // Not JSON, not UTF-8, not short.
        let garbage: Vec<u8> = (0..65536u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        return whole(200, "application/json", garbage);
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return not_found();
    };
    let Some(lie) = Lie::ALL
        .iter()
        .copied()
        .find(|l| rest.starts_with(&format!("{}/", l.repo())))
    else {
        return not_found();
    };
    let rest = &rest[lie.repo().len() + 1..];
    if lie == Lie::GarbageToken && !req.headers().contains_key(hyper::header::AUTHORIZATION) {
        return Response::builder()
            .status(401)
            .header(
                hyper::header::WWW_AUTHENTICATE,
                format!(
                    r#"Bearer realm="http://127.0.0.1:{}/token",service="hostile",scope="repository:{}:pull""#,
                    state.port,
                    lie.repo()
                ),
            )
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Lying::Whole(Some(Bytes::from_static(br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#))))
            .expect("response");
    }
    let honest = &content.honest;
    if let Some(reference) = rest.strip_prefix("manifests/") {
        let manifest = match lie {
            Lie::HugeConfig => &content.huge_config_manifest,
            Lie::DecompressionBomb => &content.bomb_manifest,
            _ => &honest.manifest,
        };
        if reference != "1" && reference != sha256_digest(manifest) {
            return not_found();
        }
        return match lie {
            Lie::HugeManifest => Response::builder()
                .status(200)
                .header(hyper::header::CONTENT_TYPE, OCI_MANIFEST)
                .body(Lying::Generated {
                    chunk: generated_chunk(),
                    remaining: HUGE,
                })
                .expect("response"),
            Lie::ShortBody | Lie::StalledBody => {
                let first = Bytes::copy_from_slice(&manifest[..manifest.len() / 2]);
                let body = if lie == Lie::ShortBody {
                    Lying::Cut(Some(first))
                } else {
                    Lying::Stall {
                        first: Some(first),
                        wait: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
                    }
                };
                Response::builder()
                    .status(200)
                    .header(hyper::header::CONTENT_TYPE, OCI_MANIFEST)
                    .header(hyper::header::CONTENT_LENGTH, manifest.len())
                    .body(body)
                    .expect("response")
            }
            _ => whole(200, OCI_MANIFEST, manifest.clone()),
        };
    }
    let Some(digest) = rest.strip_prefix("blobs/") else {
        return not_found();
    };
    let config_digest = sha256_digest(&honest.config);
    if lie == Lie::EndlessRedirects && digest == config_digest {
        let hop: u64 = query
            .strip_prefix("hop=")
            .and_then(|h| h.parse().ok())
            .unwrap_or(0);
        return Response::builder()
            .status(307)
            .header(
                hyper::header::LOCATION,
                format!("/v2/{}/blobs/{digest}?hop={}", lie.repo(), hop + 1),
            )
            .body(Lying::Whole(None))
            .expect("response");
    }
    if lie == Lie::EndlessConfig && digest == config_digest {
        return Response::builder()
            .status(200)
            .header(hyper::header::CONTENT_TYPE, OCI_CONFIG)
            .body(Lying::Generated {
                chunk: generated_chunk(),
                remaining: u64::MAX,
            })
            .expect("response");
    }
    if lie == Lie::HugeConfig && digest == content.huge_config_digest {
        return Response::builder()
            .status(200)
            .header(hyper::header::CONTENT_TYPE, OCI_CONFIG)
            .header(hyper::header::CONTENT_LENGTH, HUGE)
            .body(Lying::Generated {
                chunk: generated_chunk(),
                remaining: HUGE,
            })
            .expect("response");
    }
    if lie == Lie::DecompressionBomb {
        if digest == sha256_digest(&content.bomb) {
            return whole(200, OCI_LAYER_GZIP, content.bomb.clone());
        }
        if digest == sha256_digest(&content.bomb_config) {
            return whole(200, OCI_CONFIG, content.bomb_config.clone());
        }
    }
    if digest == config_digest {
        return whole(200, OCI_CONFIG, honest.config.clone());
    }
    for layer in &honest.layers {
        if digest == layer.digest() {
            let mut blob = layer.blob.clone();
            if lie == Lie::BadDigest {
                let middle = blob.len() / 2;
                for b in &mut blob[middle..middle + 16] {
                    *b ^= 0x5a;
                }
            }
            return whole(200, &layer.media_type, blob);
        }
    }
    not_found()
}

/// 64 KiB of `{"padding":"xxx...` — looks like the start of JSON, never ends well.
fn generated_chunk() -> Bytes {
    let mut chunk = b"{\"schemaVersion\":2,\"padding\":\"".to_vec();
    chunk.resize(64 << 10, b'x');
    Bytes::from(chunk)
}

fn sha256_of_generated(len: u64) -> String {
    use sha2::{Digest, Sha256};
    let chunk = generated_chunk();
    let mut hasher = Sha256::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        hasher.update(&chunk[..n]);
        left -= n as u64;
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

fn config_json(diff_ids: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": crate::image::host_architecture(),
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("config JSON")
}

fn manifest_json(config_digest: &str, config_size: u64, layers: &[FixtureLayer]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": l.media_type, "digest": l.digest(), "size": l.blob.len(),
        })).collect::<Vec<_>>(),
    }))
    .expect("manifest JSON")
}

/// A gzip of a tar header claiming a 1 TiB file, followed by 256 MiB of zeros: a few
/// hundred KiB that inflate far beyond any limit and then end mid-entry.
fn decompression_bomb() -> FixtureLayer {
    use std::io::Write;
    let mut header = tar::Header::new_gnu();
    header.set_path("bomb").expect("tar path");
    header.set_size(1 << 40);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(header.as_bytes()).expect("gzip");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        gz.write_all(&zeros).expect("gzip");
    }
    let blob = gz.finish().expect("gzip");
    FixtureLayer {
        media_type: OCI_LAYER_GZIP.to_owned(),
        diff_id: sha256_digest(&blob),
        blob,
    }
}
