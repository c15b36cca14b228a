//! Push and pull a ~500 MB image (4 pseudo-random layers read from an OCI layout on disk)
//! to a local docker-registry with kiln, and the same image with `skopeo copy` (layout ->
//! docker://, and back to a layout) in the same run; prints MB/s and the ratios.
//!
//! Each tool pushes to its own fresh registry so neither benefits from blobs or mounts of
//! the other. Size: `KILN_BENCH_MB` (default 500).
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kiln_oci::{Descriptor, Index, Manifest, MediaType, Platform};
use kiln_registry::{
    Anonymous, AuthTls, BlobSource, BlobToPush, Client, ImageToPush, ManifestRef, PushTarget,
    RegistryOptions, RepoRef,
};
use kiln_testkit::Registry;

const LAYERS: usize = 4;

fn main() {
    let total_mb: usize = std::env::var("KILN_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let work = tempfile::Builder::new()
        .prefix("kiln-bench-push-pull-")
        .tempdir()
        .expect("temp dir");
    let layout = work.path().join("layout");
    let (image, bytes_total) = write_layout(&layout, total_mb * 1024 * 1024 / LAYERS);
    let mb = bytes_total as f64 / 1e6;
    println!(
        "image: {LAYERS} layers, {mb:.1} MB, OCI layout at {}",
        layout.display()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    // Push.
    let kiln_reg = Registry::start_plain();
    let skopeo_reg = Registry::start_plain();
    let client = client_for(&[kiln_reg.host_port()]);
    let target = PushTarget {
        repo: RepoRef::new(&kiln_reg.host_port(), "bench/image"),
        reference: ManifestRef::Tag("latest".into()),
    };
    let t = Instant::now();
    let outcome = rt
        .block_on(client.push_image(&image, &[target]))
        .expect("kiln push");
    let kiln_push = t.elapsed();
    assert_eq!(outcome.uploaded, LAYERS + 1);
    let kiln_push_rss = peak_rss_mb();

    let t = Instant::now();
    skopeo(&[
        "copy",
        "--quiet",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:bench", layout.display()),
        &format!("docker://{}/bench/image:latest", skopeo_reg.host_port()),
    ]);
    let skopeo_push = t.elapsed();

    // Pull (each tool from the registry it pushed to).
    let pulled_dir = work.path().join("kiln-pull");
    fs_err::create_dir_all(&pulled_dir).expect("pull dir");
    let client = client_for(&[kiln_reg.host_port()]);
    let t = Instant::now();
    rt.block_on(pull_all(
        &client,
        &RepoRef::new(&kiln_reg.host_port(), "bench/image"),
        &pulled_dir,
    ));
    let kiln_pull = t.elapsed();
    let kiln_peak_rss = peak_rss_mb();

    let skopeo_out = work.path().join("skopeo-pull");
    let t = Instant::now();
    skopeo(&[
        "copy",
        "--quiet",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{}/bench/image:latest", skopeo_reg.host_port()),
        &format!("oci:{}:bench", skopeo_out.display()),
    ]);
    let skopeo_pull = t.elapsed();

    let rate = |d: Duration| mb / d.as_secs_f64();
    println!(
        "push  kiln   {:>7.2} s  {:>8.1} MB/s",
        kiln_push.as_secs_f64(),
        rate(kiln_push)
    );
    println!(
        "push  skopeo {:>7.2} s  {:>8.1} MB/s",
        skopeo_push.as_secs_f64(),
        rate(skopeo_push)
    );
    println!(
        "push  ratio kiln/skopeo throughput: {:.2}x",
        rate(kiln_push) / rate(skopeo_push)
    );
    println!(
        "pull  kiln   {:>7.2} s  {:>8.1} MB/s",
        kiln_pull.as_secs_f64(),
        rate(kiln_pull)
    );
    println!(
        "pull  skopeo {:>7.2} s  {:>8.1} MB/s",
        skopeo_pull.as_secs_f64(),
        rate(skopeo_pull)
    );
    println!(
        "pull  ratio kiln/skopeo throughput: {:.2}x",
        rate(kiln_pull) / rate(skopeo_pull)
    );
    println!(
        "kiln peak RSS: {kiln_push_rss:.1} MB after push, {kiln_peak_rss:.1} MB after pull (image {mb:.0} MB)"
    );
}

fn client_for(hosts: &[String]) -> Client {
    let tls = kiln_auth::TlsConfigs::new(
        kiln_auth::TlsOptions::default(),
        &kiln_auth::ProcessEnvironment,
    )
    .expect("TLS");
    let mut options = RegistryOptions::new(Arc::new(Anonymous), Arc::new(AuthTls::new(tls)));
    options.insecure_registries.extend(hosts.iter().cloned());
    Client::new(options)
}

async fn pull_all(client: &Client, repo: &RepoRef, dir: &Path) {
    let pulled = client
        .pull_manifest(
            repo,
            &ManifestRef::Tag("latest".into()),
            &Platform::new("linux", "amd64"),
        )
        .await
        .expect("kiln pull manifest");
    let mut tasks = tokio::task::JoinSet::new();
    for layer in pulled.manifest.layers.clone() {
        let (client, source, dest) = (
            client.clone(),
            pulled.source.clone(),
            dir.join(layer.digest.hex()),
        );
        tasks.spawn(async move { client.fetch_blob(&source, &layer, &dest).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("join").expect("kiln fetch blob");
    }
}

/// Writes an OCI layout with `LAYERS` uncompressed-tar-typed layers of `layer_size`
/// pseudo-random bytes; returns the image to push (layers as files in the layout).
fn write_layout(dir: &Path, layer_size: usize) -> (ImageToPush, u64) {
    let blobs = dir.join("blobs/sha256");
    fs_err::create_dir_all(&blobs).expect("layout dir");
    let mut layers: Vec<(Descriptor, PathBuf)> = Vec::new();
    for i in 0..LAYERS {
        // Written in 1 MiB pieces so generating the image does not inflate peak RSS.
        let tmp = dir.join(format!("layer-{i}.tmp"));
        let mut file = std::io::BufWriter::new(fs_err::File::create(&tmp).expect("layer file"));
        let mut hasher = kiln_oci::Hasher::sha256();
        let mut seed = i as u64 + 1;
        let mut left = layer_size;
        while left > 0 {
            let piece = kiln_testkit::noise::bytes(left.min(1 << 20), seed);
            seed += LAYERS as u64;
            hasher.update(&piece);
            std::io::Write::write_all(&mut file, &piece).expect("layer write");
            left -= piece.len();
        }
        drop(file);
        let desc = Descriptor::new(MediaType::OciLayer, hasher.finish(), layer_size as u64);
        let path = blobs.join(desc.digest.hex());
        fs_err::rename(&tmp, &path).expect("layer rename");
        layers.push((desc, path));
    }
    let diff_ids: Vec<String> = layers.iter().map(|(d, _)| d.digest.to_string()).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("config");
    let config_desc = Descriptor::for_bytes(MediaType::OciConfig, &config);
    fs_err::write(blobs.join(config_desc.digest.hex()), &config).expect("config blob");
    let manifest = Manifest::new_oci(
        config_desc.clone(),
        layers.iter().map(|(d, _)| d.clone()).collect(),
    );
    let (mut mdesc, mbytes) = manifest.to_blob().expect("manifest");
    fs_err::write(blobs.join(mdesc.digest.hex()), &mbytes).expect("manifest blob");
    mdesc.set_annotation("org.opencontainers.image.ref.name", "bench");
    let (_, index) = Index::new_oci(vec![mdesc]).to_blob().expect("index");
    fs_err::write(dir.join("index.json"), index).expect("index.json");
    fs_err::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    let total = layers.iter().map(|(d, _)| d.size).sum::<u64>() + config.len() as u64;
    let mut blobs_to_push = vec![BlobToPush {
        descriptor: config_desc,
        source: BlobSource::Bytes(Bytes::from(config)),
        mount_from: None,
    }];
    blobs_to_push.extend(layers.into_iter().map(|(descriptor, path)| BlobToPush {
        descriptor,
        source: BlobSource::File(path),
        mount_from: None,
    }));
    (
        ImageToPush {
            manifest: Bytes::from(mbytes),
            media_type: MediaType::OciManifest,
            blobs: blobs_to_push,
        },
        total,
    )
}

fn skopeo(args: &[&str]) {
    let out = std::process::Command::new(kiln_testkit::tools::skopeo())
        .args(args)
        .output()
        .expect("running skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Peak resident set size of this process (VmHWM), MB.
fn peak_rss_mb() -> f64 {
    let status = fs_err::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
