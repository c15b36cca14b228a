//! `crash`: SIGKILL at seeded points of a build with COPY, RUN, `--cache`
//! lookups and a push, then the same build again with the same `--kaniko-dir`
//! and cache repo. Half the points use a cache repo of their own (a cold
//! cache: lookups miss, layers are pushed to it), half one shared warm repo
//! (lookups hit). Kill points are spread uniformly over the duration of an
//! undisturbed cold build.
//!
//! After every kill: every tag in the registry is whole (see `check`), and the
//! image's tag is either absent or names the undisturbed build's manifest.
//! After every rerun: success, the undisturbed digest, the tag on it, and no
//! mount left under kiln's dir.

use super::check;
use super::proc::Running;
use super::rig::{Build, Rig, read_digest};
use super::rng::Rng;
use super::{Scale, Tally};
use anyhow::{Context, Result, ensure};
use std::path::Path;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(300);

pub fn run(rig: &Rig, scale: Scale) -> Result<Tally> {
    let mut rng = Rng::for_family(scale.seed, "crash");
    let points = if scale.bounded { 8 } else { 50 };
    let context = rig.dir("crash-context")?;
    write_context(
        &context,
        &rig.base,
        &mut rng,
        if scale.bounded { 2 } else { 8 } << 20,
    )?;
    let logs = rig.dir("crash-logs")?;

    // The undisturbed build, cold then warm: both must give the same image.
    let reference = Build {
        context: context.clone(),
        kaniko_dir: rig.dir("crash-ref-kaniko")?,
        destination: Some(rig.image("chaos/app:crash-ref")),
        cache_repo: Some(rig.image("chaos/cache-crash-ref")),
        digest_file: Some(logs.join("ref-digest")),
        extra: Vec::new(),
    };
    let started = Instant::now();
    let cold = rig.run(&reference, &logs.join("ref-cold.log"), DEADLINE)?;
    let duration = started.elapsed();
    ensure!(
        cold.success(),
        "the undisturbed build failed:\n    {}",
        cold.tail()
    );
    let expected = read_digest(&reference)?;
    let warm = rig.run(&reference, &logs.join("ref-warm.log"), DEADLINE)?;
    ensure!(
        warm.success(),
        "the undisturbed warm build failed:\n    {}",
        warm.tail()
    );
    let warm_digest = read_digest(&reference)?;
    ensure!(
        warm_digest == expected,
        "a build from the cache gives {warm_digest}, the cold build {expected}"
    );

    let kaniko_dir = rig.dir("crash-kaniko")?;
    let mut tally = Tally::default();
    for point in 0..points {
        let at = duration.mul_f64(0.02 + 0.98 * rng.unit());
        let cache_repo = if point % 2 == 0 {
            rig.image("chaos/cache-crash")
        } else {
            rig.image(&format!("chaos/cache-crash-{point}"))
        };
        let build = Build {
            context: context.clone(),
            kaniko_dir: kaniko_dir.clone(),
            destination: Some(rig.image("chaos/app:crash")),
            cache_repo: Some(cache_repo),
            digest_file: Some(logs.join(format!("digest-{point}"))),
            extra: Vec::new(),
        };
        let outcome = one_point(
            rig,
            &build,
            at,
            &expected,
            &logs.join(format!("point-{point}")),
        );
        tally.record(
            &format!("kill at {:.2} s (point {point})", at.as_secs_f64()),
            outcome,
        );
    }
    Ok(tally)
}

fn one_point(rig: &Rig, build: &Build, at: Duration, expected: &str, log: &Path) -> Result<()> {
    let tag = build.destination.clone().context("destination")?;
    let tag_key = tag
        .split_once('/')
        .map(|(_, rest)| rest.to_owned())
        .context("destination has a host")?;
    let running = Running::spawn(&mut rig.command(build), &log.with_extension("killed.log"))?;
    std::thread::sleep(at);
    running.signal(libc::SIGKILL);
    let killed = running.wait(Duration::from_secs(30))?;
    ensure!(
        killed.signal == Some(libc::SIGKILL) || killed.success(),
        "the killed build ended with {:?}/{:?}:\n    {}",
        killed.code,
        killed.signal,
        killed.tail()
    );
    let host = rig.registry.host_port();
    check::verify_all(&host, false).context("after the kill")?;
    if let Some(digest) = check::tags(&host)?.get(&tag_key) {
        ensure!(
            digest == expected,
            "after the kill, {tag} names {digest}, not the build's {expected}"
        );
    }
    let rerun = rig.run(build, &log.with_extension("rerun.log"), DEADLINE)?;
    ensure!(rerun.success(), "the rerun failed:\n    {}", rerun.tail());
    let digest = read_digest(build)?;
    ensure!(
        digest == expected,
        "the rerun gives {digest}, an undisturbed build {expected}"
    );
    // The rerun's sweep detached what the killed build had mounted (its overlay),
    // and its own mounts are undone.
    let mounts = super::proc::mounts_under(&build.kaniko_dir);
    ensure!(
        mounts.is_empty(),
        "mounts left under kiln's dir: {mounts:?}"
    );
    let tagged = check::tags(&host)?.get(&tag_key).cloned();
    ensure!(
        tagged.as_deref() == Some(expected),
        "after the rerun, {tag} names {tagged:?}, not {expected}"
    );
    Ok(())
}

/// A context with small files, a seeded incompressible file of `big` bytes,
/// and a Dockerfile with COPY and RUN steps.
fn write_context(dir: &Path, base: &str, rng: &mut Rng, big: usize) -> Result<()> {
    let data = dir.join("data");
    fs_err::create_dir_all(&data)?;
    for i in 0..40 {
        fs_err::write(
            data.join(format!("file-{i}.txt")),
            format!("chaos file {i} {}\n", rng.next_u64()),
        )?;
    }
    let mut bytes = vec![0u8; big];
    rng.fill(&mut bytes);
    fs_err::write(dir.join("big.bin"), &bytes)?;
    fs_err::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {base}\n\
             COPY data /data\n\
             RUN i=0; while [ $i -lt 200 ]; do echo line $i > /data/gen-$i; i=$((i+1)); done\n\
             RUN sleep 0.3 && cat /data/file-1.txt > /copied && mkdir -p /var/chaos && echo ok > /var/chaos/ok\n\
             COPY big.bin /big.bin\n\
             RUN wc -c /big.bin > /big.size\n"
        ),
    )?;
    Ok(())
}
