//! COPY bench: a COPY whose files a later step needs on disk, the old way
//! (`apply_entries` into the stage root, then `encode_layer_to_path`, each
//! reading every source) against the tee (`encode_layer_applying`: one read,
//! root and layer on threads of their own), on tmpfs (`/dev/shm`), gzip -6,
//! 2 compression threads, on a generated context of 20,000 files (~235 MB).
//!
//! The two run interleaved, `ROUNDS` times, who goes first alternating, each
//! into a fresh root and a new blob file; the rows show each side's best run
//! (MB/s wall and MB per CPU-second); "median of pairs" is the median over
//! rounds of the old path's time over the tee's in that round.
#![allow(clippy::print_stdout)]

mod tree;

use std::io::BufWriter;
use std::path::Path;

use kiln_layer::{
    ApplyOptions, Compression, EncodeOptions, apply_entries, encode_layer_applying,
    encode_layer_to_path,
};

const ROUNDS: usize = 5;

fn main() {
    let shm = Path::new("/dev/shm");
    assert!(
        shm.is_dir(),
        "copy_tee needs a tmpfs at /dev/shm to measure without a disk"
    );
    let work = tempfile::tempdir_in(shm).unwrap();
    let src = work.path().join("context");
    let data = tree::generate_context(&src);
    tree::time_shell(&format!(
        "tar -cf - -C {} . | cat > /dev/null",
        src.display()
    ));
    let options = EncodeOptions {
        compression: Compression::Gzip { level: 6 },
        threads: Some(2),
        ..Default::default()
    };
    let apply = ApplyOptions::default();
    println!(
        "context: {} entries, {:.0} MB of file data on tmpfs; gzip -6, 2 threads; {ROUNDS} rounds",
        tree::entries(&src).len(),
        tree::mb(data)
    );
    tree::header("COPY into root + layer", "");
    let (old_root, new_root) = (work.path().join("old-root"), work.path().join("new-root"));
    let (old_blob, new_blob) = (
        work.path().join("old.tar.gz"),
        work.path().join("new.tar.gz"),
    );
    let mut best: Option<(tree::Run, tree::Run)> = None;
    let mut pairs = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        for dir in [&old_root, &new_root] {
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir(dir).unwrap();
        }
        for blob in [&old_blob, &new_blob] {
            let _ = std::fs::remove_file(blob);
        }
        let run_old = || {
            tree::measure_self(|| {
                apply_entries(tree::entries(&src), &old_root, &apply).unwrap();
                encode_layer_to_path(tree::entries(&src), &options, &old_blob).unwrap()
            })
        };
        let run_new = || {
            tree::measure_self(|| {
                let sink =
                    BufWriter::with_capacity(1 << 20, std::fs::File::create(&new_blob).unwrap());
                let (layer, sink, _) =
                    encode_layer_applying(tree::entries(&src), &options, sink, &new_root, &apply)
                        .unwrap();
                sink.into_inner().unwrap();
                layer
            })
        };
        let ((old_layer, old), (new_layer, new)) = if round % 2 == 0 {
            let o = run_old();
            (o, run_new())
        } else {
            let n = run_new();
            (run_old(), n)
        };
        assert_eq!(old_layer, new_layer, "both paths give the same layer");
        pairs.push(old.wall / new.wall);
        best = Some(match best {
            None => (old, new),
            Some((o, n)) => (
                if old.wall < o.wall { old } else { o },
                if new.wall < n.wall { new } else { n },
            ),
        });
    }
    let (old, new) = best.unwrap();
    let mb = tree::mb(data);
    tree::row(
        "tee (one read, two threads)",
        mb,
        new,
        "",
        &format!("{:.2}x", old.wall / new.wall),
    );
    tree::row("apply, then encode", mb, old, "", "1.00x");
    tree::median_of_pairs("  tee median of pairs", &mut pairs);
}
