//! Apply bench: kiln applying a layer of the generated ~500 MB tree against
//! `tar -x` (plain) and `tar -xzf` (gzip) of the very same blob, interleaved,
//! best of `ROUNDS`. Prints wall-clock MB/s of tar stream, MB per CPU-second,
//! and the wall-clock ratio.
#![allow(clippy::print_stdout)]

mod tree;

use kiln_layer::{
    ApplyOptions, Compression, EncodeOptions, Expected, apply_layer, encode_layer_to_path,
};

const ROUNDS: usize = 2;

fn main() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("tree");
    tree::generate(&src);
    println!("best of {ROUNDS}");
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
        let ours = work.path().join("ours");
        let theirs = work.path().join("theirs");
        let mut best: Option<(tree::Run, tree::Run)> = None;
        for _ in 0..ROUNDS {
            std::fs::create_dir(&ours).unwrap();
            std::fs::create_dir(&theirs).unwrap();
            let expected = Expected {
                digest: Some(encoded.digest.clone()),
                size: Some(encoded.size),
                diff_id: Some(encoded.diff_id.clone()),
            };
            let ((), kiln) = tree::measure_self(|| {
                let file = std::fs::File::open(&blob).unwrap();
                apply_layer(file, "bench", expected, &ours, &ApplyOptions::default()).unwrap();
            });
            let base = tree::measure_shell(&format!(
                "tar {flag} {} -C {} --same-owner --same-permissions",
                blob.display(),
                theirs.display()
            ));
            std::fs::remove_dir_all(&ours).unwrap();
            std::fs::remove_dir_all(&theirs).unwrap();
            best = Some(match best {
                None => (kiln, base),
                Some((k, b)) => (
                    if kiln.wall < k.wall { kiln } else { k },
                    if base.wall < b.wall { base } else { b },
                ),
            });
        }
        let (kiln, base) = best.unwrap();
        tree::row(
            &format!("kiln apply {label}"),
            tar_mb,
            kiln,
            "",
            &format!("{:.2}x", base.wall / kiln.wall),
        );
        tree::row(&format!("tar {flag} {label}"), tar_mb, base, "", "1.00x");
    }
}
