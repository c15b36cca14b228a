//! Reading layer blobs: compression detected from magic bytes, digests
//! verified while streaming.
//!
//! ```text
//! blob -> sha256 + count (digest, size) -> gzip | zstd | plain -> sha256 (diff_id) -> tar
//! ```
//!
//! The media type a registry announces is not trusted to say how a blob is
//! compressed: the first bytes decide (`1f 8b` gzip, `28 b5 2f fd` zstd,
//! anything else plain tar). [`DecodedLayer::finish`] drains both streams to
//! their ends and compares what was computed with what was expected, so a
//! truncated or tampered blob is an error naming the blob.

use std::io::{self, BufReader, Read};

use kiln_oci::{Digest, LayerCompression, Sha256Hasher};

use crate::error::{Error, Result};

/// What a blob is expected to be; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// Digest of the blob as stored (compressed).
    pub digest: Option<Digest>,
    /// Size of the blob as stored.
    pub size: Option<u64>,
    /// sha256 of the uncompressed tar.
    pub diff_id: Option<Digest>,
}

/// What was measured while reading a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measured {
    /// Compression found from the magic bytes.
    pub compression: LayerCompression,
    /// Digest of the blob as read.
    pub digest: Digest,
    /// Size of the blob as read.
    pub size: u64,
    /// sha256 of the uncompressed stream.
    pub diff_id: Digest,
    /// Size of the uncompressed stream.
    pub uncompressed_size: u64,
}

/// A `Read` that hashes and counts what passes through.
struct Hashing<R> {
    inner: R,
    /// `None` when another hasher already sees the same bytes.
    hasher: Option<Sha256Hasher>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hasher) = &mut self.hasher {
            io::Write::write_all(hasher, &buf[..n])?;
        }
        Ok(n)
    }
}

type Raw<R> = BufReader<io::Chain<io::Cursor<Vec<u8>>, Hashing<R>>>;

enum Decoder<R: Read> {
    Plain(Raw<R>),
    Gzip(Box<flate2::bufread::MultiGzDecoder<Raw<R>>>),
    Zstd(zstd::stream::read::Decoder<'static, Raw<R>>),
}

/// The uncompressed tar stream of a blob, measured as it is read.
pub struct DecodedLayer<R: Read> {
    blob: String,
    expected: Expected,
    compression: LayerCompression,
    decoder: Hashing<Decoder<R>>,
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

/// Detects the compression of a blob from its first bytes.
pub fn detect_compression(head: &[u8]) -> LayerCompression {
    if head.starts_with(&[0x1f, 0x8b]) {
        LayerCompression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        LayerCompression::Zstd
    } else {
        LayerCompression::None
    }
}

impl<R: Read> DecodedLayer<R> {
    /// Starts decoding `blob`; `name` is used in every error (a digest or a
    /// file name).
    pub fn new(blob: R, name: &str, expected: Expected) -> Result<Self> {
        let read_err = Error::reading(name);
        let mut hashing = Hashing {
            inner: blob,
            hasher: Some(Sha256Hasher::new()),
        };
        // Read the magic (up to 4 bytes, however short the reads are).
        let mut head = Vec::with_capacity(4);
        (&mut hashing)
            .take(4)
            .read_to_end(&mut head)
            .map_err(read_err)?;
        let raw =
            BufReader::with_capacity(256 * 1024, io::Cursor::new(head.clone()).chain(hashing));
        let compression = detect_compression(&head);
        let decoder = match compression {
            LayerCompression::None => Decoder::Plain(raw),
            LayerCompression::Gzip => {
                Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(raw)))
            }
            LayerCompression::Zstd => {
                Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(raw).map_err(read_err)?)
            }
        };
        tracing::debug!(blob = name, ?compression, "decoding layer");
        Ok(DecodedLayer {
            blob: name.to_owned(),
            expected,
            compression,
            decoder: Hashing {
                inner: decoder,
                // a plain blob is the tar: its digest is the diff_id, hash once
                hasher: (compression != LayerCompression::None).then(Sha256Hasher::new),
            },
        })
    }

    /// The compression found.
    pub fn compression(&self) -> LayerCompression {
        self.compression
    }

    /// The blob name given to [`DecodedLayer::new`].
    pub fn name(&self) -> &str {
        &self.blob
    }

    /// Reads both streams to their ends and checks them against the
    /// expectations.
    pub fn finish(mut self) -> Result<Measured> {
        let read_err = Error::reading(&self.blob);
        io::copy(&mut self.decoder, &mut io::sink()).map_err(read_err)?;
        let Hashing { inner, hasher } = self.decoder;
        let uncompressed = hasher.map(Sha256Hasher::finish);
        let mut raw = match inner {
            Decoder::Plain(r) => r,
            Decoder::Gzip(r) => r.into_inner(),
            Decoder::Zstd(r) => r.finish(),
        };
        // Anything after the compressed stream still belongs to the blob.
        io::copy(&mut raw, &mut io::sink()).map_err(read_err)?;
        let (digest, size) = raw
            .into_inner()
            .into_inner()
            .1
            .hasher
            .expect("the blob is always hashed")
            .finish();
        let (diff_id, uncompressed_size) = uncompressed.unwrap_or_else(|| (digest.clone(), size));
        verify(
            &self.blob,
            &self.expected,
            Measured {
                compression: self.compression,
                digest,
                size,
                diff_id,
                uncompressed_size,
            },
        )
    }
}

impl Measured {
    /// What was measured of a plain (uncompressed) blob: the tar itself, so
    /// its digest is its diff_id.
    pub(crate) fn plain(digest: Digest, size: u64) -> Measured {
        Measured {
            compression: LayerCompression::None,
            diff_id: digest.clone(),
            digest,
            size,
            uncompressed_size: size,
        }
    }
}

/// Checks the size of `blob` against the expected one, if any.
pub(crate) fn check_size(blob: &str, expected: &Expected, size: u64) -> Result<()> {
    match expected.size {
        Some(wanted) if wanted != size => Err(Error::DigestMismatch {
            blob: blob.to_owned(),
            what: "size",
            expected: wanted.to_string(),
            actual: size.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Checks what was measured of `blob` against what was expected.
pub(crate) fn verify(blob: &str, expected: &Expected, measured: Measured) -> Result<Measured> {
    check_size(blob, expected, measured.size)?;
    let mismatch = |what, expected: String, actual: String| Error::DigestMismatch {
        blob: blob.to_owned(),
        what,
        expected,
        actual,
    };
    if let Some(digest) = &expected.digest
        && *digest != measured.digest
    {
        return Err(mismatch(
            "compressed digest",
            digest.to_string(),
            measured.digest.to_string(),
        ));
    }
    if let Some(diff_id) = &expected.diff_id
        && *diff_id != measured.diff_id
    {
        return Err(mismatch(
            "diff_id",
            diff_id.to_string(),
            measured.diff_id.to_string(),
        ));
    }
    Ok(measured)
}

impl<R: Read> Read for DecodedLayer<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.decoder.read(buf)
    }
}
