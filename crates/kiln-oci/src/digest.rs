//! Content digests (`sha256:<64 lowercase hex>`) and the streaming hashers that produce them.
//!
//! A [`Digest`] is always valid once constructed: parsing checks the algorithm, the
//! hex alphabet (lowercase only, as the OCI spec requires for registered algorithms)
//! and the encoded length. Hashing is sha256; sha512 digests are accepted when parsed
//! (the OCI spec registers both) so that manifests using them round-trip, and they can
//! be verified too.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256, Sha512};

/// A digest algorithm registered by the OCI image spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DigestAlgorithm {
    /// `sha256`, 64 hex characters. The only one kiln produces.
    Sha256,
    /// `sha512`, 128 hex characters. Accepted and verified, never produced.
    Sha512,
}

impl DigestAlgorithm {
    /// The name used before the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    /// Number of hex characters in an encoded digest of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 64,
            DigestAlgorithm::Sha512 => 128,
        }
    }
}

/// Why a string is not a valid digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `algorithm:` prefix.
    #[error("invalid digest {input:?}: missing the `algorithm:` prefix (expected sha256:<64 hex>)")]
    MissingAlgorithm {
        /// The rejected input.
        input: String,
    },
    /// An algorithm other than sha256/sha512.
    #[error(
        "invalid digest {input:?}: unsupported algorithm {algorithm:?} (expected sha256 or sha512)"
    )]
    UnsupportedAlgorithm {
        /// The rejected input.
        input: String,
        /// The algorithm part.
        algorithm: String,
    },
    /// Wrong number of hex characters.
    #[error("invalid digest {input:?}: {algorithm} needs {expected} hex characters, got {actual}")]
    WrongLength {
        /// The rejected input.
        input: String,
        /// The algorithm name.
        algorithm: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        actual: usize,
    },
    /// A character outside `[0-9a-f]`.
    #[error(
        "invalid digest {input:?}: character {character:?} at position {position} of the hex part is not lowercase hex"
    )]
    BadHex {
        /// The rejected input.
        input: String,
        /// The offending character.
        character: char,
        /// Its position in the encoded part.
        position: usize,
    },
}

/// A validated content digest such as `sha256:e3b0c442…`.
///
/// Ordering and equality are those of the string form, so digests can key a `BTreeMap`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    algorithm: DigestAlgorithm,
    hex: String,
}

impl Digest {
    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest::from_sha256_bytes(Sha256::digest(bytes).into())
    }

    /// Builds a sha256 digest from a raw 32-byte hash.
    pub fn from_sha256_bytes(hash: [u8; 32]) -> Digest {
        Digest {
            algorithm: DigestAlgorithm::Sha256,
            hex: hex::encode(hash),
        }
    }

    /// Builds a sha256 digest from its 64-character lowercase hex encoding.
    pub fn from_sha256_hex(hex: &str) -> Result<Digest, DigestError> {
        format!("sha256:{hex}").parse()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The encoded (hex) part, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Whether `bytes` hash to this digest (with this digest's algorithm).
    pub fn matches(&self, bytes: &[u8]) -> bool {
        let mut hasher = Hasher::new(self.algorithm);
        hasher.update(bytes);
        hasher.finish() == *self
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(input: &str) -> Result<Digest, DigestError> {
        let Some((algorithm, encoded)) = input.split_once(':') else {
            return Err(DigestError::MissingAlgorithm {
                input: input.to_owned(),
            });
        };
        let algorithm = match algorithm {
            "sha256" => DigestAlgorithm::Sha256,
            "sha512" => DigestAlgorithm::Sha512,
            other => {
                return Err(DigestError::UnsupportedAlgorithm {
                    input: input.to_owned(),
                    algorithm: other.to_owned(),
                });
            }
        };
        if let Some((position, character)) = encoded
            .chars()
            .enumerate()
            .find(|(_, c)| !matches!(c, '0'..='9' | 'a'..='f'))
        {
            return Err(DigestError::BadHex {
                input: input.to_owned(),
                character,
                position,
            });
        }
        if encoded.len() != algorithm.hex_len() {
            return Err(DigestError::WrongLength {
                input: input.to_owned(),
                algorithm: algorithm.as_str(),
                expected: algorithm.hex_len(),
                actual: encoded.len(),
            });
        }
        Ok(Digest {
            algorithm,
            hex: encoded.to_owned(),
        })
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An incremental hasher for either registered algorithm.
#[derive(Clone)]
pub struct Hasher {
    state: HasherState,
}

#[derive(Clone)]
enum HasherState {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    /// A fresh hasher for `algorithm`.
    pub fn new(algorithm: DigestAlgorithm) -> Hasher {
        let state = match algorithm {
            DigestAlgorithm::Sha256 => HasherState::Sha256(Sha256::new()),
            DigestAlgorithm::Sha512 => HasherState::Sha512(Sha512::new()),
        };
        Hasher { state }
    }

    /// A fresh sha256 hasher.
    pub fn sha256() -> Hasher {
        Hasher::new(DigestAlgorithm::Sha256)
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.state {
            HasherState::Sha256(h) => h.update(bytes),
            HasherState::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        match self.state {
            HasherState::Sha256(h) => Digest::from_sha256_bytes(h.finalize().into()),
            HasherState::Sha512(h) => Digest {
                algorithm: DigestAlgorithm::Sha512,
                hex: hex::encode(h.finalize()),
            },
        }
    }
}

/// A `Write` sink that only hashes (sha256) and counts: `io::copy(&mut reader, &mut hasher)`.
#[derive(Clone)]
pub struct Sha256Hasher {
    hasher: Hasher,
    size: u64,
}

impl Default for Sha256Hasher {
    fn default() -> Self {
        Sha256Hasher::new()
    }
}

impl Sha256Hasher {
    /// A fresh hasher.
    pub fn new() -> Sha256Hasher {
        Sha256Hasher {
            hasher: Hasher::sha256(),
            size: 0,
        }
    }

    /// Bytes hashed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest and byte count of everything written.
    pub fn finish(self) -> (Digest, u64) {
        (self.hasher.finish(), self.size)
    }
}

impl Write for Sha256Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A `Write` adapter that hashes (sha256) and counts everything passed on to `inner`.
pub struct DigestWriter<W> {
    inner: W,
    hasher: Sha256Hasher,
}

impl<W: Write> DigestWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> DigestWriter<W> {
        DigestWriter {
            inner,
            hasher: Sha256Hasher::new(),
        }
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.hasher.size()
    }

    /// The inner writer (e.g. to sync a file) without finishing.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Flushes and returns the inner writer, the digest and the size of what was written.
    pub fn finish(mut self) -> io::Result<(W, Digest, u64)> {
        self.inner.flush()?;
        let (digest, size) = self.hasher.finish();
        Ok((self.inner, digest, size))
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.write_all(&buf[..written])?;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A `Read` adapter that hashes what passes through and, at end of stream, fails with
/// `InvalidData` if the content does not match the expected digest (and size, when
/// known). Readers of untrusted blobs use it so that corruption is never silent.
pub struct VerifyingReader<R> {
    inner: R,
    expected: Digest,
    expected_size: Option<u64>,
    hasher: Option<Hasher>,
    size: u64,
}

impl<R: Read> VerifyingReader<R> {
    /// Wraps `inner`, expecting `expected` (and exactly `expected_size` bytes if given).
    pub fn new(inner: R, expected: Digest, expected_size: Option<u64>) -> VerifyingReader<R> {
        VerifyingReader {
            inner,
            hasher: Some(Hasher::new(expected.algorithm())),
            expected,
            expected_size,
            size: 0,
        }
    }

    /// The digest this reader checks against.
    pub fn expected(&self) -> &Digest {
        &self.expected
    }

    fn check_end(&mut self) -> io::Result<()> {
        let Some(hasher) = self.hasher.take() else {
            return Ok(());
        };
        if let Some(expected_size) = self.expected_size
            && expected_size != self.size
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {} has {} bytes, expected {expected_size}",
                    self.expected, self.size
                ),
            ));
        }
        let actual = hasher.finish();
        if actual != self.expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob content does not match its digest: expected {}, got {actual}",
                    self.expected
                ),
            ));
        }
        Ok(())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.check_end()?;
            return Ok(0);
        }
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.size += n as u64;
        if let Some(expected_size) = self.expected_size
            && self.size > expected_size
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {} is longer than its declared {expected_size} bytes",
                    self.expected
                ),
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn sha256_of_empty_input_is_the_well_known_value() {
        assert_eq!(Digest::sha256_of(b"").to_string(), EMPTY);
    }

    #[test]
    fn parse_display_round_trip() {
        let digest: Digest = EMPTY.parse().unwrap();
        assert_eq!(digest.to_string(), EMPTY);
        assert_eq!(digest.algorithm(), DigestAlgorithm::Sha256);
        assert_eq!(digest.hex().len(), 64);
        assert_eq!(
            serde_json::to_string(&digest).unwrap(),
            format!("\"{EMPTY}\"")
        );
        let back: Digest = serde_json::from_str(&format!("\"{EMPTY}\"")).unwrap();
        assert_eq!(back, digest);
    }

    #[test]
    fn parse_rejects_bad_digests_naming_the_problem() {
        let upper = EMPTY.to_uppercase().replace("SHA256", "sha256");
        let cases: &[(&str, &str)] = &[
            ("e3b0c442", "missing the `algorithm:` prefix"),
            ("md5:abcd", "unsupported algorithm \"md5\""),
            ("sha256:abc", "needs 64 hex characters, got 3"),
            (&upper, "character 'E' at position 0"),
            ("sha256:", "needs 64 hex characters, got 0"),
        ];
        for (input, message) in cases {
            let error = input.parse::<Digest>().unwrap_err().to_string();
            assert!(error.contains(message), "{input}: {error}");
        }
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }

    #[test]
    fn digest_writer_hashes_what_it_passes_on() {
        let mut writer = DigestWriter::new(Vec::new());
        writer.write_all(b"hello ").unwrap();
        writer.write_all(b"world").unwrap();
        let (inner, digest, size) = writer.finish().unwrap();
        assert_eq!(inner, b"hello world");
        assert_eq!(size, 11);
        assert_eq!(digest, Digest::sha256_of(b"hello world"));
        assert!(digest.matches(b"hello world"));
        assert!(!digest.matches(b"hello world!"));

        let mut hasher = Sha256Hasher::new();
        io::copy(&mut &b"hello world"[..], &mut hasher).unwrap();
        assert_eq!(hasher.finish(), (digest, 11));
    }

    #[test]
    fn verifying_reader_accepts_matching_and_rejects_tampered_content() {
        let digest = Digest::sha256_of(b"payload");
        let mut ok = VerifyingReader::new(&b"payload"[..], digest.clone(), Some(7));
        let mut out = Vec::new();
        ok.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"payload");

        let mut bad = VerifyingReader::new(&b"paylaod"[..], digest.clone(), None);
        let error = bad.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("does not match"), "{error}");

        let mut short = VerifyingReader::new(&b"payload"[..], digest, Some(8));
        let error = short.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(error.to_string().contains("expected 8"), "{error}");
    }

    #[test]
    fn sha512_digests_parse_and_verify() {
        let mut hasher = Hasher::new(DigestAlgorithm::Sha512);
        hasher.update(b"abc");
        let digest = hasher.finish();
        let parsed: Digest = digest.to_string().parse().unwrap();
        assert_eq!(parsed.algorithm(), DigestAlgorithm::Sha512);
        assert!(parsed.matches(b"abc"));
    }
}
