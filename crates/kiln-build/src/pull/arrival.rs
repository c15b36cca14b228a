//! A blob on its way into the store, readable while it arrives.
//!
//! The download writes a partial file next to `blobs/sha256/HEX` (kiln-registry's
//! [`kiln_registry::WriteWatch`] says which and how far) and renames it to `HEX` once
//! its size and digest are verified. An [`ArrivalReader`] follows the file:
//! it reads what the current attempt has written, waits (on a condition
//! variable, no polling) for more, and reports end of file only when the
//! download has finished *and verified* the blob; a failed download is an
//! I/O error carrying the download's message (registry, repository,
//! digest). Only memory for one read buffer is used; the bytes go through
//! the page cache, written once by the download and read back by the
//! applier.
//!
//! A retried download writes a new partial file from 0; the reader switches
//! to it and never reads past what the current attempt has written. If a retry
//! served other bytes than the first attempt, what the reader returned no
//! longer matches the blob, and the applier's own digest check (which hashes
//! exactly the bytes it applied) fails the layer.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

use kiln_registry::WriteWatch;

/// Where the download of one blob stands.
#[derive(Debug, Default)]
struct State {
    /// The partial file the current attempt writes, once it has created it.
    partial: Option<PathBuf>,
    /// Bytes the current attempt has written.
    written: u64,
    /// `Some` when the download is over: verified and in place, or its error.
    outcome: Option<Result<(), String>>,
}

/// One blob being downloaded into the store.
#[derive(Debug)]
pub struct Arrival {
    /// `HEX`, where the verified blob ends up.
    stored: PathBuf,
    state: Mutex<State>,
    changed: Condvar,
}

impl Arrival {
    pub fn new(stored: PathBuf) -> Arc<Arrival> {
        Arc::new(Arrival {
            stored,
            state: Mutex::default(),
            changed: Condvar::new(),
        })
    }

    /// The watch to give the download.
    pub fn watch(self: &Arc<Arrival>) -> WriteWatch {
        let arrival = self.clone();
        WriteWatch::new(move |partial, written| {
            arrival.update(|s| {
                if s.partial.as_deref() != Some(partial) {
                    s.partial = Some(partial.to_path_buf());
                }
                s.written = written;
            })
        })
    }

    /// The download is over (its result, with the error's full text).
    pub fn finish(&self, outcome: Result<(), String>) {
        self.update(|s| s.outcome = Some(outcome));
    }

    /// Ends a download that was cancelled before it finished, so that no reader
    /// (another stage sharing the blob) waits for it forever.
    pub fn cancel(&self, why: &str) {
        self.update(|s| {
            if s.outcome.is_none() {
                s.outcome = Some(Err(why.to_owned()));
            }
        });
    }

    /// The partial file of the current attempt, if one was created.
    pub fn partial(&self) -> Option<PathBuf> {
        self.lock().partial.clone()
    }

    /// Whether the download finished and the blob is in place.
    pub fn is_stored(&self) -> bool {
        matches!(self.lock().outcome, Some(Ok(())))
    }

    /// Waits until the download is over; its error, if it failed. A layer that
    /// failed to apply reports this rather than what the applier saw of the
    /// corrupt bytes (a deflate error, say): it names registry, repository and
    /// digest, and says why.
    pub fn wait_failure(&self) -> Option<String> {
        let mut state = self.lock();
        loop {
            match &state.outcome {
                Some(outcome) => return outcome.as_ref().err().cloned(),
                None => {
                    state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }

    /// A reader of the blob from its first byte.
    pub fn reader(self: &Arc<Arrival>) -> ArrivalReader {
        ArrivalReader {
            arrival: self.clone(),
            file: None,
            opened: None,
            pos: 0,
        }
    }

    /// Waits until the download names another partial file than `seen` or is
    /// over (a failed attempt's file is gone before the retry names its own).
    fn wait_past(&self, seen: Option<&std::path::Path>) {
        let mut state = self.lock();
        while state.outcome.is_none() && state.partial.as_deref() == seen {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }
}

/// Reads a blob as it arrives; see the module documentation.
pub struct ArrivalReader {
    arrival: Arc<Arrival>,
    file: Option<std::fs::File>,
    /// The partial file `file` was opened as (`None`: the stored blob).
    opened: Option<PathBuf>,
    pos: u64,
}

impl ArrivalReader {
    /// Waits until there is something to read (how much, at most, and in which
    /// attempt's file), or the download is over: `u64::MAX` when the blob is
    /// complete and verified (read to the file's end), its error when it failed.
    fn readable(&self) -> io::Result<(u64, Option<PathBuf>)> {
        let arrival = &self.arrival;
        let mut state = arrival.lock();
        loop {
            match &state.outcome {
                Some(Err(e)) => return Err(io::Error::other(e.clone())),
                Some(Ok(())) => return Ok((u64::MAX, state.partial.clone())),
                None if state.partial.is_some() && state.written > self.pos => {
                    return Ok((state.written - self.pos, state.partial.clone()));
                }
                None => {
                    state = arrival
                        .changed
                        .wait(state)
                        .unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }

    /// Opens the blob: the current attempt's partial file while the download
    /// runs, the stored one after (the rename keeps an open descriptor valid).
    /// A retry's new file replaces the one opened before. `None` when the
    /// partial file is gone and no blob is stored: that attempt failed and
    /// removed its file, and a retry (or the outcome) is yet to be announced.
    fn open(&mut self, current: Option<PathBuf>) -> io::Result<Option<&std::fs::File>> {
        if self.file.is_none() || self.opened != current {
            let stored = &self.arrival.stored;
            let open_stored = || {
                std::fs::File::open(stored).map_err(|e| {
                    io::Error::new(e.kind(), format!("opening {}: {e}", stored.display()))
                })
            };
            let Some(partial) = &current else {
                let file = open_stored()?;
                self.opened = None;
                return Ok(Some(self.file.insert(file)));
            };
            let file = match std::fs::File::open(partial) {
                Ok(f) => f,
                // renamed meanwhile (the download finished), or removed by a
                // failed attempt (a retry will announce its own file)
                Err(e) if e.kind() == io::ErrorKind::NotFound => match open_stored() {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                },
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("opening {}: {e}", partial.display()),
                    ));
                }
            };
            self.file = Some(file);
            self.opened = current;
        }
        Ok(self.file.as_ref())
    }
}

impl io::Read for ArrivalReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let (limit, current) = self.readable()?;
            let want = buf.len().min(usize::try_from(limit).unwrap_or(usize::MAX));
            let pos = self.pos;
            let Some(file) = self.open(current.clone())? else {
                self.arrival.wait_past(current.as_deref());
                continue;
            };
            let n = file.read_at(&mut buf[..want], pos)?;
            if n > 0 {
                self.pos += n as u64;
                return Ok(n);
            }
            if self.arrival.is_stored() {
                return Ok(0);
            }
            // a retry started a new file after `readable` looked: look again
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A reader started before the file exists gets every byte, in order, as
    /// they are written, and the end only once the download is verified.
    #[test]
    fn follows_a_growing_file_and_ends_when_verified() {
        let dir = tempfile::tempdir().unwrap();
        let arrival = Arrival::new(dir.path().join("blob"));
        let watch = arrival.watch();
        let mut reader = arrival.reader();
        let partial = dir.path().join("blob.1-0.partial");
        let stored = arrival.stored.clone();
        let writer_side = arrival.clone();
        let writer = std::thread::spawn(move || {
            let mut file = std::fs::File::create(&partial).unwrap();
            watch.tell(&partial, 0);
            let mut written = 0;
            for i in 0..50u8 {
                file.write_all(&[i; 1000]).unwrap();
                written += 1000;
                watch.tell(&partial, written);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            std::fs::rename(&partial, &stored).unwrap();
            writer_side.finish(Ok(()));
        });
        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        let want: Vec<u8> = (0..50u8).flat_map(|i| [i; 1000]).collect();
        assert_eq!(got, want);
    }

    /// A failed attempt removes its partial file before the retry names its
    /// own: a reader that had not opened the first file yet waits for the retry
    /// rather than taking the missing file for a missing blob.
    #[test]
    fn a_reader_waits_for_the_retry_when_the_failed_attempt_s_file_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let arrival = Arrival::new(dir.path().join("blob"));
        let watch = arrival.watch();
        let first = dir.path().join("blob.1-0.partial");
        std::fs::write(&first, b"abc").unwrap();
        watch.tell(&first, 3);
        std::fs::remove_file(&first).unwrap();
        let mut reader = arrival.reader();
        let (second, stored) = (dir.path().join("blob.1-1.partial"), arrival.stored.clone());
        let writer_side = arrival.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            std::fs::write(&second, b"abcdef").unwrap();
            watch.tell(&second, 6);
            std::fs::rename(&second, &stored).unwrap();
            writer_side.finish(Ok(()));
        });
        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(got, b"abcdef");
    }

    #[test]
    fn a_failed_download_is_a_read_error_with_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let arrival = Arrival::new(dir.path().join("blob"));
        let partial = dir.path().join("blob.1-0.partial");
        std::fs::write(&partial, b"abc").unwrap();
        arrival.watch().tell(&partial, 3);
        arrival.finish(Err(
            "pulling blob sha256:x from r/repo: digest mismatch".into()
        ));
        let mut got = Vec::new();
        let err = arrival.reader().read_to_end(&mut got).unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
    }
}
