//! Uploading a blob while it is being written (a layer while it is encoded).
//!
//! The writer side, [`GrowingBlobWriter`], is a synchronous `Write` over the blob's file
//! that publishes how many bytes are on disk after every write, and at the end the
//! blob's digest (or why it was abandoned), through a `tokio::sync::watch` channel. The
//! reader side, [`GrowingBlob`], holds its own handle on the same file and reads it with
//! `pread`, so the file may be renamed (into a blob store) while an upload runs, and any
//! number of uploads (one per destination repository) read it independently.
//!
//! [`Client::push_growing_blob`] follows the distribution protocol's chunked upload: a
//! `PATCH` with `Content-Range` for every `chunk` bytes as soon as they are written
//! (without a chunk size in the options, all that is written when the previous `PATCH`
//! ends, between [`STREAM_CHUNK`] and [`STREAM_CHUNK_MAX`]), and
//! once the digest is known the rest in the closing `PUT ?digest=`; so the upload ends
//! shortly after the last write. A blob that ended before a full chunk was written is
//! sent in one `PUT`: checked first (`HEAD`) when it is over [`crate::UNASKED_MAX`],
//! and not at all when this client already saw the repository accept it. A registry
//! that refuses `PATCH` (405, 501, or a 4xx about length or range) gets the finished blob
//! monolithically from a fresh session. Every attempt restarts from a fresh `POST` under
//! the client's retry policy, reading the file from its start again. Memory per upload is
//! the body reader's few 1 MiB buffers, whatever the blob's size. A client with a
//! progress hook hears of the blob once its digest is known (the bytes the registry has
//! accepted by then) and when it is complete.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_oci::Digest;
use tokio::sync::watch;
use url::Url;

use crate::body::RequestBody;
use crate::challenge::Scope;
use crate::client::{Client, RepoRef};
use crate::error::{Ctx, Error, ErrorKind, Operation};
use crate::options::Direction;
use crate::progress::BlobMeter;
use crate::push::{BlobOutcome, push_scopes};
use crate::session::Endpoint;
use crate::upload;

/// Bytes sent per `PATCH` when the client's options set no chunk size...
pub const STREAM_CHUNK: u64 = 8 << 20;

/// ...or, when the upload is behind the writer, everything written since the last
/// `PATCH` up to this much in one: each request costs a round trip, and a 500 MB layer
/// in 8 MiB chunks paid 60 of them (0.6-1.2 s at 10-20 ms) where the network, not
/// the encoder, was the bottleneck.
pub const STREAM_CHUNK_MAX: u64 = 64 << 20;

/// What the writer has published so far.
#[derive(Debug, Clone, Default)]
struct Growth {
    written: u64,
    /// `Some(Ok)`: complete, with this digest; `Some(Err)`: abandoned, and why.
    end: Option<Result<Digest, String>>,
}

/// The writing end: a file plus the channel that announces its growth.
#[derive(Debug)]
pub struct GrowingBlobWriter {
    file: std::fs::File,
    path: PathBuf,
    tx: watch::Sender<Growth>,
    ended: bool,
}

/// The reading end, cloned for every upload of the blob.
#[derive(Debug, Clone)]
pub struct GrowingBlob {
    file: Arc<std::fs::File>,
    path: PathBuf,
    rx: watch::Receiver<Growth>,
}

/// A blob written through `file` (created empty at `path` by the caller) and uploadable
/// while it grows; the uploads read `path` opened again, read-only.
pub fn growing_blob(
    file: std::fs::File,
    path: &Path,
) -> io::Result<(GrowingBlobWriter, GrowingBlob)> {
    let reader = fs_err::File::open(path)?.into_parts().0;
    let (tx, rx) = watch::channel(Growth::default());
    Ok((
        GrowingBlobWriter {
            file,
            path: path.to_owned(),
            tx,
            ended: false,
        },
        GrowingBlob {
            file: Arc::new(reader),
            path: path.to_owned(),
            rx,
        },
    ))
}

impl Write for GrowingBlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.tx.send_modify(|g| g.written += n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl GrowingBlobWriter {
    /// Every byte is written and `digest` is the blob's: uploads may finish.
    pub fn finish(mut self, digest: Digest) {
        self.end(Ok(digest));
    }

    /// The blob will not be completed: uploads stop with `reason`.
    pub fn abandon(mut self, reason: impl Into<String>) {
        self.end(Err(reason.into()));
    }

    fn end(&mut self, end: Result<Digest, String>) {
        self.ended = true;
        self.tx.send_modify(|g| g.end = Some(end));
    }

    /// The file the blob is written to.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for GrowingBlobWriter {
    fn drop(&mut self) {
        if !self.ended {
            self.end(Err("the blob's writer stopped before the end".into()));
        }
    }
}

impl GrowingBlob {
    /// Waits until `offset + chunk` bytes are written or the blob ended.
    async fn wait(&self, offset: u64, chunk: u64) -> Growth {
        let mut rx = self.rx.clone();
        let seen = rx
            .wait_for(|g| g.end.is_some() || g.written >= offset + chunk)
            .await
            .map(|g| g.clone());
        seen.unwrap_or_else(|_| Growth {
            written: 0,
            end: Some(Err("the blob's writer went away".into())),
        })
    }

    /// Waits until the blob has grown past `limit` bytes (`false`) or ended within
    /// them (`true`): a caller bounding concurrent uploads by their buffers can let a
    /// small finished blob through without a turn.
    pub async fn ends_within(&self, limit: u64) -> bool {
        let growth = self.wait(0, limit.saturating_add(1)).await;
        growth.end.is_some() && growth.written <= limit
    }

    /// Waits until the blob ended (complete or abandoned).
    async fn wait_end(&self) -> Growth {
        self.wait(u64::MAX, 0).await
    }

    fn range(&self, offset: u64, len: u64) -> RequestBody {
        RequestBody::Handle {
            file: self.file.clone(),
            name: self.path.clone(),
            offset,
            len,
        }
    }
}

/// How many bytes one `PATCH` carries: at least `min` (the upload waits for them),
/// at most `max` (what is written beyond `min` goes along).
#[derive(Debug, Clone, Copy)]
struct Chunks {
    min: u64,
    max: u64,
}

/// How one streaming attempt ended.
enum Streamed {
    Done(BlobOutcome),
    /// The registry refused a `PATCH`: upload the finished blob in one `PUT`.
    Refused(Error),
}

/// A `PATCH` answer meaning "no chunked uploads here" rather than a transient fault.
fn refuses_chunks(e: &Error) -> bool {
    matches!(e.status(), Some(400 | 405 | 411 | 413 | 416 | 501)) && !e.is_auth_failure()
}

impl Client {
    /// Makes the blob being written through `blob`'s writer present in `repo`,
    /// uploading it while it grows (see the module docs). Returns once the registry
    /// holds the complete blob; fails if the writer abandons it.
    pub async fn push_growing_blob(
        &self,
        repo: &RepoRef,
        blob: &GrowingBlob,
    ) -> Result<BlobOutcome, Error> {
        let ctx = Ctx::new(Operation::PushBlob, &repo.registry)
            .repo(&repo.repository)
            .object(format!("{} (while it is written)", blob.path.display()));
        let ep = self.endpoint(&repo.registry, Direction::Push, &ctx)?;
        let scopes = push_scopes(repo);
        let chunks = match self.options().chunk_size.filter(|c| *c > 0) {
            Some(chunk) => Chunks {
                min: chunk,
                max: chunk,
            },
            None => Chunks {
                min: STREAM_CHUNK,
                max: STREAM_CHUNK_MAX,
            },
        };
        let streamed = ep
            .cfg
            .retry
            .run(|_| self.stream_attempt(&ep, &ctx, repo, blob, chunks, &scopes))
            .await?;
        let refusal = match streamed {
            Streamed::Done(outcome) => {
                let (digest, _) = finished(&ctx, &blob.wait_end().await)?;
                self.note_present(repo, &digest);
                return Ok(outcome);
            }
            Streamed::Refused(e) => e,
        };
        tracing::debug!(repo = %repo, error = %refusal, "chunked upload refused; uploading the finished blob in one request");
        let (digest, size) = finished(&ctx, &blob.wait_end().await)?;
        let meter = BlobMeter::new(self.progress_hook(), Direction::Push, &digest, size);
        report(meter.as_ref(), 0);
        ep.cfg
            .retry
            .run(|_| async {
                let url = upload::start(&ep, &ctx, &repo.repository, &scopes).await?;
                upload::close(&ep, &ctx, url, &digest, blob.range(0, size), &scopes).await
            })
            .await?;
        report(meter.as_ref(), size);
        self.note_present(repo, &digest);
        Ok(BlobOutcome::Uploaded)
    }

    /// One attempt: a fresh session, `PATCH`es as the blob grows, the closing `PUT`.
    async fn stream_attempt(
        &self,
        ep: &Endpoint,
        ctx: &Ctx,
        repo: &RepoRef,
        blob: &GrowingBlob,
        chunks: Chunks,
        scopes: &[Scope],
    ) -> Result<Streamed, Error> {
        let mut session: Option<Url> = None;
        let mut offset = 0;
        loop {
            let growth = blob.wait(offset, chunks.min).await;
            if growth.end.is_some() {
                let (digest, size) = finished(ctx, &growth)?;
                if session.is_none() && self.already_in(repo, &digest, size, false).await? {
                    return Ok(Streamed::Done(BlobOutcome::Existing));
                }
                let url = match session {
                    Some(url) => url,
                    None => self.upload_session(ep, ctx, repo, scopes).await?,
                };
                let meter = BlobMeter::new(self.progress_hook(), Direction::Push, &digest, size);
                report(meter.as_ref(), offset);
                let body = blob.range(offset, size - offset);
                upload::close(ep, ctx, url, &digest, body, scopes).await?;
                report(meter.as_ref(), size);
                return Ok(Streamed::Done(BlobOutcome::Uploaded));
            }
            let url = match session.take() {
                Some(url) => url,
                None => self.upload_session(ep, ctx, repo, scopes).await?,
            };
            let len = (growth.written - offset).clamp(chunks.min, chunks.max);
            let body = blob.range(offset, len);
            session = match upload::patch(ep, ctx, &url, offset, len, body, scopes).await {
                Ok(next) => Some(next),
                Err(e) if refuses_chunks(&e) => return Ok(Streamed::Refused(e)),
                Err(e) => return Err(e),
            };
            offset += len;
        }
    }
}

fn report(meter: Option<&BlobMeter>, done: u64) {
    if let Some(meter) = meter {
        meter.report(done);
    }
}

/// The digest and size of an ended blob, or why it was abandoned.
fn finished(ctx: &Ctx, growth: &Growth) -> Result<(Digest, u64), Error> {
    match &growth.end {
        Some(Ok(digest)) => Ok((digest.clone(), growth.written)),
        Some(Err(reason)) => Err(ctx.err(ErrorKind::Invalid(format!(
            "the blob was not completed: {reason}"
        )))),
        None => Err(ctx.protocol("internal: the blob has not ended")),
    }
}
