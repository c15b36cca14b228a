//! Request bodies that can be sent again (for retries): nothing, bytes in memory (manifests,
//! configs, token forms), a byte range of a file (named by its path, or an open handle
//! for a blob still being written, see `growing.rs`) streamed from disk in 1 MiB chunks by
//! a blocking reader thread, so a blob is never whole in memory, or a blob still being
//! written, sent as it grows (its length unknown until it ends).

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};

use crate::growing::GrowingBlob;
use crate::progress::BlobMeter;

/// The body type of every request kiln sends.
pub(crate) type HyperBody = UnsyncBoxBody<Bytes, std::io::Error>;

pub(crate) const CHUNK: usize = 1 << 20;
/// Chunks read ahead of the network (bounded memory: QUEUE × CHUNK per upload).
const QUEUE: usize = 4;

/// Where a request body comes from; cloned and re-opened for every attempt.
#[derive(Debug, Clone)]
pub(crate) enum RequestBody {
    Empty,
    Bytes(Bytes),
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
        /// Told `offset + bytes sent so far` as chunks go to the network.
        meter: Option<BlobMeter>,
    },
    /// A byte range of an open file, read with `pread` (the file may be renamed meanwhile).
    Handle {
        file: Arc<std::fs::File>,
        /// For error messages.
        name: PathBuf,
        offset: u64,
        len: u64,
    },
    /// A blob still being written, whole, sent as it is written and ending with it.
    Growing(GrowingBlob),
}

impl RequestBody {
    /// The body's length; `None` while it is not known (a blob still being written).
    pub fn len(&self) -> Option<u64> {
        match self {
            RequestBody::Empty => Some(0),
            RequestBody::Bytes(b) => Some(b.len() as u64),
            RequestBody::File { len, .. } | RequestBody::Handle { len, .. } => Some(*len),
            RequestBody::Growing(_) => None,
        }
    }

    /// Opens the body for one attempt. I/O errors name the file.
    pub async fn open(&self) -> std::io::Result<HyperBody> {
        match self {
            RequestBody::Empty => Ok(Empty::new().map_err(|never| match never {}).boxed_unsync()),
            RequestBody::Bytes(b) => Ok(Full::new(b.clone())
                .map_err(|never| match never {})
                .boxed_unsync()),
            RequestBody::File {
                path,
                offset,
                len,
                meter,
            } => open_file_body(path, *offset, *len, meter.clone()).await,
            RequestBody::Handle {
                file,
                name,
                offset,
                len,
            } => {
                let file = file.clone();
                let mut pos = *offset;
                let reader = move |buf: &mut [u8]| {
                    file.read_exact_at(buf, pos)?;
                    pos += buf.len() as u64;
                    Ok(())
                };
                Ok(stream_body(reader, name.clone(), *offset, *len, None))
            }
            RequestBody::Growing(blob) => Ok(blob.streamed_body()),
        }
    }
}

async fn open_file_body(
    path: &Path,
    offset: u64,
    len: u64,
    meter: Option<BlobMeter>,
) -> std::io::Result<HyperBody> {
    let p = path.to_path_buf();
    let mut file = tokio::task::spawn_blocking(move || -> std::io::Result<fs_err::File> {
        let mut f = fs_err::File::open(&p)?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(f)
    })
    .await
    .map_err(std::io::Error::other)??;
    Ok(stream_body(
        move |buf: &mut [u8]| file.read_exact(buf),
        path.to_path_buf(),
        offset,
        len,
        meter,
    ))
}

/// `len` bytes from `read` (which fills the buffer it is given) as a body, read ahead by
/// a blocking thread at most `QUEUE` chunks; errors name `path` and the range.
fn stream_body(
    mut read: impl FnMut(&mut [u8]) -> std::io::Result<()> + Send + 'static,
    path: PathBuf,
    offset: u64,
    len: u64,
    meter: Option<BlobMeter>,
) -> HyperBody {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(QUEUE);
    let p = path;
    tokio::task::spawn_blocking(move || {
        let mut remaining = len;
        while remaining > 0 {
            let want = remaining.min(CHUNK as u64) as usize;
            let mut buf = vec![0u8; want];
            let item = read(&mut buf)
                .map(|()| Bytes::from(buf))
                .map_err(|e| read_error(e, &p, offset, len));
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return; // request dropped, or error delivered
            }
            remaining -= want as u64;
        }
    });
    // Progress counts what hyper has taken from the stream, not what was read ahead.
    let stream = futures_util::stream::unfold((rx, offset), move |(mut rx, sent)| {
        let meter = meter.clone();
        async move {
            let item = rx.recv().await?;
            let sent = sent + item.as_ref().map_or(0, |b| b.len() as u64);
            if let (Some(meter), Ok(_)) = (&meter, &item) {
                meter.report(sent);
            }
            Some((item.map(Frame::data), (rx, sent)))
        }
    });
    StreamBody::new(stream).boxed_unsync()
}

/// A read of `len` bytes at `offset` of `path` failed: the error, naming them.
pub(crate) fn read_error(e: std::io::Error, path: &Path, offset: u64, len: u64) -> std::io::Error {
    std::io::Error::new(
        e.kind(),
        format!(
            "reading {} ({len} bytes from offset {offset}): {e}",
            path.display()
        ),
    )
}
