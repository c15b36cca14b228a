//! Encode bench: kiln's gzip-6 and zstd-3 against `tar -c | pigz -p 2 -6`
//! and `tar -c | zstd -T2 -3` on the same generated ~500 MB tree.
//!
//! Each pair runs interleaved, best of `ROUNDS`, so a machine shared with
//! other jobs hurts both sides alike. Besides wall-clock MB/s it prints MB
//! per CPU-second (user + system of all threads/processes involved), which
//! other load disturbs much less. "vs base" compares wall-clock MB/s.
#![allow(clippy::print_stdout)]

mod tree;

use kiln_layer::{Compression, EncodeOptions, encode_layer_to_path};

const ROUNDS: usize = 2;

fn main() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("tree");
    let data = tree::generate(&src);
    // warm the page cache for everyone alike
    tree::time_shell(&format!(
        "tar -cf - -C {} . | cat > /dev/null",
        src.display()
    ));
    println!(
        "tree: {:.0} MB of file data; kiln and baselines use 2 threads; best of {ROUNDS}",
        tree::mb(data)
    );
    tree::header("encoder", "ratio");

    for (label, compression, baseline_label, baseline_cmd, ext) in [
        (
            "kiln gzip -6",
            Compression::Gzip { level: 6 },
            "tar -c | pigz -p 2 -6",
            "pigz -p 2 -6",
            "gz",
        ),
        (
            "kiln zstd -3",
            Compression::Zstd { level: 3 },
            "tar -c | zstd -T2 -3",
            "zstd -q -T2 -3",
            "zst",
        ),
    ] {
        let out = work.path().join(format!("kiln.tar.{ext}"));
        let base_out = work.path().join(format!("base.tar.{ext}"));
        let options = EncodeOptions {
            compression,
            threads: Some(2),
            ..Default::default()
        };
        let mut best: Option<(kiln_layer::EncodedLayer, tree::Run, tree::Run)> = None;
        for _ in 0..ROUNDS {
            let (encoded, kiln) = tree::measure_self(|| {
                encode_layer_to_path(tree::entries(&src), &options, &out).unwrap()
            });
            let base = tree::measure_shell(&format!(
                "tar -cf - -C {} . | {baseline_cmd} > {}",
                src.display(),
                base_out.display()
            ));
            best = Some(match best {
                None => (encoded, kiln, base),
                Some((e, k, b)) => (
                    e,
                    if kiln.wall < k.wall { kiln } else { k },
                    if base.wall < b.wall { base } else { b },
                ),
            });
        }
        let (encoded, kiln, base) = best.unwrap();
        let tar_mb = tree::mb(encoded.uncompressed_size);
        let base_size = std::fs::metadata(&base_out).unwrap().len();
        let ratio = |size: u64| format!("{:.3}", size as f64 / encoded.uncompressed_size as f64);
        tree::row(
            label,
            tar_mb,
            kiln,
            &ratio(encoded.size),
            &format!("{:.2}x", base.wall / kiln.wall),
        );
        tree::row(baseline_label, tar_mb, base, &ratio(base_size), "1.00x");
    }
}
