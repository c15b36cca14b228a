//! GNU sparse files in PAX archives (`tar --format=posix -S`), which the
//! `tar` crate leaves undecoded.
//!
//! - Format 1.0 (`GNU.sparse.major=1`, `minor=0`): the member's data starts
//!   with a decimal map (`count\n` then `offset\n size\n` pairs), padded to
//!   512 bytes, followed by the data segments.
//! - Format 0.1: the map is the PAX record `GNU.sparse.map=off,size,...`.
//!
//! In both, the real name is `GNU.sparse.name` and the real size
//! `GNU.sparse.realsize` (1.0) or `GNU.sparse.size` (0.1). Format 0.0
//! (repeated `GNU.sparse.offset`/`numbytes` records) is refused. GNU's
//! old-style sparse members (type `S`, `--format=gnu`) are decoded by the
//! `tar` crate itself.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Most map entries accepted (each is two numbers): bounds memory on
/// hostile maps.
const MAX_SEGMENTS: u64 = 1 << 20;

/// What the PAX records of a member say about sparseness.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct PaxSparse {
    pub name: Option<Vec<u8>>,
    pub real_size: Option<u64>,
    pub major: Option<u64>,
    pub minor: Option<u64>,
    pub map: Option<Vec<u8>>,
    pub old_format: bool,
}

impl PaxSparse {
    /// Takes a PAX record if it is a sparse one; returns whether it was.
    pub fn record(&mut self, key: &[u8], value: &[u8]) -> bool {
        let number = || {
            std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
        };
        match key {
            b"GNU.sparse.name" => self.name = Some(value.to_vec()),
            b"GNU.sparse.realsize" | b"GNU.sparse.size" => self.real_size = number(),
            b"GNU.sparse.major" => self.major = number(),
            b"GNU.sparse.minor" => self.minor = number(),
            b"GNU.sparse.map" => self.map = Some(value.to_vec()),
            b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => self.old_format = true,
            b"GNU.sparse.numblocks" => {}
            _ => return false,
        }
        true
    }

    /// Whether the member is a PAX sparse file at all.
    pub fn is_sparse(&self) -> bool {
        self.major.is_some() || self.map.is_some() || self.old_format
    }

    /// The segment map, reading it from the data for format 1.0.
    pub fn segments(&self, data: &mut impl Read) -> io::Result<Vec<(u64, u64)>> {
        if self.old_format {
            return Err(invalid("GNU PAX sparse format 0.0 is not supported"));
        }
        match (self.major, self.minor, &self.map) {
            (Some(1), Some(0), _) => read_v1_map(data),
            (None | Some(0), None | Some(1), Some(map)) => parse_v01_map(map),
            _ => Err(invalid("unknown GNU PAX sparse format version")),
        }
    }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

fn pairs(numbers: Vec<u64>) -> io::Result<Vec<(u64, u64)>> {
    if !numbers.len().is_multiple_of(2) {
        return Err(invalid("sparse map has an odd number of values"));
    }
    Ok(numbers.chunks(2).map(|c| (c[0], c[1])).collect())
}

fn parse_v01_map(map: &[u8]) -> io::Result<Vec<(u64, u64)>> {
    let text = std::str::from_utf8(map).map_err(|_| invalid("sparse map is not text"))?;
    let numbers = text
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| invalid("bad number in sparse map"))
        })
        .collect::<io::Result<Vec<_>>>()?;
    if numbers.len() as u64 > 2 * MAX_SEGMENTS {
        return Err(invalid("sparse map too large"));
    }
    pairs(numbers)
}

fn read_number(data: &mut impl Read, consumed: &mut u64) -> io::Result<u64> {
    let mut value: u64 = 0;
    let mut digits = 0;
    loop {
        let mut byte = [0u8];
        data.read_exact(&mut byte)?;
        *consumed += 1;
        match byte[0] {
            b'\n' if digits > 0 => return Ok(value),
            b @ b'0'..=b'9' if digits < 20 => {
                value = value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(b - b'0')))
                    .ok_or_else(|| invalid("number overflow in sparse map"))?;
                digits += 1;
            }
            _ => return Err(invalid("bad sparse map")),
        }
    }
}

fn read_v1_map(data: &mut impl Read) -> io::Result<Vec<(u64, u64)>> {
    let mut consumed = 0u64;
    let count = read_number(data, &mut consumed)?;
    if count > MAX_SEGMENTS {
        return Err(invalid("sparse map too large"));
    }
    let mut numbers = Vec::with_capacity(2 * count as usize);
    for _ in 0..2 * count {
        numbers.push(read_number(data, &mut consumed)?);
    }
    let padding = (512 - consumed % 512) % 512;
    io::copy(&mut data.take(padding), &mut io::sink())?;
    pairs(numbers)
}

/// Writes the data segments at their offsets and sizes the file to
/// `real_size`; returns the bytes written.
pub(crate) fn write_segments(
    data: &mut impl Read,
    file: &mut File,
    segments: &[(u64, u64)],
    real_size: u64,
    buf: &mut [u8],
) -> io::Result<u64> {
    let mut written = 0;
    for &(offset, size) in segments {
        if offset.checked_add(size).is_none_or(|end| end > real_size) {
            return Err(invalid("sparse segment beyond the file's size"));
        }
        file.seek(SeekFrom::Start(offset))?;
        let mut left = size;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = data.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "sparse data truncated",
                ));
            }
            file.write_all(&buf[..n])?;
            left -= n as u64;
            written += n as u64;
        }
    }
    file.set_len(real_size)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_of_both_formats_parse() {
        let mut data = &b"2\n0\n4\n5242880\n6\n"[..];
        let mut padded = data.to_vec();
        padded.resize(512, 0);
        padded.extend_from_slice(b"DATA");
        let mut reader = &padded[..];
        assert_eq!(read_v1_map(&mut reader).unwrap(), [(0, 4), (5_242_880, 6)]);
        assert_eq!(reader, b"DATA");
        assert!(read_v1_map(&mut data.by_ref().take(3)).is_err());
        assert_eq!(parse_v01_map(b"0,4,10,2").unwrap(), [(0, 4), (10, 2)]);
        assert!(parse_v01_map(b"0,4,10").is_err());
        assert!(read_v1_map(&mut &b"99999999999\n"[..]).is_err());
    }
}
