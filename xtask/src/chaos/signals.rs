//! `signals`: SIGTERM and SIGINT end a build cleanly within 5 s.
//!
//! During a RUN (a `sleep` that would last minutes): exit code 128+N, the
//! RUN's process gone, no mount left under kiln's dir, the build dir removed
//! (by kiln's background remover, within the same 5 s), nothing pushed.
//! At seeded points of a build with a push: exit code 128+N (or success if it
//! finished first) within 5 s, every tag in the registry whole, build dirs
//! removed.

use super::check;
use super::proc::{self, Running};
use super::rig::{Build, Rig, wait_work_dirs_gone};
use super::rng::Rng;
use super::{Scale, Tally};
use anyhow::{Result, bail, ensure};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(5);

pub fn run(rig: &Rig, scale: Scale) -> Result<Tally> {
    let mut rng = Rng::for_family(scale.seed, "signals");
    let mut tally = Tally::default();
    for (i, signo) in [libc::SIGTERM, libc::SIGINT].into_iter().enumerate() {
        let outcome = during_run(rig, signo, 900 + i as u32 + (rng.below(50) as u32) * 2);
        tally.record(&format!("signal {signo} during RUN"), outcome);
    }
    let points = if scale.bounded { 2 } else { 6 };
    let context = rig.dir("signals-push-context")?;
    fs_err::write(
        context.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY . /ctx\nRUN sleep 0.5 && echo ran > /ran\nCOPY big.bin /big.bin\n",
            rig.base
        ),
    )?;
    let mut big = vec![0u8; 4 << 20];
    rng.fill(&mut big);
    fs_err::write(context.join("big.bin"), &big)?;
    for point in 0..points {
        let signo = if rng.below(2) == 0 {
            libc::SIGTERM
        } else {
            libc::SIGINT
        };
        let at = Duration::from_millis(200 + rng.below(2500));
        let outcome = at_point(rig, &context, signo, at, point);
        tally.record(
            &format!("signal {signo} at {:.2} s", at.as_secs_f64()),
            outcome,
        );
    }
    Ok(tally)
}

fn during_run(rig: &Rig, signo: i32, seconds: u32) -> Result<()> {
    let name = format!("signals-run-{signo}");
    let context = rig.dir(&format!("{name}-context"))?;
    let marker = format!("kiln-chaos-run-started-{seconds}");
    fs_err::write(
        context.join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo {marker} && exec sleep {seconds}\n",
            rig.base
        ),
    )?;
    let kaniko_dir = rig.dir(&format!("{name}-kaniko"))?;
    let destination = rig.image(&format!("chaos/signals:{signo}"));
    let build = Build {
        context: context.clone(),
        kaniko_dir: kaniko_dir.clone(),
        destination: Some(destination),
        ..Build::default()
    };
    let log = rig.dir("signals-logs")?.join(format!("{name}.log"));
    let running = Running::spawn(&mut rig.command(&build), &log)?;
    let sleep_args = format!("sleep\0{seconds}\0");
    let until = Instant::now() + Duration::from_secs(120);
    while proc::processes_with(sleep_args.as_bytes()).is_empty() {
        if Instant::now() > until {
            bail!("the RUN never started:\n    {}", running.log_so_far());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ensure!(
        running.log_so_far().contains(&marker),
        "the RUN's output is not in kiln's log"
    );
    let sent = Instant::now();
    running.signal(signo);
    let ended = running.wait(LIMIT + Duration::from_secs(5))?;
    let took = sent.elapsed();
    ensure!(took <= LIMIT, "took {took:?} to stop");
    ensure!(
        ended.code == Some(128 + signo),
        "exit {:?} (signal {:?}), not {}:\n    {}",
        ended.code,
        ended.signal,
        128 + signo,
        ended.tail()
    );
    let left = proc::processes_with(sleep_args.as_bytes());
    ensure!(
        left.is_empty(),
        "the RUN's process is still alive: pids {left:?}"
    );
    let mounts = proc::mounts_under(&kaniko_dir);
    ensure!(mounts.is_empty(), "mounts left: {mounts:?}");
    wait_work_dirs_gone(&kaniko_dir, LIMIT.saturating_sub(took))?;
    let tags = check::tags(&rig.registry.host_port())?;
    ensure!(
        !tags.contains_key(&format!("chaos/signals:{signo}")),
        "the stopped build pushed its image"
    );
    Ok(())
}

fn at_point(
    rig: &Rig,
    context: &std::path::Path,
    signo: i32,
    at: Duration,
    point: usize,
) -> Result<()> {
    let kaniko_dir = rig.dir(&format!("signals-point-{point}-kaniko"))?;
    let build = Build {
        context: context.to_path_buf(),
        kaniko_dir: kaniko_dir.clone(),
        destination: Some(rig.image(&format!("chaos/signals-point:{point}"))),
        ..Build::default()
    };
    let log = rig.dir("signals-logs")?.join(format!("point-{point}.log"));
    let running = Running::spawn(&mut rig.command(&build), &log)?;
    std::thread::sleep(at);
    let sent = Instant::now();
    running.signal(signo);
    let ended = running.wait(LIMIT + Duration::from_secs(5))?;
    let took = sent.elapsed();
    ensure!(took <= LIMIT, "took {took:?} to stop");
    ensure!(
        ended.code == Some(128 + signo) || ended.success(),
        "exit {:?} (signal {:?}), not {} or 0:\n    {}",
        ended.code,
        ended.signal,
        128 + signo,
        ended.tail()
    );
    check::verify_all(&rig.registry.host_port(), false)?;
    wait_work_dirs_gone(&kaniko_dir, LIMIT)?;
    Ok(())
}
