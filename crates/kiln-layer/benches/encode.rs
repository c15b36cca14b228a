//! Encode bench: kiln's gzip-6 and zstd-3 against `tar -c | pigz -p 2 -6`
//! and `tar -c | zstd -T2 -3` on the same generated ~500 MB tree.
//!
//! Each pair runs interleaved, `ROUNDS` times, who goes first alternating,
//! so a machine shared with other jobs hurts both sides alike; the rows show each side's best run.
//! Besides wall-clock MB/s they print MB per CPU-second (user + system of
//! all threads/processes involved), which other load disturbs much less.
//! "vs base" compares the best wall-clock times; "median of pairs" is the
//! median over rounds of the baseline's time over kiln's in that round, the
//! steadier figure on a noisy machine.
#![allow(clippy::print_stdout)]

mod tree;

use kiln_layer::{Compression, EncodeOptions, encode_layer_to_path};

const ROUNDS: usize = 5;

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
        "tree: {:.0} MB of file data; kiln and baselines use 2 threads; {ROUNDS} rounds",
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
        let mut pairs = Vec::with_capacity(ROUNDS);
        for round in 0..ROUNDS {
            // every run writes a new file, as a build writes a new blob
            // (rewriting a truncated file makes ext4 flush it on close)
            for old in [&out, &base_out] {
                let _ = std::fs::remove_file(old);
            }
            let run_kiln = || {
                tree::measure_self(|| {
                    encode_layer_to_path(tree::entries(&src), &options, &out).unwrap()
                })
            };
            let run_base = || {
                tree::measure_shell(&format!(
                    "tar -cf - -C {} . | {baseline_cmd} > {}",
                    src.display(),
                    base_out.display()
                ))
            };
            // which side goes first alternates: neither gets the warmer start
            let ((encoded, kiln), base) = if round % 2 == 0 {
                let k = run_kiln();
                (k, run_base())
            } else {
                let b = run_base();
                (run_kiln(), b)
            };
            pairs.push(base.wall / kiln.wall);
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
        tree::median_of_pairs(&format!("  {label} median of pairs"), &mut pairs);
    }
}
