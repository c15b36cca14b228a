//! `load`: 8 builds at once sharing one registry, one cache repo and one
//! `--kaniko-dir`. Each image must equal the same build run alone (with its
//! own kiln dir and no cache, `--reproducible`), every blob of every tag in the
//! registry must hash to its digest (no corrupted cache entry), and once the
//! builds are done kiln's dir must hold no build dir, trash, temp blob or
//! `.partial`/lock file. The full run does a second round on the warm cache.

use super::check;
use super::proc::Running;
use super::rig::{Build, Rig, leftovers, read_digest, wait_work_dirs_gone};
use super::rng::Rng;
use super::{Scale, Tally};
use anyhow::{Result, ensure};
use std::path::Path;
use std::time::Duration;

const BUILDS: usize = 8;
const DEADLINE: Duration = Duration::from_secs(600);

pub fn run(rig: &Rig, scale: Scale) -> Result<Tally> {
    let mut rng = Rng::for_family(scale.seed, "load");
    let context = rig.dir("load-context")?;
    let mut blob = vec![0u8; 1 << 20];
    rng.fill(&mut blob);
    fs_err::write(context.join("shared.bin"), &blob)?;
    fs_err::write(
        context.join("Dockerfile"),
        format!(
            "FROM {}\n\
             COPY shared.bin /shared.bin\n\
             RUN sha256sum /shared.bin > /shared.sum\n\
             ARG N\n\
             RUN echo build $N > /n && head -c $((N * 1000 + 1)) /shared.bin > /part\n",
            rig.base
        ),
    )?;
    let logs = rig.dir("load-logs")?;
    let salt = rng.below(1_000_000);
    let arg = |i: usize| format!("--build-arg=N={}", salt * 10 + i as u64);
    // Each build alone first: the expected digests.
    let mut expected = Vec::new();
    for i in 0..BUILDS {
        let alone = Build {
            context: context.clone(),
            kaniko_dir: rig.dir(&format!("load-alone-{i}"))?,
            destination: None,
            digest_file: Some(logs.join(format!("alone-{i}.digest"))),
            extra: vec![arg(i)],
            ..Build::default()
        };
        let done = rig.run(&alone, &logs.join(format!("alone-{i}.log")), DEADLINE)?;
        ensure!(
            done.success(),
            "build {i} alone failed:\n    {}",
            done.tail()
        );
        expected.push(read_digest(&alone)?);
    }
    let kaniko_dir = rig.dir("load-kaniko")?;
    let rounds = if scale.bounded { 1 } else { 2 };
    let mut tally = Tally::default();
    for round in 0..rounds {
        let builds: Vec<Build> = (0..BUILDS)
            .map(|i| Build {
                context: context.clone(),
                kaniko_dir: kaniko_dir.clone(),
                destination: Some(rig.image(&format!("chaos/load:{i}"))),
                cache_repo: Some(rig.image("chaos/cache-load")),
                digest_file: Some(logs.join(format!("round-{round}-{i}.digest"))),
                extra: vec![arg(i)],
            })
            .collect();
        let running: Vec<Running> = builds
            .iter()
            .enumerate()
            .map(|(i, b)| {
                Running::spawn(
                    &mut rig.command(b),
                    &logs.join(format!("round-{round}-{i}.log")),
                )
            })
            .collect::<Result<_>>()?;
        let finished: Vec<_> = running.into_iter().map(|r| r.wait(DEADLINE)).collect();
        for (i, (done, build)) in finished.into_iter().zip(&builds).enumerate() {
            let outcome = done.and_then(|done| {
                ensure!(done.success(), "failed:\n    {}", done.tail());
                let digest = read_digest(build)?;
                ensure!(
                    digest == expected[i],
                    "gives {digest}; alone it gives {}",
                    expected[i]
                );
                Ok(())
            });
            tally.record(&format!("round {round} build {i}"), outcome);
        }
        let whole = check::verify_all(&rig.registry.host_port(), true).and_then(|tags| {
            ensure!(tags > BUILDS, "only {tags} tags in the registry");
            wait_work_dirs_gone(&kaniko_dir, Duration::from_secs(60))?;
            let stray = stray_files(&kaniko_dir)?;
            ensure!(
                stray.is_empty(),
                "left in kiln's dir: {stray:?} (and {:?})",
                leftovers(&kaniko_dir)?
            );
            Ok(())
        });
        if let Err(e) = whole {
            tally.record(&format!("round {round}: registry and kiln dir"), Err(e));
        }
    }
    Ok(tally)
}

/// Files in kiln's dir that only an interrupted writer leaves: `.partial`,
/// `.lock`, `.tmp`.
fn stray_files(dir: &Path) -> Result<Vec<String>> {
    let mut stray = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs_err::read_dir(&d)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else if [".partial", ".lock", ".tmp"]
                .iter()
                .any(|s| name.ends_with(s))
            {
                stray.push(entry.path().display().to_string());
            }
        }
    }
    Ok(stray)
}
