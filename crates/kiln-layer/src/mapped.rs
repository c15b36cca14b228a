//! Reading a stored blob through read-only memory mappings, one window at a
//! time.
//!
//! Applying a plain (uncompressed) layer hashes every byte of the blob (its
//! digest is verified) and writes most of them into files. Through `read(2)`
//! each byte would first be copied out of the page cache, once for the
//! hasher and once more for the applier; through a mapping the hasher reads
//! the page cache in place and the applier hands file contents to `write(2)`
//! straight from it, one copy in all, as many as `tar -x` makes.
//!
//! A [`MappedBlob`] maps [`WINDOW`] bytes at a time (populated in one call)
//! and unmaps them when it moves on, so resident memory stays bounded
//! whatever the blob size. A mapped file that someone else truncates
//! meanwhile would raise `SIGBUS`: mappings are only used for files the
//! caller vouches are not truncated while they are read (see
//! [`crate::apply_layer_file`]).

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

/// Bytes mapped at a time (a multiple of any page size).
const WINDOW: u64 = 4 << 20;

/// One mapped, read-only range of a file.
struct Window {
    /// File offset of the first byte.
    offset: u64,
    ptr: NonNull<u8>,
    len: usize,
}

impl Window {
    /// Maps `len` (> 0) bytes of `file` from `offset` (a multiple of the
    /// page size).
    fn map(file: &File, offset: u64, len: usize) -> io::Result<Window> {
        let file_offset = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset out of range"))?;
        // SAFETY: a fresh shared read-only mapping of a valid descriptor; the
        // kernel picks the address, and nothing else aliases it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                file.as_raw_fd(),
                file_offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap at 0"))?;
        Ok(Window { offset, ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the range `map` mapped, once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The first `len` bytes of a file, mapped window by window. `&MappedBlob`
/// is a `Read + Seek` stream (what the tar parser reads headers from);
/// [`MappedBlob::for_each_slice`] lends any range in place.
pub(crate) struct MappedBlob<'f> {
    file: &'f File,
    len: u64,
    /// Stream position of `Read` and `Seek`.
    position: Cell<u64>,
    window: RefCell<Option<Window>>,
}

impl<'f> MappedBlob<'f> {
    /// The first `len` bytes of `file` (its size when looked at).
    pub(crate) fn new(file: &'f File, len: u64) -> MappedBlob<'f> {
        MappedBlob {
            file,
            len,
            position: Cell::new(0),
            window: RefCell::new(None),
        }
    }

    /// Bytes in the blob.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Maps the first window: whether the file can be mapped at all (some
    /// file systems cannot). Needs a length above 0.
    pub(crate) fn probe(&self) -> io::Result<()> {
        self.with_window(0, |_| ())
    }

    /// Calls `f` with the bytes from `at` (< len) to the end of the window
    /// holding them, mapping that window first if needed. Returns what `f`
    /// returns.
    fn with_window<T>(&self, at: u64, f: impl FnOnce(&[u8]) -> T) -> io::Result<T> {
        let mut window = self.window.borrow_mut();
        let offset = at - at % WINDOW;
        if window.as_ref().is_none_or(|w| w.offset != offset) {
            // unmap before mapping the next window: one window at a time
            *window = None;
            let len =
                usize::try_from((self.len - offset).min(WINDOW)).expect("a window fits in memory");
            *window = Some(Window::map(self.file, offset, len)?);
        }
        let window = window.as_ref().expect("window just mapped");
        let start = usize::try_from(at - offset).expect("inside the window");
        Ok(f(&window.bytes()[start..]))
    }

    /// Calls `f` with the bytes from `start` to `end` (at most the length)
    /// in order, a window's worth at most at a time; stops at `f`'s first
    /// error.
    pub(crate) fn for_each_slice(
        &self,
        start: u64,
        end: u64,
        mut f: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let end = end.min(self.len);
        let mut at = start;
        while at < end {
            let n = self.with_window(at, |bytes| {
                let n = bytes
                    .len()
                    .min(usize::try_from(end - at).unwrap_or(usize::MAX));
                f(&bytes[..n]).map(|()| n)
            })??;
            at += n as u64;
        }
        Ok(())
    }
}

impl Read for &MappedBlob<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let at = self.position.get();
        if at >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let n = self.with_window(at, |bytes| {
            let n = buf.len().min(bytes.len());
            buf[..n].copy_from_slice(&bytes[..n]);
            n
        })?;
        self.position.set(at + n as u64);
        Ok(n)
    }
}

impl Seek for &MappedBlob<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let (base, delta) = match to {
            SeekFrom::Start(n) => (0, i128::from(n)),
            SeekFrom::Current(d) => (self.position.get(), i128::from(d)),
            SeekFrom::End(d) => (self.len, i128::from(d)),
        };
        let position = u64::try_from(i128::from(base) + delta)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.position.set(position);
        Ok(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(bytes: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    fn pattern(len: u64) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn reads_across_windows_exactly_what_the_file_holds() {
        let bytes = pattern(WINDOW * 2 + 12345);
        let file = file_of(&bytes);
        let blob = MappedBlob::new(&file, bytes.len() as u64);
        let mut read = Vec::new();
        (&blob).read_to_end(&mut read).unwrap();
        assert_eq!(read, bytes);

        let mut slices = Vec::new();
        blob.for_each_slice(5, blob.len(), |s| {
            slices.push(s.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(slices.len(), 3, "one slice per window touched");
        assert_eq!(slices.concat(), bytes[5..]);
    }

    #[test]
    fn seeks_and_lends_ranges_anywhere() {
        let bytes = pattern(WINDOW + 1000);
        let file = file_of(&bytes);
        let blob = MappedBlob::new(&file, bytes.len() as u64);
        let mut reader = &blob;
        let start = WINDOW - 3;
        reader.seek(SeekFrom::Start(start)).unwrap();
        let mut six = [0u8; 6];
        reader.read_exact(&mut six).unwrap();
        assert_eq!(six, bytes[start as usize..start as usize + 6]);
        assert_eq!(reader.seek(SeekFrom::Current(-6)).unwrap(), start);
        assert!(reader.seek(SeekFrom::Current(-(WINDOW as i64))).is_err());
        assert_eq!(reader.seek(SeekFrom::End(0)).unwrap(), blob.len());
        assert_eq!(reader.read(&mut six).unwrap(), 0, "nothing after the end");

        let mut lent = Vec::new();
        blob.for_each_slice(start, start + 10, |s| {
            lent.extend_from_slice(s);
            Ok(())
        })
        .unwrap();
        assert_eq!(lent, bytes[start as usize..start as usize + 10]);
    }

    #[test]
    fn stops_at_the_length_given_and_at_the_first_error() {
        let file = file_of(&[1u8; 100]);
        let blob = MappedBlob::new(&file, 40);
        let mut read = Vec::new();
        (&blob).read_to_end(&mut read).unwrap();
        assert_eq!(read, vec![1u8; 40]);

        let mut seen = 0;
        blob.for_each_slice(0, 100, |s| {
            seen += s.len();
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, 40);
        let err = blob
            .for_each_slice(0, 40, |_| Err(io::Error::other("sink full")))
            .unwrap_err();
        assert_eq!(err.to_string(), "sink full");
    }
}
