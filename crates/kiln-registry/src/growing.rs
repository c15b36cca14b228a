//! Uploading a blob while it is being written (a layer while it is encoded).
//!
//! The writer side, [`GrowingBlobWriter`], is a synchronous `Write` over the blob's file
//! that publishes how many bytes are on disk after every write, and at the end the
//! blob's digest (or why it was abandoned), through a `tokio::sync::watch` channel. The
//! reader side, [`GrowingBlob`], holds its own handle on the same file and reads it with
//! `pread`, so the file may be renamed (into a blob store) while an upload runs, and any
//! number of uploads (one per destination repository) read it independently.
//!
//! [`Client::push_growing_blob`] waits until [`STREAM_CHUNK`] bytes are written. A blob
//! that ended within them is sent in one `PUT`: checked first (`HEAD`) when it is over
//! [`crate::UNASKED_MAX`], and not at all when this client already saw the repository
//! accept it. A longer one goes up in one `PATCH` of unknown length (HTTP/1.1 chunked
//! encoding, as `docker push` sends a blob) whose body follows the writer: every byte
//! leaves as soon as it is on disk, and the body ends when the writer ends, so the
//! upload closes (`PUT ?digest=`, empty) one round trip after the last write, whatever
//! the speeds of encoder and network. With a chunk size in the client's options, the
//! blob goes in `PATCH`es of exactly that size with `Content-Range`, and what is left at
//! the end with the closing `PUT`. A registry that refuses `PATCH` (405, 501, or a 4xx
//! about length or range) gets the finished blob monolithically from a fresh session.
//! An attempt that fails (a broken connection under the stream) restarts from a fresh
//! `POST` under the client's retry policy, reading the file from its start again; a
//! blob the writer abandons fails its upload with the writer's reason. Memory per
//! upload is a few 1 MiB buffers, whatever the blob's size. A client with a progress
//! hook hears of the blob once its digest is known (the bytes the registry has accepted
//! by then) and when it is complete.

use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use kiln_oci::Digest;
use tokio::sync::watch;

use crate::body::{CHUNK, HyperBody, RequestBody, read_error};
use crate::challenge::Scope;
use crate::client::{Client, RepoRef};
use crate::error::{Ctx, Error, ErrorKind, Operation};
use crate::options::Direction;
use crate::progress::BlobMeter;
use crate::push::{BlobOutcome, push_scopes};
use crate::session::Endpoint;
use crate::upload;

/// A blob that ends within this many bytes goes up in one `PUT` (after a `HEAD` when it
/// is over [`crate::UNASKED_MAX`]); a longer one is streamed while it is written. The
/// upload waits for this much before deciding.
pub const STREAM_CHUNK: u64 = 8 << 20;

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

    /// What the writer has published by now.
    fn now(&self) -> Growth {
        self.rx.borrow().clone()
    }

    /// The whole blob as a request body that follows the writer: each piece (up to
    /// 1 MiB) is read as soon as it is written, the body ends when the writer finishes,
    /// and fails when it abandons the blob (the request is then aborted).
    pub(crate) fn streamed_body(&self) -> HyperBody {
        let stream = futures_util::stream::unfold(Some((self.clone(), 0u64)), |state| async {
            let (blob, sent) = state?;
            let growth = blob.wait(sent, 1).await;
            if growth.written > sent {
                let len = (growth.written - sent).min(CHUNK as u64);
                return Some(match blob.read_piece(sent, len).await {
                    Ok(bytes) => (Ok(Frame::data(bytes)), Some((blob, sent + len))),
                    Err(e) => (Err(e), None),
                });
            }
            match growth.end {
                Some(Ok(_)) => None,
                Some(Err(reason)) => Some((Err(io::Error::other(not_completed(&reason))), None)),
                None => Some((
                    Err(io::Error::other(
                        "internal: the blob neither grew nor ended",
                    )),
                    None,
                )),
            }
        });
        StreamBody::new(stream).boxed_unsync()
    }

    /// `len` bytes at `offset`, read on a blocking thread; errors name the file.
    async fn read_piece(&self, offset: u64, len: u64) -> io::Result<Bytes> {
        let file = self.file.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len as usize];
            file.read_exact_at(&mut buf, offset)
                .map(|()| Bytes::from(buf))
        })
        .await
        .unwrap_or_else(|join| Err(io::Error::other(join)));
        read.map_err(|e| read_error(e, &self.path, offset, len))
    }
}

/// How one streaming attempt ended.
enum Attempt {
    /// The registry holds the blob, whose digest this is.
    Done(BlobOutcome, Digest),
    /// The registry refused a `PATCH`: upload the finished blob in one `PUT`.
    Refused(Error),
}

/// A `PATCH` answer meaning "no chunked uploads here" rather than a transient fault.
fn refuses_chunks(e: &Error) -> bool {
    matches!(e.status(), Some(400 | 405 | 411 | 413 | 416 | 501)) && !e.is_auth_failure()
}

/// A `PATCH` that failed: if the writer abandoned the blob (which aborts a streamed
/// body), that is the reason; a refusal of chunks means the monolithic fallback.
fn after_failed_patch(ctx: &Ctx, blob: &GrowingBlob, e: Error) -> Result<Attempt, Error> {
    if let Some(Err(reason)) = &blob.now().end {
        return Err(abandoned(ctx, reason));
    }
    if refuses_chunks(&e) {
        Ok(Attempt::Refused(e))
    } else {
        Err(e)
    }
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
        let chunk = self.options().chunk_size.filter(|c| *c > 0);
        let attempt = ep
            .cfg
            .retry
            .run(|_| self.stream_attempt(&ep, &ctx, repo, blob, chunk, &scopes))
            .await?;
        let refusal = match attempt {
            Attempt::Done(outcome, digest) => {
                self.note_present(repo, &digest);
                return Ok(outcome);
            }
            Attempt::Refused(e) => e,
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

    /// One attempt: a blob that ends within the first chunk in one `PUT`, else a fresh
    /// session, the streamed `PATCH` (or one per `chunk`), the closing `PUT`.
    async fn stream_attempt(
        &self,
        ep: &Endpoint,
        ctx: &Ctx,
        repo: &RepoRef,
        blob: &GrowingBlob,
        chunk: Option<u64>,
        scopes: &[Scope],
    ) -> Result<Attempt, Error> {
        let first = blob.wait(0, chunk.unwrap_or(STREAM_CHUNK)).await;
        if first.end.is_some() {
            let (digest, size) = finished(ctx, &first)?;
            if self.already_in(repo, &digest, size, false).await? {
                return Ok(Attempt::Done(BlobOutcome::Existing, digest));
            }
        }
        let mut url = self.upload_session(ep, ctx, repo, scopes).await?;
        let mut sent = 0;
        if first.end.is_none() {
            match chunk {
                None => {
                    let body = RequestBody::Growing(blob.clone());
                    url = match upload::patch(ep, ctx, &url, 0, body, scopes).await {
                        Ok(next) => next,
                        Err(e) => return after_failed_patch(ctx, blob, e),
                    };
                    sent = blob.wait_end().await.written;
                }
                Some(chunk) => loop {
                    if blob.wait(sent, chunk).await.end.is_some() {
                        break;
                    }
                    let body = blob.range(sent, chunk);
                    url = match upload::patch(ep, ctx, &url, sent, body, scopes).await {
                        Ok(next) => next,
                        Err(e) => return after_failed_patch(ctx, blob, e),
                    };
                    sent += chunk;
                },
            }
        }
        let (digest, size) = finished(ctx, &blob.wait_end().await)?;
        let meter = BlobMeter::new(self.progress_hook(), Direction::Push, &digest, size);
        report(meter.as_ref(), sent);
        upload::close(ep, ctx, url, &digest, blob.range(sent, size - sent), scopes).await?;
        report(meter.as_ref(), size);
        Ok(Attempt::Done(BlobOutcome::Uploaded, digest))
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
        Some(Err(reason)) => Err(abandoned(ctx, reason)),
        None => Err(ctx.protocol("internal: the blob has not ended")),
    }
}

/// The upload's error for a blob its writer abandoned with `reason`.
fn abandoned(ctx: &Ctx, reason: &str) -> Error {
    ctx.err(ErrorKind::Invalid(not_completed(reason)))
}

/// Why a blob its writer abandoned with `reason` cannot be uploaded.
fn not_completed(reason: &str) -> String {
    format!("the blob was not completed: {reason}")
}
