//! Apply bench: kiln applying a layer of the generated ~500 MB tree against
//! `tar -x` (plain) and `tar -xzf` (gzip) of the very same blob.
#![allow(clippy::print_stdout)]

mod tree;

use std::time::Instant;

use kiln_layer::{
    ApplyOptions, Compression, EncodeOptions, Expected, apply_layer, encode_layer_to_path,
};

fn main() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("tree");
    tree::generate(&src);
    println!("{:<28} {:>9} {:>8}", "applier", "MB/s", "vs base");
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
        std::fs::create_dir(&ours).unwrap();
        let start = Instant::now();
        let file = std::io::BufReader::new(std::fs::File::open(&blob).unwrap());
        apply_layer(
            file,
            "bench",
            Expected::default(),
            &ours,
            &ApplyOptions::default(),
        )
        .unwrap();
        let kiln_s = start.elapsed().as_secs_f64();

        let theirs = work.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        let base_s = tree::time_shell(&format!(
            "tar {flag} {} -C {} --same-owner --same-permissions",
            blob.display(),
            theirs.display()
        ));
        println!(
            "{:<28} {:>9.1} {:>7.2}x",
            format!("kiln apply {label}"),
            tar_mb / kiln_s,
            base_s / kiln_s
        );
        println!(
            "{:<28} {:>9.1} {:>8}",
            format!("tar {flag} {label}"),
            tar_mb / base_s,
            "1.00x"
        );
        std::fs::remove_dir_all(&ours).unwrap();
        std::fs::remove_dir_all(&theirs).unwrap();
    }
}
