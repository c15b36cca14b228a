//! Layer-cache benchmark: a 10-step Dockerfile on a Debian-sized base (bookworm
//! minbase made with debootstrap, ~130 MB in ~9,000 files) pushed to a local
//! docker-registry. Each round builds it cold (the cache repository is new)
//! and then again as a fresh CI runner would (a new kiln dir) with the cache
//! warm: with `--cache-copy-layers` (nothing runs, nothing is downloaded) and
//! with kaniko's defaults (COPY runs, so the base is downloaded and unpacked).
//! Prints the medians and the ratios to the cold build.
//!
//! The Debian tar is made once and kept in `<target>/bench/debian-rootfs.tar`
//! (or taken from `$KILN_BENCH_DEBIAN_TAR`, or the conformance harness's copy).
//! Needs root, debootstrap and the Debian package registry the first time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ROUNDS: usize = 3;

fn dockerfile(host: &str) -> String {
    format!(
        r#"FROM {host}/bench/debian:12
ENV APP=/app
WORKDIR /app
COPY src/ /app/src/
RUN for i in $(seq 1 300); do echo "$i" >> /app/numbers; done
RUN mkdir -p /opt/data && cp -r /app/src /opt/data/
ARG VERSION=1
RUN echo "version $VERSION" > /app/version && ls /usr/bin | wc -l > /app/bins
LABEL org.example.bench=cache
CMD ["cat", "/app/version"]
"#
    )
}

fn context(dir: &Path, host: &str) {
    fs_err::write(dir.join("Dockerfile"), dockerfile(host)).unwrap();
    for d in 0..10 {
        let sub = dir.join(format!("src/mod-{d}"));
        fs_err::create_dir_all(&sub).unwrap();
        for f in 0..20 {
            fs_err::write(
                sub.join(format!("f{f}.rs")),
                format!("// {d}/{f}\n").repeat(50),
            )
            .unwrap();
        }
    }
}

fn build(ctx: &Path, host: &str, cache_repo: &str, copy_layers: bool) -> Duration {
    let runner = tempfile::tempdir().unwrap();
    let mut o = kiln_build::BuildOptions::new(kiln_build::ContextSource::Dir(ctx.to_path_buf()));
    o.kaniko_dir = runner.path().join("kiln");
    o.destinations = vec![format!("{host}/bench/app:latest")];
    o.registry.insecure = true;
    o.registry.insecure_pull = true;
    o.cache.enabled = true;
    o.cache.repo = Some(cache_repo.to_string());
    o.cache.copy_layers = copy_layers;
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
    let tar = bench_debian_tar();
    let bytes = fs_err::read(&tar).unwrap();
    let registry = kiln_testkit::Registry::start_plain();
    let host = registry.host_port();
    kiln_testkit::FixtureImage::from_layers(
        vec![kiln_testkit::FixtureLayer::from_tar(&bytes, true)],
        &["bash"],
    )
    .push(&registry, "bench/debian:12", None)
    .expect("pushing the base");
    eprintln!("base: {} MB uncompressed tar", bytes.len() >> 20);
    drop(bytes);
    let ctx = tempfile::tempdir().unwrap();
    context(ctx.path(), &host);

    let (mut cold, mut cached, mut cached_default) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let repo = format!("{host}/bench/cache-{round}");
        cold.push(build(ctx.path(), &host, &repo, true));
        cached.push(build(ctx.path(), &host, &repo, true));
        cached_default.push(build(ctx.path(), &host, &repo, false));
        eprintln!(
            "round {round}: cold {:.2?}, cached {:.2?}, cached with COPY run {:.2?}",
            cold[round], cached[round], cached_default[round]
        );
    }
    let (cold, cached, cached_default) = (median(cold), median(cached), median(cached_default));
    println!("cache_rebuild (10 steps, Debian-sized base, local registry; medians of {ROUNDS})");
    println!(
        "  uncached build                         {:>8.3} s",
        cold.as_secs_f64()
    );
    println!(
        "  fully cached (--cache-copy-layers)     {:>8.3} s   {:>5.1}x faster  (target: < 1 s, >= 5x)",
        cached.as_secs_f64(),
        cold.as_secs_f64() / cached.as_secs_f64()
    );
    println!(
        "  cached, COPY runs (kaniko's defaults)  {:>8.3} s   {:>5.1}x faster",
        cached_default.as_secs_f64(),
        cold.as_secs_f64() / cached_default.as_secs_f64()
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
