//! `hostile`: builds FROM kiln-testkit's lying registry, one lie per case.
//! Each must fail (exit 1) with an error naming the registry and saying what
//! was wrong, within a time limit, with the kiln process's peak RSS (from
//! `wait4`) under 100 MiB, and with nothing written outside its own
//! directories: the context is unchanged and the `TMPDIR` it was given stays
//! empty.
//!
//! The stalled body waits out kiln's registry I/O timeout on each attempt: the
//! default (2 min) in the full run, `--registry-timeout=5s` in the bounded one.

use super::proc;
use super::rig::{Build, Rig, tree_digest};
use super::{Scale, Tally};
use anyhow::{Context, Result, bail, ensure};
use kiln_testkit::{HostileRegistry, Lie};
use std::time::Duration;

const RSS_LIMIT_KIB: i64 = 100 * 1024;

/// The bounded run's `--registry-timeout` for the stalled body.
const BOUNDED_TIMEOUT: &str = "5s";

/// What the error must say (any one of the words, case-insensitive), and how long it may take.
fn expectation(lie: Lie, scale: Scale) -> (&'static [&'static str], Duration) {
    let quick = Duration::from_secs(60);
    match lie {
        Lie::HugeManifest => (&["larger than", "too large", "limit"], quick),
        Lie::HugeConfig => (&["larger than", "too large", "limit"], quick),
        Lie::EndlessConfig => (
            &["larger than", "too large", "limit", "more than", "size"],
            quick,
        ),
        Lie::BadDigest => (&["digest"], quick),
        Lie::DecompressionBomb => (
            &["diff_id", "truncated", "unexpected end", "eof", "layer"],
            Duration::from_secs(180),
        ),
        Lie::EndlessRedirects => (&["redirect"], quick),
        Lie::ShortBody => (
            &["closed", "incomplete", "end of file", "eof", "short"],
            quick,
        ),
        // kiln's I/O timeout (120 s, or 5 s bounded) on each of its 5 attempts, and
        // the backoff.
        Lie::StalledBody if scale.bounded => (&["timed out", "timeout"], Duration::from_secs(90)),
        Lie::StalledBody => (&["timed out", "timeout"], Duration::from_secs(660)),
        Lie::GarbageToken => (&["token"], quick),
    }
}

pub fn run(rig: &Rig, scale: Scale) -> Result<Tally> {
    let hostile = HostileRegistry::start();
    let mut tally = Tally::default();
    for &lie in Lie::ALL {
        let outcome = one_lie(rig, &hostile, lie, scale);
        tally.record(&format!("lie {}", lie.repo()), outcome);
    }
    Ok(tally)
}

fn one_lie(rig: &Rig, hostile: &HostileRegistry, lie: Lie, scale: Scale) -> Result<()> {
    let case = rig.dir(&format!("hostile-{}", lie.repo()))?;
    let context = case.join("context");
    let tmp = case.join("tmp");
    fs_err::create_dir_all(&context)?;
    fs_err::create_dir_all(&tmp)?;
    fs_err::write(
        context.join("Dockerfile"),
        format!("FROM {}\nRUN true\n", hostile.reference(lie)),
    )?;
    let before = tree_digest(&context)?;
    let mut build = Build {
        context: context.clone(),
        kaniko_dir: case.join("kaniko"),
        ..Build::default()
    };
    if scale.bounded && lie == Lie::StalledBody {
        build
            .extra
            .push(format!("--registry-timeout={BOUNDED_TIMEOUT}"));
    }
    let (words, limit) = expectation(lie, scale);
    let mut cmd = rig.command(&build);
    cmd.env("TMPDIR", &tmp);
    let done = proc::run(
        &mut cmd,
        &case.join("kiln.log"),
        limit + Duration::from_secs(30),
    )?;
    let error = done
        .log
        .lines()
        .find(|l| l.contains("build failed"))
        .map(str::to_owned);
    eprintln!(
        "chaos: hostile {}: exit {:?}, {:.1} s, peak RSS {} MiB: {}",
        lie.repo(),
        done.code,
        done.elapsed.as_secs_f64(),
        done.max_rss_kib / 1024,
        error.as_deref().unwrap_or("(no error line)")
    );
    ensure!(
        done.code == Some(1),
        "exit {:?}/{:?}, not 1:\n    {}",
        done.code,
        done.signal,
        done.tail()
    );
    let error = error.with_context(|| format!("no `build failed` line:\n    {}", done.tail()))?;
    ensure!(
        done.elapsed <= limit,
        "took {:?} (limit {limit:?})",
        done.elapsed
    );
    ensure!(
        done.max_rss_kib < RSS_LIMIT_KIB,
        "peak RSS {} MiB (limit {} MiB)",
        done.max_rss_kib / 1024,
        RSS_LIMIT_KIB / 1024
    );
    let lower = error.to_lowercase();
    if !error.contains(&hostile.host_port()) || !words.iter().any(|w| lower.contains(w)) {
        bail!(
            "the error names neither {} nor says any of {words:?}: {error}",
            hostile.host_port()
        );
    }
    ensure!(tree_digest(&context)? == before, "the context changed");
    let stray: Vec<_> = fs_err::read_dir(&tmp)?.collect::<std::io::Result<_>>()?;
    ensure!(
        stray.is_empty(),
        "kiln wrote to its TMPDIR: {:?}",
        stray.iter().map(|e| e.file_name()).collect::<Vec<_>>()
    );
    Ok(())
}
