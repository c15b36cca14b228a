//! Cost of `--sbom --provenance` on a Debian-based image: the same build,
//! pushed to a local registry, with and without attestations, interleaved
//! (the order alternates every round), in one process. Prints each round,
//! the medians and the ratio (target: attestations add at most 10%).
//!
//! The Debian bookworm minbase tar is the conformance harness's copy when it
//! exists, else made once with debootstrap (`<target>/bench`), as in
//! `cache_rebuild`. Needs root and docker-registry.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ROUNDS: usize = 5;

fn build(ctx: &Path, host: &str, round: usize, attest: bool) -> Duration {
    let runner = tempfile::tempdir().unwrap();
    let mut o = kiln_build::BuildOptions::new(kiln_build::ContextSource::Dir(ctx.to_path_buf()));
    o.kaniko_dir = runner.path().join("kiln");
    let name = if attest { "attested" } else { "plain" };
    o.destinations = vec![format!("{host}/bench/{name}-{round}:latest")];
    o.registry.insecure = true;
    o.registry.insecure_pull = true;
    o.attest.sbom = attest;
    o.attest.provenance = attest;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    runtime
        .block_on(kiln_build::build(&o, &kiln_build::NoopObserver))
        .expect("kiln build");
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let bytes = fs_err::read(bench_debian_tar()).unwrap();
    let registry = kiln_testkit::Registry::start_plain();
    let host = registry.host_port();
    kiln_testkit::FixtureImage::from_layers(
        vec![kiln_testkit::FixtureLayer::from_tar(&bytes, true)],
        &["bash"],
    )
    .push(&registry, "bench/debian:12", None)
    .expect("pushing the base");
    drop(bytes);
    let ctx = tempfile::tempdir().unwrap();
    fs_err::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {host}/bench/debian:12\nRUN echo bench > /bench && ls /usr/bin | wc -l > /bins\n\
             CMD [\"cat\", \"/bench\"]\n"
        ),
    )
    .unwrap();
    // One unmeasured build of each warms the page cache and the registry.
    build(ctx.path(), &host, 99, false);
    build(ctx.path(), &host, 98, true);
    let (mut plain, mut attested, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (p, a) = if round % 2 == 0 {
            let p = build(ctx.path(), &host, round, false);
            (p, build(ctx.path(), &host, round, true))
        } else {
            let a = build(ctx.path(), &host, round, true);
            (build(ctx.path(), &host, round, false), a)
        };
        let ratio = a.as_secs_f64() / p.as_secs_f64();
        eprintln!("round {round}: plain {p:.2?}, --sbom --provenance {a:.2?}, ratio {ratio:.3}");
        plain.push(p);
        attested.push(a);
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    let (p, a) = (median(plain), median(attested));
    println!(
        "attest (Debian bookworm base, one RUN, pushed to a local registry; medians of {ROUNDS}, interleaved)"
    );
    println!(
        "  build and push                      {:>8.3} s",
        p.as_secs_f64()
    );
    println!(
        "  same with --sbom --provenance       {:>8.3} s   ratio {:.3} (median of per-round ratios {:.3}; target <= 1.10)",
        a.as_secs_f64(),
        a.as_secs_f64() / p.as_secs_f64(),
        ratios[ratios.len() / 2]
    );
}

/// `KILN_BENCH_DEBIAN_TAR`, else the workspace's Debian base tar.
fn bench_debian_tar() -> PathBuf {
    std::env::var_os("KILN_BENCH_DEBIAN_TAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            kiln_testkit::debian::workspace_rootfs_tar().expect("the Debian base image")
        })
}
