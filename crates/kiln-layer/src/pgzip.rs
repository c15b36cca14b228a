//! Parallel gzip, pigz's way.
//!
//! The uncompressed stream is cut into fixed-size blocks. Each block is
//! deflated on a worker thread with the last 32 KiB of the previous block as
//! preset dictionary and ends with a sync flush (so it ends on a byte
//! boundary); the last block ends the deflate stream. The compressed blocks
//! are concatenated in order behind one gzip header, followed by the CRC-32
//! (combined from per-block CRCs) and ISIZE: a single ordinary gzip member
//! that `gzip -d`, Go's `compress/gzip` and every other inflater read.
//!
//! The output depends only on the data, the level and the block size, never
//! on the number of threads (one thread runs the very same algorithm), so
//! layers are reproducible across machines. Memory is bounded: at most
//! `2 * threads + 1` blocks (input plus output) are in flight.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Default block size: large enough that the per-block cost (dictionary
/// setup, sync marker) is negligible, small enough to keep memory low.
pub const DEFAULT_BLOCK_SIZE: usize = 512 * 1024;
const DICT_SIZE: usize = 32 * 1024;

/// gzip header: magic, CM=deflate, no flags, MTIME=0, XFL=0, OS=255 (unknown).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// A compressed block and the CRC-32 of its uncompressed bytes.
type BlockResult = io::Result<(Vec<u8>, Crc)>;

struct Job {
    data: Arc<Vec<u8>>,
    dict: Option<Arc<Vec<u8>>>,
    last: bool,
    reply: SyncSender<BlockResult>,
}

/// A `Write` that gzip-compresses into `inner` using worker threads.
/// Call [`ParallelGzEncoder::finish`] to complete the stream.
pub struct ParallelGzEncoder<W: Write> {
    inner: Option<W>,
    block_size: usize,
    current: Vec<u8>,
    previous: Option<Arc<Vec<u8>>>,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    pending: VecDeque<Receiver<BlockResult>>,
    max_pending: usize,
    crc: Crc,
    header_written: bool,
}

impl<W: Write> ParallelGzEncoder<W> {
    /// A new encoder at `level` (0-9) using `threads` worker threads (at
    /// least 1) and blocks of `block_size` bytes (at least 64 KiB).
    pub fn new(inner: W, level: u32, threads: usize, block_size: usize) -> Self {
        let threads = threads.max(1);
        let block_size = block_size.max(64 * 1024);
        let (tx, rx) = sync_channel::<Job>(threads);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let workers = (0..threads)
            .map(|i| {
                let rx = Arc::clone(&rx);
                std::thread::Builder::new()
                    .name(format!("kiln-gzip-{i}"))
                    .spawn(move || worker(rx, level))
                    .unwrap_or_else(|e| panic!("spawning a gzip worker thread: {e}"))
            })
            .collect();
        ParallelGzEncoder {
            inner: Some(inner),
            block_size,
            current: Vec::with_capacity(block_size),
            previous: None,
            jobs: Some(tx),
            workers,
            pending: VecDeque::new(),
            max_pending: 2 * threads,
            crc: Crc::new(),
            header_written: false,
        }
    }

    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        if !self.header_written {
            self.sink()?.write_all(&GZIP_HEADER)?;
            self.header_written = true;
        }
        while self.pending.len() >= self.max_pending {
            self.write_oldest()?;
        }
        let data = Arc::new(std::mem::replace(
            &mut self.current,
            if last {
                Vec::new()
            } else {
                Vec::with_capacity(self.block_size)
            },
        ));
        let (reply, result) = sync_channel(1);
        let job = Job {
            data: Arc::clone(&data),
            dict: self.previous.take(),
            last,
            reply,
        };
        self.previous = Some(data);
        self.jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("gzip encoder already finished"))?
            .send(job)
            .map_err(|_| io::Error::other("gzip worker threads stopped"))?;
        self.pending.push_back(result);
        Ok(())
    }

    fn sink(&mut self) -> io::Result<&mut W> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("gzip encoder already finished"))
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(rx) = self.pending.pop_front() else {
            return Ok(());
        };
        let (compressed, crc) = rx
            .recv()
            .map_err(|_| io::Error::other("gzip worker thread died"))??;
        self.crc.combine(&crc);
        self.sink()?.write_all(&compressed)
    }

    /// Compresses what is buffered, writes the trailer and returns the inner
    /// writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.sink()?.write_all(&trailer)?;
        self.sink()?.flush()?;
        self.shutdown();
        self.inner
            .take()
            .ok_or_else(|| io::Error::other("gzip encoder already finished"))
    }

    fn shutdown(&mut self) {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl<W: Write> Drop for ParallelGzEncoder<W> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl<W: Write> Write for ParallelGzEncoder<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let total = buf.len();
        while !buf.is_empty() {
            let room = self.block_size - self.current.len();
            let take = room.min(buf.len());
            self.current.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.current.len() == self.block_size {
                self.dispatch(false)?;
            }
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Blocks are fixed-size for determinism: nothing is forced out early.
        Ok(())
    }
}

fn worker(rx: Arc<std::sync::Mutex<Receiver<Job>>>, level: u32) {
    loop {
        let job = {
            let Ok(guard) = rx.lock() else { return };
            match guard.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let result = deflate_block(level, &job);
        let _ = job.reply.send(result);
    }
}

/// Deflates one block with a fresh compressor: reusing one through
/// `reset()` leaves match-finder state behind in zlib-rs, which made the
/// output depend on which worker had compressed what before.
fn deflate_block(level: u32, job: &Job) -> BlockResult {
    let mut compress = Compress::new(Compression::new(level), false);
    if let Some(dict) = &job.dict {
        let tail = &dict[dict.len().saturating_sub(DICT_SIZE)..];
        compress
            .set_dictionary(tail)
            .map_err(|e| io::Error::other(format!("setting deflate dictionary: {e}")))?;
    }
    let input = &job.data[..];
    let mut out = Vec::with_capacity(input.len() + input.len() / 16 + 1024);
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let start_in = compress.total_in();
    loop {
        let consumed = (compress.total_in() - start_in) as usize;
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(4096));
        }
        let status = compress
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(|e| io::Error::other(format!("deflate: {e}")))?;
        let consumed = (compress.total_in() - start_in) as usize;
        if consumed == input.len() {
            let done = if job.last {
                status == Status::StreamEnd
            } else {
                out.len() < out.capacity()
            };
            if done {
                break;
            }
        }
    }
    let mut crc = Crc::new();
    crc.update(input);
    Ok((out, crc))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// Pseudo-text: compressible, with matches that cross block boundaries.
    fn text(len: usize) -> Vec<u8> {
        let words: [&[u8]; 6] = [
            b"alpha ", b"beta ", b"gamma\n", b"delta ", b"layer ", b"image ",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut out = Vec::with_capacity(len + 32);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(words[(x % 6) as usize]);
            if x.is_multiple_of(7) {
                out.extend_from_slice(format!("{x:x}").as_bytes());
            }
        }
        out.truncate(len);
        out
    }

    fn encode(data: &[u8], threads: usize, block_size: usize) -> Vec<u8> {
        let mut enc = ParallelGzEncoder::new(Vec::new(), 6, threads, block_size);
        for chunk in data.chunks(100_000) {
            enc.write_all(chunk).unwrap();
        }
        enc.finish().unwrap()
    }

    #[test]
    fn output_is_identical_for_any_thread_count_and_inflates_back() {
        let data = text(6 << 20);
        let one = encode(&data, 1, 64 * 1024);
        for threads in [2, 3] {
            assert!(
                encode(&data, threads, 64 * 1024) == one,
                "{threads} threads differ from 1"
            );
        }
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&one[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data);
        assert!(one.len() < data.len() / 2);
    }

    #[test]
    fn empty_input_is_a_valid_gzip_stream() {
        let out = encode(&[], 2, DEFAULT_BLOCK_SIZE);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }
}
