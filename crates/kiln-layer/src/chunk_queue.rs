//! A bounded queue of byte chunks from one thread to another.
//!
//! The encoder ([`crate::encode`]) runs as three stages on their own
//! threads: the tar writer, the compressor, and the blob writer. Between two
//! stages is a queue of at most [`DEPTH`] chunks of [`CHUNK`] bytes, so
//! memory stays bounded and a stage that waits (a file read, a write that
//! blocks on the disk) does not stall the compressor's workers.
//!
//! The sending end is also a [`TarSink`]: file contents are read straight
//! into the chunk being filled. The receiving end can hash what it drains:
//! it reads each chunk anyway to pass it on, so the hash finds it in cache.
//! Spent chunks go back to the sender to be refilled, so the steady state
//! allocates nothing.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use kiln_oci::{Digest, Hasher};

use crate::tar_writer::{CopyError, TarSink};

/// Bytes per chunk.
const CHUNK: usize = 1 << 20;
/// Chunks queued at most.
const DEPTH: usize = 4;

/// A new queue: its sending and receiving ends.
pub(crate) fn chunk_queue() -> (ChunkSender, ChunkReceiver) {
    let (full_tx, full_rx) = sync_channel::<Vec<u8>>(DEPTH);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(DEPTH + 1);
    let sender = ChunkSender {
        full: full_tx,
        empty: empty_rx,
        current: vec![0; CHUNK],
        filled: 0,
    };
    let receiver = ChunkReceiver {
        full: full_rx,
        empty: empty_tx,
    };
    (sender, receiver)
}

/// The sending end: a `Write` that fills a chunk and sends it when full.
/// A write fails with `BrokenPipe` once the receiving end is gone.
pub(crate) struct ChunkSender {
    full: SyncSender<Vec<u8>>,
    empty: Receiver<Vec<u8>>,
    /// Always `CHUNK` bytes long; `filled` of them are data.
    current: Vec<u8>,
    filled: usize,
}

impl ChunkSender {
    /// Sends what is left; the receiver's drain then ends.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.send()
    }

    /// Sends the current chunk if it holds anything.
    fn send(&mut self) -> io::Result<()> {
        if self.filled == 0 {
            return Ok(());
        }
        self.current.truncate(self.filled);
        let mut next = self.empty.try_recv().unwrap_or_else(|_| vec![0; CHUNK]);
        // recycled chunks come back full length: this is a no-op for them
        next.resize(CHUNK, 0);
        let full = std::mem::replace(&mut self.current, next);
        self.filled = 0;
        self.full
            .send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the next stage stopped"))
    }

    /// Sends the current chunk if it is full.
    fn send_if_full(&mut self) -> io::Result<()> {
        if self.filled == CHUNK {
            self.send()?;
        }
        Ok(())
    }
}

impl Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK - self.filled);
        self.current[self.filled..self.filled + n].copy_from_slice(&buf[..n]);
        self.filled += n;
        self.send_if_full()?;
        Ok(n)
    }

    /// Does nothing: chunks go when full or at [`ChunkSender::finish`], so
    /// that a flush by a writer above does not make small chunks.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TarSink for ChunkSender {
    fn read_file(&mut self, file: &mut File, max: usize) -> Result<usize, CopyError> {
        let end = CHUNK.min(self.filled.saturating_add(max));
        let n = file
            .read(&mut self.current[self.filled..end])
            .map_err(CopyError::Read)?;
        self.filled += n;
        self.send_if_full().map_err(CopyError::Write)?;
        Ok(n)
    }
}

/// The receiving end.
pub(crate) struct ChunkReceiver {
    full: Receiver<Vec<u8>>,
    empty: SyncSender<Vec<u8>>,
}

impl ChunkReceiver {
    /// Writes every chunk into `out` until the sender is finished or gone;
    /// returns the sha256 and size of what was written. On an error of
    /// `out` the receiver is dropped, so the sender's next write fails.
    pub(crate) fn drain_hashed_into<W: Write + ?Sized>(
        self,
        out: &mut W,
    ) -> io::Result<(Digest, u64)> {
        let mut hasher = Hasher::sha256();
        let mut size = 0u64;
        for chunk in &self.full {
            out.write_all(&chunk)?;
            // just read by the write above: still in cache
            hasher.update(&chunk);
            size += chunk.len() as u64;
            // the sender may be done already: then the chunk is dropped
            let _ = self.empty.try_send(chunk);
        }
        Ok((hasher.finish(), size))
    }
}
