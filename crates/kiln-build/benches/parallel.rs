//! The stage scheduler, measured (`cargo bench -p kiln-build --bench parallel`, or
//! `cargo xtask bench parallel`); each case next to its baseline, interleaved in the same
//! run, as ratios. Needs root (RUN in chroot mode) and, for the arm64 rootfs, the Debian
//! package busybox-static:arm64 (.ci/install-deps).
//!
//! 1. Two stages that need nothing of each other, each `RUN sleep 2`, and a final stage
//!    copying from both, with the default `--jobs`: against the 2 s one of them waits,
//!    against the same build with `--jobs 1`, and against the same build with
//!    `sleep 0` (the build's own work: ADD, layers, outputs). Target: at most 1.2x of
//!    2 s.
//! 2. `--custom-platform linux/amd64,linux/arm64` of a Dockerfile whose compile stage is
//!    pinned to the build platform (`FROM --platform=$BUILDPLATFORM`, cross-compiling per
//!    `TARGETARCH`) and whose final stages only ADD and COPY (nothing emulated): against
//!    the same build for linux/amd64 alone. Target: at most 1.3x.

use std::path::Path;
use std::time::{Duration, Instant};

const ROUNDS: usize = 5;

const INDEPENDENT: &str = "\
FROM scratch AS base
ADD rootfs-amd64.tar /
FROM base AS left
RUN sleep 2 && echo left > /left
FROM base AS right
RUN sleep 2 && echo right > /right
FROM base
COPY --from=left /left /left
COPY --from=right /right /right
";

/// The compile stands for a cross-compiler: CPU work on the build machine, per target.
const CROSS: &str = "\
FROM --platform=$BUILDPLATFORM scratch AS build
ARG BUILDARCH
ADD rootfs-$BUILDARCH.tar /
ARG TARGETARCH
RUN i=0; while [ $i -lt 60 ]; do cat /bin/busybox; i=$((i+1)); done | sha256sum > /app-$TARGETARCH
FROM scratch
ARG TARGETARCH
ADD rootfs-$TARGETARCH.tar /
COPY --from=build /app-$TARGETARCH /app
";

fn build(
    ctx: &Path,
    work: &Path,
    dockerfile: &str,
    edit: impl Fn(&mut kiln_build::BuildOptions),
) -> Duration {
    let mut options =
        kiln_build::BuildOptions::new(kiln_build::ContextSource::Dir(ctx.to_path_buf()));
    options.kaniko_dir = work.join("kiln");
    options.no_push = true;
    options.reproducible = true;
    options.dockerfile = kiln_build::DockerfileSource::Path(dockerfile.into());
    edit(&mut options);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    runtime
        .block_on(kiln_build::build(&options, &kiln_build::NoopObserver))
        .unwrap_or_else(|e| panic!("{dockerfile}: {e}"));
    start.elapsed()
}

fn mean(times: &[Duration]) -> f64 {
    times.iter().map(Duration::as_secs_f64).sum::<f64>() / times.len() as f64
}

fn main() {
    // SAFETY: trivial getter.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "needs root (RUN in chroot mode)"
    );
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    fs_err::create_dir_all(&ctx).unwrap();
    fs_err::write(
        ctx.join("rootfs-amd64.tar"),
        kiln_testkit::busybox::rootfs_tar(),
    )
    .unwrap();
    fs_err::write(
        ctx.join("rootfs-arm64.tar"),
        kiln_testkit::foreign::arm64_rootfs_tar(),
    )
    .unwrap();
    fs_err::write(ctx.join("Dockerfile.independent"), INDEPENDENT).unwrap();
    fs_err::write(
        ctx.join("Dockerfile.nosleep"),
        INDEPENDENT.replace("sleep 2", "sleep 0"),
    )
    .unwrap();
    fs_err::write(ctx.join("Dockerfile.cross"), CROSS).unwrap();
    let jobs = kiln_build::BuildOptions::new(kiln_build::ContextSource::Dir(ctx.clone())).jobs;
    println!("{jobs} CPUs (the default --jobs); {ROUNDS} rounds, interleaved");

    let (mut parallel, mut sequential, mut nosleep) = (Vec::new(), Vec::new(), Vec::new());
    let (mut two, mut one) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let work = dir.path().join(format!("work-{round}"));
        parallel.push(build(&ctx, &work, "Dockerfile.independent", |_| {}));
        sequential.push(build(&ctx, &work, "Dockerfile.independent", |o| o.jobs = 1));
        nosleep.push(build(&ctx, &work, "Dockerfile.nosleep", |_| {}));
        two.push(build(&ctx, &work, "Dockerfile.cross", |o| {
            o.custom_platform = Some("linux/amd64,linux/arm64".into())
        }));
        one.push(build(&ctx, &work, "Dockerfile.cross", |o| {
            o.custom_platform = Some("linux/amd64".into())
        }));
    }
    let (p, s, n) = (mean(&parallel), mean(&sequential), mean(&nosleep));
    println!(
        "two independent `RUN sleep 2` stages: parallel {p:.2} s = {:.2}x of 2 s (target <= 1.2x); \
         --jobs 1 {s:.2} s ({:.2}x of parallel's); with sleep 0 {n:.2} s, so the sleeps \
         took {:.2} s = {:.2}x of 2 s in parallel, {:.2} s sequentially",
        p / 2.0,
        s / p,
        p - n,
        (p - n) / 2.0,
        s - n
    );
    let (t, o) = (mean(&two), mean(&one));
    println!(
        "build-platform compile, COPY-only finals: linux/amd64+linux/arm64 {t:.2} s vs \
         linux/amd64 {o:.2} s = {:.2}x (target <= 1.3x)",
        t / o
    );
}
