//! Encoding a change set into a layer and applying it onto a root from one
//! read of its sources (a COPY whose files a later step needs on disk).
//!
//! ```text
//! [tar thread]    entries -> tar writer --queue--> compressor, blob writer (encode.rs)
//!                                       --pipe---> [apply thread] apply_tar onto the root
//! ```
//!
//! The tar thread reads every source file once; each piece of the tar stream
//! goes to the encoder's queue and to a pipe (enlarged to 1 MiB where the
//! kernel allows) that a thread of its own applies with [`apply_tar`], the
//! root-confined applier [`crate::apply_entries`] uses. The root thus gets
//! exactly the layer's members (mtimes clamped as the layer's), and the layer
//! the same bytes as [`crate::encode_layer`] gives. Memory is the queues' and
//! the pipe's, whatever the size of the change set.
//!
//! A failure on either side stops the other: the applier's end of the pipe
//! closes (the tar thread's next write fails) or the tar stream ends early
//! (the applier fails). The error returned is the cause: a source that could
//! not be read, else the applier's, else the encoder's.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::apply::{ApplyOptions, ApplyStats, apply_tar};
use crate::encode::{EncodeOptions, EncodedLayer, encode_layer_teed};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::tar_writer::{CopyError, TarSink};

/// The pipe's size asked of the kernel (`F_SETPIPE_SZ`; the default is 64 KiB).
const PIPE_SIZE: libc::c_int = 1 << 20;
/// Bytes of a source file read at once into the tee's buffer.
const READ_CHUNK: usize = 256 << 10;

/// Writes `entries` as a layer blob into `sink` (as [`crate::encode_layer`])
/// and applies the same tar stream onto `root` (as [`crate::apply_entries`]),
/// reading every source file once, the two sides on threads of their own.
pub fn encode_layer_applying<W: Write + Send>(
    entries: Vec<Entry>,
    options: &EncodeOptions,
    sink: W,
    root: &Path,
    apply: &ApplyOptions,
) -> Result<(EncodedLayer, W, ApplyStats)> {
    let (reader, writer) = io::pipe().map_err(|source| Error::Io {
        action: "creating a pipe to apply a change set onto",
        path: root.to_owned(),
        source,
    })?;
    // SAFETY: fcntl on a pipe descriptor this function owns; a refusal
    // (e.g. above /proc/sys/fs/pipe-max-size) only keeps the default size.
    unsafe {
        libc::fcntl(writer.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE);
    }
    std::thread::scope(|scope| {
        let applier = std::thread::Builder::new()
            .name("kiln-layer-apply".into())
            .spawn_scoped(scope, move || apply_tar(reader, "change set", root, apply))
            .map_err(|source| Error::Io {
                action: "starting the thread applying a change set onto",
                path: root.to_owned(),
                source,
            })?;
        let mut writer = writer;
        let encoded = encode_layer_teed(entries, options, sink, Some(&mut writer));
        drop(writer);
        let applied = applier
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        match (encoded, applied) {
            (Ok((layer, sink)), Ok(stats)) => Ok((layer, sink, stats)),
            // a source file could not be read: that is the cause, not the
            // truncated stream the applier then saw
            (Err(e), _) if !matches!(e, Error::Sink(_)) => Err(e),
            (_, Err(e)) => Err(e),
            (Err(e), Ok(_)) => Err(e),
        }
    })
}

/// A `Write` that writes everything to `a`, then to `b`.
pub(crate) struct TeeWriter<'a, A: Write> {
    pub a: &'a mut A,
    pub b: &'a mut (dyn Write + Send),
}

impl<A: Write> Write for TeeWriter<'_, A> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.a.write_all(data)?;
        self.b.write_all(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.a.flush()?;
        self.b.flush()
    }
}

/// A [`TarSink`] that also writes every byte to `tee`: file contents are
/// read once into a buffer and written to both.
pub(crate) struct TeeSink<'a, S: TarSink> {
    inner: &'a mut S,
    tee: &'a mut (dyn Write + Send),
    buf: Vec<u8>,
}

impl<'a, S: TarSink> TeeSink<'a, S> {
    pub fn new(inner: &'a mut S, tee: &'a mut (dyn Write + Send)) -> TeeSink<'a, S> {
        TeeSink {
            inner,
            tee,
            buf: vec![0u8; READ_CHUNK],
        }
    }
}

impl<S: TarSink> Write for TeeSink<'_, S> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.inner.write_all(data)?;
        self.tee.write_all(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()?;
        self.tee.flush()
    }
}

impl<S: TarSink> TarSink for TeeSink<'_, S> {
    fn read_file(&mut self, file: &mut File, max: usize) -> std::result::Result<usize, CopyError> {
        let want = self.buf.len().min(max);
        let n = file.read(&mut self.buf[..want]).map_err(CopyError::Read)?;
        self.inner
            .write_all(&self.buf[..n])
            .map_err(CopyError::Write)?;
        self.tee
            .write_all(&self.buf[..n])
            .map_err(CopyError::Write)?;
        Ok(n)
    }
}
