//! Decoding a blob on a second thread while the applier works.
//!
//! Reading, decompressing and hashing a blob (both digests) costs about as
//! much CPU as the file-system calls the applier makes; done in line they
//! add up. [`spawn_decoder`] moves them onto a scoped thread that hands the
//! uncompressed tar stream to the applier in fixed-size chunks through a
//! bounded queue ([`DEPTH`] chunks of [`CHUNK`] bytes, so memory stays
//! bounded), and [`ChunkReader`] reads them back as a plain `Read`. Spent
//! chunks are sent back to be refilled, so the steady state allocates
//! nothing.

use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{Scope, ScopedJoinHandle};

use kiln_oci::Hasher;

use crate::error::{Error, Result};
use crate::mapped::MappedBlob;
use crate::prefetch;
use crate::read::{DecodedLayer, Expected, Measured, verify};
use crate::threads::spawn_named;

/// Bytes per chunk handed over.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight at most (queued plus the one being read).
const DEPTH: usize = 8;
/// Bytes of a mapped blob hashed between prefetches, and how far ahead
/// those run (the best of the sizes measured, see [`crate::prefetch`]).
const HASH_STEP: usize = 1 << 10;
const HASH_AHEAD: usize = 4 << 10;

/// The applier's end: the decoded tar stream, chunk by chunk.
pub(crate) struct ChunkReader {
    full: Receiver<io::Result<Vec<u8>>>,
    empty: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl ChunkReader {
    fn new(full: Receiver<io::Result<Vec<u8>>>, empty: SyncSender<Vec<u8>>) -> ChunkReader {
        ChunkReader {
            full,
            empty,
            current: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            let next = match self.full.recv() {
                Ok(chunk) => chunk?,
                // the decoder is done (or gone): end of stream
                Err(_) => return Ok(0),
            };
            let spent = std::mem::replace(&mut self.current, next);
            self.pos = 0;
            // the decoder may have stopped already: then the chunk is simply dropped
            let _ = self.empty.try_send(spent);
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Starts decoding `layer` on a thread of `scope`. The thread reads the
/// whole blob, then verifies it ([`DecodedLayer::finish`]) and returns
/// `Some` of that. It returns `None` when it stopped early: the
/// [`ChunkReader`] was dropped (the applier failed) or reading failed (the
/// error went to the applier as the stream's error); either way the
/// applier's error is the one to report.
pub(crate) fn spawn_decoder<'scope, R: Read + Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    mut layer: DecodedLayer<R>,
) -> (
    ChunkReader,
    ScopedJoinHandle<'scope, Option<Result<Measured>>>,
) {
    let (full_tx, full_rx) = sync_channel::<io::Result<Vec<u8>>>(DEPTH - 1);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(DEPTH);
    let handle = spawn_named(scope, "kiln-layer-decode", move || {
        if pump(&mut layer, &full_tx, &empty_rx) {
            drop(full_tx);
            Some(layer.finish())
        } else {
            None
        }
    });
    (ChunkReader::new(full_rx, empty_tx), handle)
}

/// Starts reading a plain (uncompressed) `blob` for the applier on two
/// threads of `scope`: one reads it in chunks, the other hashes each chunk
/// on its way (a plain blob's digest is its diff_id) and at the end checks
/// the blob against `expected`. Hashing is then neither on the reading
/// thread nor on the applier's; still, each byte is copied twice before
/// `write(2)` (0.83-0.90x of `tar -x` on tmpfs), which is why a blob stored
/// in a file goes through [`spawn_mapped_hasher`] instead. The returned
/// handle behaves as [`spawn_decoder`]'s.
pub(crate) fn spawn_plain<'scope, R: Read + Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    mut blob: R,
    name: &'scope str,
    expected: Expected,
) -> (
    ChunkReader,
    ScopedJoinHandle<'scope, Option<Result<Measured>>>,
) {
    let (read_tx, read_rx) = sync_channel::<io::Result<Vec<u8>>>(DEPTH / 2);
    let (full_tx, full_rx) = sync_channel::<io::Result<Vec<u8>>>(DEPTH / 2);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(DEPTH);
    spawn_named(scope, "kiln-layer-read", move || {
        pump(&mut blob, &read_tx, &empty_rx);
    });
    let handle = spawn_named(scope, "kiln-layer-hash", move || {
        let mut hasher = Hasher::sha256();
        let mut size = 0u64;
        for chunk in &read_rx {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = full_tx.send(Err(e));
                    return None;
                }
            };
            hasher.update(&chunk);
            size += chunk.len() as u64;
            if full_tx.send(Ok(chunk)).is_err() {
                return None; // the applier stopped
            }
        }
        let measured = Measured::plain(hasher.finish(), size);
        Some(verify(name, &expected, measured))
    });
    (ChunkReader::new(full_rx, empty_tx), handle)
}

/// Starts hashing the first `len` bytes of a plain blob stored in `file` on
/// a thread of `scope`, through its own mappings ([`MappedBlob`]), while
/// the applier reads the same bytes through others; at the end the blob is
/// checked against `expected`. Returns `None` when `stop` was raised (the
/// applier failed) before the end.
pub(crate) fn spawn_mapped_hasher<'scope>(
    scope: &'scope Scope<'scope, '_>,
    file: &'scope File,
    len: u64,
    name: &'scope str,
    expected: Expected,
    stop: &'scope AtomicBool,
) -> ScopedJoinHandle<'scope, Option<Result<Measured>>> {
    spawn_named(scope, "kiln-layer-hash", move || {
        let blob = MappedBlob::new(file, len);
        let mut hasher = Hasher::sha256();
        let mut at = 0;
        while at < len {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let end = (at + CHUNK as u64).min(len);
            // the page cache read in place: SHA-256 needs the prefetches
            let hashed = blob.for_each_slice(at, end, |bytes| {
                prefetch::walk(bytes, HASH_STEP, HASH_AHEAD, |piece| {
                    hasher.update(piece);
                    Ok(())
                })
            });
            if let Err(e) = hashed {
                return Some(Err(Error::reading(name)(e)));
            }
            at = end;
        }
        let measured = Measured::plain(hasher.finish(), len);
        Some(verify(name, &expected, measured))
    })
}

/// Reads `source` chunk by chunk into `full`, refilling spent chunks from
/// `empty`. Returns true at the end of `source`, false when the receiving
/// side is gone or reading failed (the error was sent on, for the applier
/// to report as a read error of the blob).
fn pump(
    source: &mut impl Read,
    full: &SyncSender<io::Result<Vec<u8>>>,
    empty: &Receiver<Vec<u8>>,
) -> bool {
    loop {
        let mut chunk = empty.try_recv().unwrap_or_default();
        chunk.resize(CHUNK, 0);
        match fill(source, &mut chunk) {
            Ok(0) => return true,
            Ok(n) => {
                chunk.truncate(n);
                if full.send(Ok(chunk)).is_err() {
                    return false;
                }
            }
            Err(e) => {
                let _ = full.send(Err(e));
                return false;
            }
        }
    }
}

/// Reads until `chunk` is full or the stream ends; returns the bytes read.
fn fill(layer: &mut impl Read, chunk: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < chunk.len() {
        match layer.read(&mut chunk[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
