//! The blocking side of an object download: a reader draining the bounded
//! channel the download thread fills, so the engine's tar unpacker reads the
//! object as it arrives.

use std::io::Read;
use std::sync::mpsc::Receiver;

use crate::ContextError;

/// Reads the chunks of one download, in order.
pub(super) struct ChannelReader {
    rx: Receiver<Result<bytes::Bytes, ContextError>>,
    current: bytes::Bytes,
    done: bool,
}

impl ChannelReader {
    /// Waits for the first chunk, so that a missing object or refused
    /// credentials are an error of opening, not an I/O error mid-archive.
    pub(super) fn start(
        rx: Receiver<Result<bytes::Bytes, ContextError>>,
    ) -> Result<ChannelReader, ContextError> {
        let mut reader = ChannelReader {
            rx,
            current: bytes::Bytes::new(),
            done: false,
        };
        match reader.rx.recv() {
            Ok(Ok(first)) => reader.current = first,
            Ok(Err(e)) => return Err(e),
            Err(_) => reader.done = true,
        }
        Ok(reader)
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => self.current = chunk,
                Ok(Err(e)) => return Err(std::io::Error::other(e.to_string())),
                Err(_) => self.done = true,
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.split_off(n);
        Ok(n)
    }
}
