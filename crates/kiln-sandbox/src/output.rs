//! Streams the command's stdout and stderr pipes to an [`OutputSink`], line by line, as the
//! bytes arrive (poll on both pipes; order is exact within a stream).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::spec::{OutputSink, Stream};

/// Longest line delivered in one piece; longer lines arrive in pieces of this size.
pub(crate) const MAX_LINE: usize = 64 * 1024;

struct LineBuffer {
    stream: Stream,
    pending: Vec<u8>,
}

impl LineBuffer {
    fn push(&mut self, mut data: &[u8], sink: &mut dyn OutputSink) {
        while let Some(pos) = data.iter().position(|&b| b == b'\n') {
            self.pending.extend_from_slice(&data[..pos]);
            sink.line(self.stream, &self.pending);
            self.pending.clear();
            data = &data[pos + 1..];
        }
        self.pending.extend_from_slice(data);
        while self.pending.len() >= MAX_LINE {
            let rest = self.pending.split_off(MAX_LINE);
            sink.line(self.stream, &self.pending);
            self.pending = rest;
        }
    }

    fn finish(&mut self, sink: &mut dyn OutputSink) {
        if !self.pending.is_empty() {
            sink.line(self.stream, &self.pending);
            self.pending.clear();
        }
    }
}

/// Reads both pipes until both reach end of file (every writer gone).
pub(crate) fn pump(stdout: OwnedFd, stderr: OwnedFd, sink: &mut dyn OutputSink) -> io::Result<()> {
    let mut fds = [
        (
            Some(stdout),
            LineBuffer {
                stream: Stream::Stdout,
                pending: Vec::new(),
            },
        ),
        (
            Some(stderr),
            LineBuffer {
                stream: Stream::Stderr,
                pending: Vec::new(),
            },
        ),
    ];
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut pollfds: Vec<libc::pollfd> = Vec::with_capacity(2);
        let mut which = Vec::with_capacity(2);
        for (i, (fd, _)) in fds.iter().enumerate() {
            if let Some(fd) = fd {
                pollfds.push(libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                which.push(i);
            }
        }
        if pollfds.is_empty() {
            return Ok(());
        }
        // SAFETY: a valid array of pollfd.
        let rc = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, -1) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for (pfd, &i) in pollfds.iter().zip(&which) {
            if pfd.revents == 0 {
                continue;
            }
            let (fd_slot, lines) = &mut fds[i];
            let Some(fd) = fd_slot.as_ref() else { continue };
            // SAFETY: reading into a buffer we own.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                lines.finish(sink);
                *fd_slot = None;
            } else {
                lines.push(&buf[..n as usize], sink);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_the_tail_is_flushed() {
        let mut got: Vec<(Stream, Vec<u8>)> = Vec::new();
        let mut sink = |s: Stream, l: &[u8]| got.push((s, l.to_vec()));
        let mut lb = LineBuffer {
            stream: Stream::Stderr,
            pending: Vec::new(),
        };
        lb.push(b"a\nb", &mut sink);
        lb.push(b"c\n\nd", &mut sink);
        lb.finish(&mut sink);
        let lines: Vec<&[u8]> = got.iter().map(|(_, l)| l.as_slice()).collect();
        assert_eq!(lines, vec![b"a".as_slice(), b"bc", b"", b"d"]);
        assert!(got.iter().all(|(s, _)| *s == Stream::Stderr));
    }

    #[test]
    fn long_lines_come_in_pieces() {
        let mut sizes = Vec::new();
        let mut sink = |_: Stream, l: &[u8]| sizes.push(l.len());
        let mut lb = LineBuffer {
            stream: Stream::Stdout,
            pending: Vec::new(),
        };
        lb.push(&vec![b'x'; MAX_LINE * 2 + 5], &mut sink);
        lb.push(b"\n", &mut sink);
        assert_eq!(sizes, vec![MAX_LINE, MAX_LINE, 5]);
    }
}
