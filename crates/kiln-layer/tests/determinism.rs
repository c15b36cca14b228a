//! Layers are byte-identical whatever the number of compression threads,
//! on inputs large enough to span many gzip blocks and several zstd jobs.

mod common;

use common::{meta, p};
use kiln_layer::{Compression, EncodeOptions, Entry, encode_layer};

fn text(len: usize, seed: u64) -> Vec<u8> {
    let words: [&[u8]; 7] = [
        b"alpha ", b"beta ", b"gamma\n", b"delta ", b"layer ", b"image ", b"kiln ",
    ];
    let mut x = seed;
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(words[(x % 7) as usize]);
        if x.is_multiple_of(5) {
            out.extend_from_slice(format!("{x:x}").as_bytes());
        }
    }
    out.truncate(len);
    out
}

#[test]
fn gzip_and_zstd_bytes_do_not_depend_on_thread_count() {
    let big = text(24 << 20, 7);
    let entries = || {
        vec![
            Entry::bytes(p("a/big"), big.clone(), meta(0o644, 0, 0)),
            Entry::bytes(p("a/small"), text(10_000, 9), meta(0o644, 0, 0)),
            Entry::dir(p("a"), meta(0o755, 0, 0)),
        ]
    };
    for compression in [
        Compression::Gzip { level: 6 },
        Compression::Zstd { level: 3 },
    ] {
        let runs: Vec<_> = [1, 2, 4]
            .into_iter()
            .map(|threads| {
                let options = EncodeOptions {
                    compression,
                    threads: Some(threads),
                    ..Default::default()
                };
                encode_layer(entries(), &options, Vec::new()).unwrap()
            })
            .collect();
        for (i, run) in runs.iter().enumerate().skip(1) {
            assert!(
                run.0 == runs[0].0 && run.1 == runs[0].1,
                "{compression:?}: run {i} differs"
            );
        }
        assert!(
            runs[0].0.size < runs[0].0.uncompressed_size / 2,
            "{compression:?} did not compress"
        );
    }
}
