//! Apply bench: kiln applying a layer of the generated ~500 MB tree against
//! `tar -x` (plain) and `tar -xzf` (gzip) of the very same blob.
//!
//! kiln applies the blob file as the build engine does
//! ([`apply_layer_file`]: a plain blob is read through mappings) and, for
//! the plain blob, also as any stream ([`apply_layer`]). All sides run
//! interleaved, `ROUNDS` times, who goes first rotating, so a machine shared
//! with other jobs hurts them alike; each run starts after a `sync`, so none
//! pays for the writeback of the one before. Rows print each side's best wall-clock
//! MB/s (of tar stream), MB per CPU-second (all threads) and the ratio of
//! best times; "median of pairs" is the median over rounds of tar's time over
//! kiln's in that round, the steadier figure on a noisy machine.
#![allow(clippy::print_stdout)]

mod tree;

use std::path::Path;

use kiln_layer::{
    ApplyOptions, Compression, EncodeOptions, Expected, apply_layer, apply_layer_file,
    encode_layer_to_path,
};

const ROUNDS: usize = 5;

/// One way of applying a blob onto a fresh directory.
type Applier<'a> = (&'a str, Box<dyn Fn(&Path) -> tree::Run + 'a>);

/// kiln applying `blob` with `apply_layer_file`, or as a `stream` with
/// `apply_layer`.
fn kiln<'a>(
    blob: &'a Path,
    expected: &'a Expected,
    stream: bool,
) -> Box<dyn Fn(&Path) -> tree::Run + 'a> {
    Box::new(move |into: &Path| {
        let file = std::fs::File::open(blob).unwrap();
        let options = ApplyOptions::default();
        let ((), run) = tree::measure_self(|| {
            let expected = expected.clone();
            if stream {
                apply_layer(file, "bench", expected, into, &options).unwrap();
            } else {
                apply_layer_file(&file, "bench", expected, into, &options).unwrap();
            }
        });
        run
    })
}

fn main() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("tree");
    tree::generate(&src);
    println!("{ROUNDS} rounds, order rotating");
    tree::header("applier", "");
    for (label, compression, flag, ext) in [
        ("plain tar", Compression::None, "-xf", "tar"),
        ("gzip -6", Compression::Gzip { level: 6 }, "-xzf", "tar.gz"),
    ] {
        let blob = work.path().join(format!("layer.{ext}"));
        let options = EncodeOptions {
            compression,
            threads: Some(2),
            ..Default::default()
        };
        let encoded = encode_layer_to_path(tree::entries(&src), &options, &blob).unwrap();
        let tar_mb = tree::mb(encoded.uncompressed_size);
        let expected = Expected {
            digest: Some(encoded.digest.clone()),
            size: Some(encoded.size),
            diff_id: Some(encoded.diff_id.clone()),
        };
        let mut sides: Vec<Applier<'_>> = vec![(
            "tar",
            Box::new(|into: &Path| {
                tree::measure_shell(&format!(
                    "tar {flag} {} -C {} --same-owner --same-permissions",
                    blob.display(),
                    into.display()
                ))
            }),
        )];
        sides.push(("kiln (file)", kiln(&blob, &expected, false)));
        if compression == Compression::None {
            sides.push(("kiln (stream)", kiln(&blob, &expected, true)));
        }

        let mut runs: Vec<Vec<tree::Run>> = vec![Vec::new(); sides.len()];
        for round in 0..ROUNDS {
            for i in 0..sides.len() {
                let side = (round + i) % sides.len();
                let into = work.path().join("into");
                std::fs::create_dir(&into).unwrap();
                // every run starts with nothing dirty left by the one before
                tree::time_shell("sync");
                runs[side].push((sides[side].1)(&into));
                std::fs::remove_dir_all(&into).unwrap();
            }
        }
        let best = |runs: &[tree::Run]| {
            *runs
                .iter()
                .min_by(|a, b| a.wall.total_cmp(&b.wall))
                .unwrap()
        };
        let base = best(&runs[0]);
        for (side, (name, _)) in sides.iter().enumerate().skip(1) {
            let ours = best(&runs[side]);
            let mut pairs: Vec<f64> = runs[0]
                .iter()
                .zip(&runs[side])
                .map(|(b, k)| b.wall / k.wall)
                .collect();
            tree::row(
                &format!("{name} {label}"),
                tar_mb,
                ours,
                "",
                &format!("{:.2}x", base.wall / ours.wall),
            );
            tree::median_of_pairs("  median of pairs", &mut pairs);
        }
        tree::row(&format!("tar {flag} {label}"), tar_mb, base, "", "1.00x");
    }
}
