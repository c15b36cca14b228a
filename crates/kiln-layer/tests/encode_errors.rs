//! A compressed encode runs on three threads (tar, compressor, blob writer);
//! whichever of them fails, the error reported is the cause, not the
//! broken queue it leaves behind for the others.

mod common;

use std::io::Write;

use common::{meta, p};
use kiln_layer::{Compression, EncodeOptions, Entry, encode_layer};

const COMPRESSIONS: [Compression; 2] = [
    Compression::Gzip { level: 6 },
    Compression::Zstd { level: 3 },
];

fn options(compression: Compression) -> EncodeOptions {
    EncodeOptions {
        compression,
        threads: Some(2),
        ..Default::default()
    }
}

/// Entries with 8 MiB of hard-to-compress content, then `last`.
fn entries_then(dir: &std::path::Path, last: Entry) -> Vec<Entry> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..8 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let big = dir.join("big");
    std::fs::write(&big, noise).unwrap();
    vec![Entry::file(p("a-big"), &big, meta(0o644, 0, 0)), last]
}

/// A sink that takes `limit` bytes, then fails every write.
#[derive(Debug)]
struct FailingSink {
    taken: usize,
    limit: usize,
}

impl Write for FailingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.taken >= self.limit {
            return Err(std::io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.limit - self.taken);
        self.taken += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_source_file_that_vanished_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("gone");
    for compression in COMPRESSIONS {
        let entries = entries_then(
            dir.path(),
            Entry::file(p("z-gone"), &gone, meta(0o644, 0, 0)),
        );
        let err = encode_layer(entries, &options(compression), Vec::new()).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("opening source file") && message.contains(&*gone.to_string_lossy()),
            "{compression:?}: {message}"
        );
    }
}

#[test]
fn a_failing_sink_reports_its_own_error() {
    let dir = tempfile::tempdir().unwrap();
    for compression in COMPRESSIONS {
        let entries = entries_then(dir.path(), Entry::dir(p("z"), meta(0o755, 0, 0)));
        let sink = FailingSink {
            taken: 0,
            limit: 64 * 1024,
        };
        let err = encode_layer(entries, &options(compression), sink).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("writing layer blob") && message.contains("disk on fire"),
            "{compression:?}: {message}"
        );
    }
}

#[test]
fn an_invalid_change_set_is_refused() {
    for compression in COMPRESSIONS {
        let entries = vec![
            Entry::dir(p("a"), meta(0o755, 0, 0)),
            Entry::bytes(p("a"), &b""[..], meta(0o644, 0, 0)),
        ];
        let err = encode_layer(entries, &options(compression), Vec::new()).unwrap_err();
        assert!(
            err.to_string().contains("two entries for one path"),
            "{compression:?}: {err}"
        );
    }
}

// Regression (issue 19, found by `cargo xtask chaos`'s full-disk family): a full
// disk while writing the blob said only "writing layer blob: No space left on
// device", not which file, so not which directory had filled up.
#[test]
fn a_full_disk_while_writing_the_blob_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let entries = entries_then(dir.path(), Entry::dir(p("d"), meta(0o755, 0, 0)));
    // /dev/full accepts the open and fails every write with ENOSPC.
    let full = std::path::Path::new("/dev/full");
    let err = kiln_layer::encode_layer_to_path(entries, &options(COMPRESSIONS[0]), full)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("writing layer blob /dev/full") && err.contains("No space left on device"),
        "{err}"
    );
}
