//! Storing a layer blob: kiln's streamed hash + copy into an OCI layout, and into a
//! docker-archive, next to `sha256sum` + `cp` (and `tar -cf`) on the same file in the
//! same run. Size with KILN_BENCH_MB (default 512).

use std::io::{self, Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kiln_oci::{
    ArchiveLayerBlob, ArchiveLayout, DockerArchiveWriter, History, ImageConfig, MediaType,
    OciLayoutWriter, Platform,
};

fn write_payload(path: &Path, megabytes: usize) {
    let mut file = io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; 1024 * 1024];
    for _ in 0..megabytes {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        file.write_all(&block).unwrap();
    }
    file.flush().unwrap();
}

fn run(command: &mut Command) -> Duration {
    let start = Instant::now();
    let status = command.status().expect("running a baseline tool");
    assert!(status.success(), "{command:?} failed");
    start.elapsed()
}

fn report(name: &str, megabytes: usize, kiln: Duration, baseline_name: &str, baseline: Duration) {
    let rate = |d: Duration| megabytes as f64 / d.as_secs_f64();
    println!(
        "{name:<34} kiln {:>8.1} MB/s   {baseline_name} {:>8.1} MB/s   ratio {:.2}",
        rate(kiln),
        rate(baseline),
        baseline.as_secs_f64() / kiln.as_secs_f64()
    );
}

fn main() {
    let megabytes: usize = std::env::var("KILN_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let work = tempfile::tempdir().unwrap();
    let payload = work.path().join("payload.tar");
    write_payload(&payload, megabytes);
    println!("blob_store: {megabytes} MiB payload (ratio > 1 means kiln is faster)");

    // OCI layout: hash + store.
    let writer = OciLayoutWriter::create(work.path().join("layout")).unwrap();
    let start = Instant::now();
    let (diff_id, size) = writer.write_blob_from_file(&payload).unwrap();
    let kiln = start.elapsed();
    let copy = work.path().join("copy");
    let baseline = run(Command::new("sha256sum")
        .arg(&payload)
        .stdout(std::process::Stdio::null()))
        + run(Command::new("cp").arg(&payload).arg(&copy));
    report(
        "oci layout write_blob_from_file",
        megabytes,
        kiln,
        "sha256sum+cp",
        baseline,
    );
    writer.finish().unwrap();

    // docker-archive: verified streaming of the layer into the tarball.
    let mut config = ImageConfig::for_platform(&Platform::new("linux", "amd64"));
    config.push_layer(diff_id.clone(), History::default());
    let (_, config_bytes) = config.to_blob(MediaType::OciConfig).unwrap();
    let archive_path = work.path().join("archive.tar");
    let start = Instant::now();
    let mut archive = DockerArchiveWriter::new(
        io::BufWriter::with_capacity(256 * 1024, std::fs::File::create(&archive_path).unwrap()),
        ArchiveLayout::Blobs,
    );
    archive
        .add_image(&config_bytes, &[], |_| {
            let file = std::fs::File::open(&payload)?;
            Ok(ArchiveLayerBlob::uncompressed(file, size, &diff_id))
        })
        .unwrap();
    archive.finish().unwrap().flush().unwrap();
    let kiln = start.elapsed();
    let baseline = run(Command::new("sha256sum")
        .arg(&payload)
        .stdout(std::process::Stdio::null()))
        + run(Command::new("tar")
            .arg("-cf")
            .arg(work.path().join("baseline.tar"))
            .arg("-C")
            .arg(work.path())
            .arg("payload.tar"));
    report(
        "docker-archive add_image",
        megabytes,
        kiln,
        "sha256sum+tar -cf",
        baseline,
    );

    // Reading back verified.
    let layout = kiln_oci::OciLayout::open(work.path().join("layout")).unwrap();
    let descriptor = kiln_oci::Descriptor::new(MediaType::OciLayer, diff_id, size);
    let start = Instant::now();
    let mut reader = layout.open_blob(&descriptor).unwrap();
    let mut buffer = vec![0u8; 256 * 1024];
    while reader.read(&mut buffer).unwrap() > 0 {}
    let kiln = start.elapsed();
    let baseline = run(Command::new("sha256sum")
        .arg(layout.blob_path(&descriptor))
        .stdout(std::process::Stdio::null()));
    report(
        "oci layout verified read",
        megabytes,
        kiln,
        "sha256sum",
        baseline,
    );
}
