//! Streaming a blob to disk: frames are coalesced into 1 MiB buffers and handed to a
//! blocking writer thread that hashes and writes them into `DEST.<pid>-<n>.partial` (a name of
//! its own: builds sharing a store may pull the same blob at once); the file is
//! renamed to `DEST` only when size and digest match. Memory stays bounded (a few MiB)
//! whatever the blob size.
//!
//! A [`WriteWatch`] is told which partial file the current attempt writes and how many
//! bytes of it are written (0 when an attempt creates it), after the bytes are written:
//! a reader on the same machine can follow the file as it grows (kiln-build's pull
//! pipeline applies a layer while it arrives). A retry writes a new partial file from 0.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::Response;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use kiln_oci::{Descriptor, Digest, Hasher};

use crate::error::{Ctx, Error, ErrorKind};
use crate::progress::BlobMeter;
use crate::transport::chain;

const BUFFER: usize = 1 << 20;
const QUEUE: usize = 4;

/// Told the partial file the current attempt writes and the number of bytes written to
/// it; see the module documentation. Called on the blocking writer thread: it must not
/// block.
#[derive(Clone)]
pub struct WriteWatch(Arc<WatchFn>);

/// What a [`WriteWatch`] calls: the partial file and the bytes written to it.
type WatchFn = dyn Fn(&Path, u64) + Send + Sync;

impl WriteWatch {
    pub fn new(f: impl Fn(&Path, u64) + Send + Sync + 'static) -> WriteWatch {
        WriteWatch(Arc::new(f))
    }

    /// Says that `written` bytes of the current attempt are in `partial`.
    pub fn tell(&self, partial: &Path, written: u64) {
        (self.0)(partial, written);
    }
}

impl std::fmt::Debug for WriteWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteWatch")
    }
}

/// Writes the body of `resp` to `dest`, verified against `expected`.
pub(crate) async fn body_to_file(
    ctx: &Ctx,
    resp: Response<Incoming>,
    expected: &Descriptor,
    dest: &Path,
    meter: Option<&BlobMeter>,
    watch: Option<&WriteWatch>,
) -> Result<(), Error> {
    let partial = partial_path(dest);
    let watch = watch.cloned();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUE);
    let algorithm = expected.digest.algorithm();
    let writer_path = partial.clone();
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<(Digest, u64)> {
        let mut file = fs_err::File::create(&writer_path)?;
        let tell = |n: u64| {
            if let Some(watch) = &watch {
                watch.tell(&writer_path, n);
            }
        };
        tell(0);
        let mut hasher = Hasher::new(algorithm);
        let mut written = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            hasher.update(&chunk);
            file.write_all(&chunk)?;
            written += chunk.len() as u64;
            tell(written);
        }
        file.flush()?;
        Ok((hasher.finish(), written))
    });

    let streamed = stream_body(ctx, resp.into_body(), expected.size, &tx, meter).await;
    drop(tx);
    let written = writer
        .await
        .map_err(|e| ctx.err(ErrorKind::Invalid(format!("blob writer task: {e}"))));
    let outcome = match (streamed, written) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(Err(io))) => Err(ctx.io("writing", &partial, io)),
        (Ok(()), Ok(Ok((digest, size)))) => {
            if size != expected.size {
                Err(ctx.err(ErrorKind::SizeMismatch {
                    expected: expected.size,
                    actual: size,
                }))
            } else if digest != expected.digest {
                Err(ctx.err(ErrorKind::DigestMismatch {
                    expected: expected.digest.to_string(),
                    actual: digest.to_string(),
                }))
            } else {
                fs_err::tokio::rename(&partial, dest)
                    .await
                    .map_err(|e| ctx.io("renaming", &partial, e))?;
                if let Some(meter) = meter {
                    meter.report(size);
                }
                Ok(())
            }
        }
    };
    if outcome.is_err() {
        let _ = fs_err::tokio::remove_file(&partial).await;
    }
    outcome
}

async fn stream_body(
    ctx: &Ctx,
    mut body: Incoming,
    limit: u64,
    tx: &tokio::sync::mpsc::Sender<Bytes>,
    meter: Option<&BlobMeter>,
) -> Result<(), Error> {
    let mut buf = BytesMut::with_capacity(BUFFER);
    let (mut received, mut reported) = (0u64, 0u64);
    loop {
        // A stall is bounded by the connection's I/O timeout (crate::idle).
        let frame = match body.frame().await {
            None => break,
            Some(Err(e)) => {
                return Err(ctx.err(ErrorKind::Transfer {
                    url: "blob body".into(),
                    reason: chain(&e),
                }));
            }
            Some(Ok(frame)) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received += data.len() as u64;
        if received > limit {
            return Err(ctx.err(ErrorKind::SizeMismatch {
                expected: limit,
                actual: received,
            }));
        }
        buf.extend_from_slice(&data);
        if buf.len() >= BUFFER && tx.send(buf.split().freeze()).await.is_err() {
            return Ok(()); // the writer stopped: its error is reported
        }
        // At least one report per MiB received, whatever the frames' sizes.
        if received / BUFFER as u64 > reported / BUFFER as u64 {
            if let Some(meter) = meter {
                meter.report(received);
            }
            reported = received;
        }
    }
    if !buf.is_empty() {
        let _ = tx.send(buf.freeze()).await;
    }
    Ok(())
}

/// `DEST.<pid>-<n>.partial`: a name no other download has, in this process or
/// another. Builds sharing a blob store pull the same blob at the same time; with
/// one shared `DEST.partial`, the second writer truncated the file the first was
/// about to rename into place, and the second rename found nothing.
fn partial_path(dest: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = dest
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{}-{n}.partial", std::process::id()));
    dest.with_file_name(name)
}

/// Reads a whole (small) blob into memory, verified; `limit` bounds its size.
pub(crate) async fn body_to_bytes(
    ctx: &Ctx,
    resp: Response<Incoming>,
    expected: &Descriptor,
    limit: u64,
) -> Result<Bytes, Error> {
    if expected.size > limit {
        return Err(ctx.err(ErrorKind::Invalid(format!(
            "blob of {} bytes is over the {limit}-byte limit for in-memory blobs",
            expected.size
        ))));
    }
    let bytes = crate::session::read_limited(resp.into_body(), expected.size as usize + 1)
        .await
        .map_err(|reason| {
            ctx.err(ErrorKind::Transfer {
                url: "blob body".into(),
                reason,
            })
        })?;
    if bytes.len() as u64 != expected.size {
        return Err(ctx.err(ErrorKind::SizeMismatch {
            expected: expected.size,
            actual: bytes.len() as u64,
        }));
    }
    if !expected.digest.matches(&bytes) {
        let mut h = Hasher::new(expected.digest.algorithm());
        h.update(&bytes);
        return Err(ctx.err(ErrorKind::DigestMismatch {
            expected: expected.digest.to_string(),
            actual: h.finish().to_string(),
        }));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::partial_path;
    use std::path::Path;

    // Regression (issue 19, found by `cargo xtask chaos`'s load family): two
    // downloads of one blob into one store shared `DEST.partial`.
    #[test]
    fn every_download_writes_a_partial_file_of_its_own() {
        let dest = Path::new("/store/sha256/abc");
        let (a, b) = (partial_path(dest), partial_path(dest));
        assert_ne!(a, b);
        for p in [&a, &b] {
            assert_eq!(p.parent(), dest.parent());
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.starts_with(&format!("abc.{}-", std::process::id()))
                    && name.ends_with(".partial"),
                "{name}"
            );
        }
    }
}
