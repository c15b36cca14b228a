//! Encode bench: kiln's gzip-6 and zstd-3 against `tar -c | pigz -p 2 -6`
//! and `tar -c | zstd -T2 -3` on the same generated ~500 MB tree.
#![allow(clippy::print_stdout)]

mod tree;

use std::time::Instant;

use kiln_layer::{Compression, EncodeOptions, encode_layer_to_path};

fn main() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("tree");
    let data = tree::generate(&src);
    // warm the page cache for everyone alike
    tree::time_shell(&format!(
        "tar -cf - -C {} . | cat > /dev/null",
        src.display()
    ));
    println!("tree: {:.0} MB of file data, threads: 2", tree::mb(data));
    println!(
        "{:<28} {:>9} {:>9} {:>8}",
        "encoder", "MB/s", "ratio", "vs base"
    );

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
        let options = EncodeOptions {
            compression,
            threads: Some(2),
            ..Default::default()
        };
        let start = Instant::now();
        let encoded = encode_layer_to_path(tree::entries(&src), &options, &out).unwrap();
        let kiln_s = start.elapsed().as_secs_f64();
        let tar_bytes = encoded.uncompressed_size;
        let kiln_mbs = tree::mb(tar_bytes) / kiln_s;
        let kiln_ratio = encoded.size as f64 / tar_bytes as f64;

        let base_out = work.path().join(format!("base.tar.{ext}"));
        let base_s = tree::time_shell(&format!(
            "tar -cf - -C {} . | {baseline_cmd} > {}",
            src.display(),
            base_out.display()
        ));
        let base_size = std::fs::metadata(&base_out).unwrap().len();
        let base_mbs = tree::mb(tar_bytes) / base_s;
        println!(
            "{label:<28} {kiln_mbs:>9.1} {kiln_ratio:>9.3} {:>7.2}x",
            kiln_mbs / base_mbs
        );
        println!(
            "{baseline_label:<28} {base_mbs:>9.1} {:>9.3} {:>8}",
            base_size as f64 / tar_bytes as f64,
            "1.00x"
        );
    }
}
